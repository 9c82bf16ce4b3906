"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SHARED_DATA_ENV = "MRCNF_SHARED_DATA"


def _repository_root() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"no pyproject.toml above {__file__}")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Unpack the real image archives once and return the folder they unpack into.

    The archives are looked for in $MRCNF_SHARED_DATA, else in shared/data beside the
    repository. Their ``extract`` script unpacks them into .cache/real-data/ of the repository,
    skipping archives already unpacked. Tests that use this fixture are skipped where the
    archives are absent.
    """
    repository = _repository_root()
    archives = Path(os.environ.get(SHARED_DATA_ENV) or repository.parent / "shared" / "data")
    extract = archives / "extract"
    if not extract.is_file():
        pytest.skip(f"real image archives not found at {archives}; they exist only on the development machines")

    destination = repository / ".cache" / "real-data"
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(extract), str(destination)], check=True, capture_output=True, timeout=600)
    return destination

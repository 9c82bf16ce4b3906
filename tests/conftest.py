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


@pytest.fixture(scope="session")
def cifar_crops(real_data, tmp_path_factory) -> Path:
    """A small folder of real CIFAR-10 (JPEG copy) images with train/ and test/ splits."""
    import shutil

    folder = tmp_path_factory.mktemp("cifar-small")
    for split, count in (("train", 96), ("test", 24)):
        source = sorted((real_data / "cifar10-jpg" / split).rglob("*.jpg"))[:count]
        (folder / split).mkdir()
        for path in source:
            shutil.copy(path, folder / split / f"{path.parent.name}-{path.name}")
    return folder


@pytest.fixture(scope="session")
def trained_stack(cifar_crops, tmp_path_factory):
    """A 3-level stack (8x8, 16x16, 32x32) trained for two steps per level on real crops.

    Returns:
        ``(model_dir, report)``: the stack directory and the JSON report of ``mrcnf train``.
    """
    import json

    from typer.testing import CliRunner

    from mrcnf_cli.app import app

    from helpers import TINY_TRAINING

    model = tmp_path_factory.mktemp("model") / "stack"
    arguments = ["train", "--res", "3", "--data", str(cifar_crops), "--model", str(model), "--steps", "2", "--json", *TINY_TRAINING]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return model, json.loads(result.stdout)

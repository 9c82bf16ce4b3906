"""Fixtures of the data reader tests: an isolated cache and data folder for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_data_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $MRCNF_CACHE at a fresh folder and run in tmp_path without $MRCNF_DATA."""
    cache = tmp_path / "mrcnf-cache"
    monkeypatch.setenv("MRCNF_CACHE", str(cache))
    monkeypatch.delenv("MRCNF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return cache

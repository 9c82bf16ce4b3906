"""The svhn reader on MATLAB files written in the layout of the SVHN cropped-digits release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import DataError


def write_mat(path: Path, count: int, seed: int) -> np.ndarray:
    """Write X (32, 32, 3, count) and y as the release does, and return X."""
    images = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
    labels = np.arange(1, count + 1, dtype=np.uint8).reshape(count, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": images, "y": labels})
    return images


def test_svhn_train_and_test(tmp_path: Path) -> None:
    train_images = write_mat(tmp_path / "svhn" / "train_32x32.mat", count=7, seed=1)
    test_images = write_mat(tmp_path / "svhn" / "test_32x32.mat", count=3, seed=2)

    train = load_dataset("svhn", split="train", data_dir=tmp_path)
    test = load_dataset("svhn", split="test", data_dir=tmp_path)

    assert train.array.shape == (7, 3, 32, 32)
    assert test.array.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(train.array, train_images.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(test.array, test_images.transpose(3, 2, 0, 1))


def test_svhn_pixel_positions(tmp_path: Path) -> None:
    images = np.zeros((32, 32, 3, 2), dtype=np.uint8)
    images[4, 9, 2, 1] = 200
    tmp_path.joinpath("svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": images, "y": np.ones((2, 1))})

    test = load_dataset("svhn", split="test", data_dir=tmp_path)

    assert test[1][2, 4, 9] == 200
    assert int(test.array.sum()) == 200


def test_svhn_missing_names_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        load_dataset("svhn", split="test", data_dir=tmp_path)

    assert "test_32x32.mat" in str(raised.value)
    assert str(tmp_path / "svhn") in str(raised.value)


def test_svhn_wrong_variable_rejected(tmp_path: Path) -> None:
    tmp_path.joinpath("svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "train_32x32.mat", {"images": np.zeros((2, 2), dtype=np.uint8)})

    with pytest.raises(DataError, match="no X"):
        load_dataset("svhn", split="train", data_dir=tmp_path)

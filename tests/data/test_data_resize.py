"""Box downsampling by an integer factor, against a float reference with numpy's rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data import load_dataset
from mrcnf_cli.data.resize import box_downsample, downsample_factor
from mrcnf_cli.errors import DataError


def reference_downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean of factor x factor blocks in float64, rounded half to even by numpy.round."""
    *leading, height, width = pixels.shape
    blocks = pixels.astype(np.float64).reshape(*leading, height // factor, factor, width // factor, factor)
    return np.round(blocks.mean(axis=(-3, -1))).astype(np.uint8)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 6, 8])
def test_box_downsample_matches_reference(factor: int) -> None:
    pixels = np.random.default_rng(factor).integers(0, 256, (5, 3, 24, 48), dtype=np.uint8)

    result = box_downsample(pixels, factor)

    assert result.dtype == np.uint8
    assert result.shape == (5, 3, 24 // factor, 48 // factor)
    np.testing.assert_array_equal(result, reference_downsample(pixels, factor))


def test_box_downsample_rounds_half_to_even() -> None:
    # Block means 0.5, 1.5, 2.5 and 254.5 round to 0, 2, 2 and 254.
    pixels = np.array([[[0, 1, 1, 2, 2, 3, 254, 255], [0, 1, 1, 2, 2, 3, 254, 255]]], dtype=np.uint8)

    result = box_downsample(pixels, 2)

    np.testing.assert_array_equal(result, [[[0, 2, 2, 254]]])


def test_downsample_factor_rejects_non_multiple() -> None:
    with pytest.raises(DataError) as raised:
        downsample_factor((48, 48), 32, source="image.png")

    message = str(raised.value)
    assert "48x48" in message
    assert "32" in message
    assert "image.png" in message


def test_downsample_factor_rejects_smaller_image() -> None:
    with pytest.raises(DataError, match="smaller than image_size 64"):
        downsample_factor((32, 32), 64, source="image.png")


def test_downsample_factor_rejects_non_square() -> None:
    with pytest.raises(DataError, match="64x128"):
        downsample_factor((64, 128), 32, source="image.png")


def test_load_npz_downsampled_exactly(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, data=images)

    loaded = load_dataset(str(path), split="all", image_size=4)

    assert loaded.size == (4, 4)
    np.testing.assert_array_equal(loaded.array, reference_downsample(images.transpose(0, 3, 1, 2), 4))


def test_load_folder_non_multiple_rejected(tmp_path: Path) -> None:
    for index in range(3):
        Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")

    with pytest.raises(DataError) as raised:
        load_dataset(str(tmp_path), split="all", image_size=32)
    assert "48x48" in str(raised.value)
    assert "32" in str(raised.value)


def test_load_folder_mixed_sizes_downsampled(tmp_path: Path) -> None:
    small = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    large = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(small).save(tmp_path / "a.png")
    Image.fromarray(large).save(tmp_path / "b.png")

    loaded = load_dataset(str(tmp_path), split="all", image_size=4)

    np.testing.assert_array_equal(loaded.array[0], reference_downsample(small.transpose(2, 0, 1), 2))
    np.testing.assert_array_equal(loaded.array[1], reference_downsample(large.transpose(2, 0, 1), 4))

"""The built-in photos set: crops of the photographs inside the installed scikit-image."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data import DATASETS, DEFAULT_DATASET, load_dataset
from mrcnf_cli.data.photos import PHOTOGRAPHS, photographs_folder
from mrcnf_cli.errors import DataError


def expected_crop_count(split: str, crop: int) -> int:
    total = 0
    for name in PHOTOGRAPHS[split]:
        width, height = Image.open(photographs_folder() / name).size
        total += (height // crop) * (width // crop)
    return total


def test_photos_is_default_and_registered() -> None:
    assert DEFAULT_DATASET == "photos"
    assert "photos" in DATASETS


def test_photos_train_and_test_photographs_disjoint() -> None:
    assert not set(PHOTOGRAPHS["train"]) & set(PHOTOGRAPHS["test"])
    for name in PHOTOGRAPHS["train"] + PHOTOGRAPHS["test"]:
        assert (photographs_folder() / name).is_file()


@pytest.mark.parametrize("split", ["train", "test"])
def test_photos_crop_counts(split: str) -> None:
    loaded = load_dataset("photos", split=split)

    assert loaded.array.shape == (expected_crop_count(split, 32), 3, 32, 32)
    assert loaded.array.dtype == np.uint8


def test_photos_deterministic() -> None:
    first = load_dataset("photos", split="train")
    second = load_dataset("photos", split="train")

    np.testing.assert_array_equal(first.array, second.array)


def test_photos_first_crop_is_top_left() -> None:
    photograph = np.asarray(Image.open(photographs_folder() / PHOTOGRAPHS["test"][0]).convert("RGB"))

    test = load_dataset("photos", split="test", image_size=48)

    np.testing.assert_array_equal(test.array[0], photograph[:48, :48].transpose(2, 0, 1))
    np.testing.assert_array_equal(test.array[1], photograph[:48, 48:96].transpose(2, 0, 1))


def test_photos_no_crop_in_both_splits() -> None:
    train = load_dataset("photos", split="train")
    test = load_dataset("photos", split="test")

    train_crops = {crop.tobytes() for crop in train.array}
    assert not any(crop.tobytes() in train_crops for crop in test.array)


def test_photos_grey_by_luma() -> None:
    rgb = load_dataset("photos", split="test")
    grey = load_dataset("photos", split="test", channels=1)

    channels = rgb.array.astype(np.int64)
    expected = (19595 * channels[:, 0] + 38470 * channels[:, 1] + 7471 * channels[:, 2] + 32768) >> 16
    np.testing.assert_array_equal(grey.array[:, 0], expected)


def test_photos_all_is_train_then_test() -> None:
    everything = load_dataset("photos", split="all", image_size=64)

    assert len(everything) == expected_crop_count("train", 64) + expected_crop_count("test", 64)


def test_photos_crop_larger_than_photograph() -> None:
    with pytest.raises(DataError, match="image_size 400"):
        load_dataset("photos", split="test", image_size=400)


def test_photos_loads_without_skimage_data() -> None:
    # Loading must read the files by path: importing skimage.data would bring in its fetchers.
    script = (
        "import sys; from mrcnf_cli.data import load_dataset; load_dataset('photos', split='test'); "
        "print('skimage.data' in sys.modules, 'pooch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)

    assert result.stdout.split() == ["False", "False"]

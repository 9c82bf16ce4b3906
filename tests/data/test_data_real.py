"""The readers on real images: the CIFAR-10 JPEG copy, Tiny ImageNet and 128x128 ImageNet photographs.

Skipped where the real image archives are absent (see the real_data fixture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrcnf_cli.data import load_dataset


def test_real_cifar10_jpeg_test_folder(real_data: Path) -> None:
    folder = real_data / "cifar10-jpg" / "test"

    images = load_dataset(str(folder), split="all", cache=False)

    assert images.array.shape == (10000, 3, 32, 32)
    first = np.asarray(Image.open(folder / "airplane" / "0000.jpg").convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(images.array[0], first)
    assert 60 < images.array.mean() < 200


def test_real_tinyimagenet_val(real_data: Path) -> None:
    images = load_dataset("tinyimagenet", split="val", data_dir=real_data, cache=False)

    assert images.array.shape == (10000, 3, 64, 64)
    annotations = (real_data / "tiny-imagenet-200" / "val" / "val_annotations.txt").read_text().splitlines()
    val_folder = real_data / "tiny-imagenet-200" / "val" / "images"
    grey_indices = [
        index for index, line in enumerate(annotations) if Image.open(val_folder / line.split("\t")[0]).mode == "L"
    ]
    assert grey_indices, "the real Tiny ImageNet val split has greyscale JPEGs"
    for index in grey_indices[:5]:
        red, green, blue = images.array[index]
        np.testing.assert_array_equal(red, green)
        np.testing.assert_array_equal(green, blue)


def test_real_imagenet_sample_128(real_data: Path) -> None:
    folder = real_data / "imagenet-sample-128"

    images = load_dataset(str(folder), split="all", cache=False)

    assert images.array.shape == (1000, 3, 128, 128)
    first = sorted(folder.glob("*.png"))[0]
    np.testing.assert_array_equal(images.array[0], np.asarray(Image.open(first).convert("RGB")).transpose(2, 0, 1))

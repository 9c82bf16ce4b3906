"""ImageSet: uint8 tensors per item, and batches through a torch DataLoader."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mrcnf_cli.data import ImageSet


def make_set() -> ImageSet:
    array = np.arange(5 * 3 * 4 * 6, dtype=np.int64).reshape(5, 3, 4, 6) % 256
    return ImageSet(array.astype(np.uint8), name="numbers", split="train")


def test_imageset_item_is_uint8_tensor() -> None:
    images = make_set()

    item = images[2]

    assert isinstance(item, torch.Tensor)
    assert item.dtype == torch.uint8
    assert item.shape == (3, 4, 6)
    np.testing.assert_array_equal(item.numpy(), images.array[2])


def test_imageset_attributes() -> None:
    images = make_set()

    assert len(images) == 5
    assert images.channels == 3
    assert images.size == (4, 6)
    assert images.name == "numbers"
    assert images.split == "train"


def test_imageset_negative_index() -> None:
    images = make_set()

    np.testing.assert_array_equal(images[-1].numpy(), images.array[4])


def test_imageset_item_is_a_copy() -> None:
    images = make_set()

    images[0][0, 0, 0] = 99

    assert images.array[0, 0, 0, 0] == 0


def test_imageset_dataloader_batches() -> None:
    images = make_set()

    batch = next(iter(DataLoader(images, batch_size=4, shuffle=False)))

    assert batch.shape == (4, 3, 4, 6)
    assert batch.dtype == torch.uint8
    np.testing.assert_array_equal(batch.numpy(), images.array[:4])


def test_imageset_rejects_float_array() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(np.zeros((1, 3, 2, 2), dtype=np.float32), name="x", split="train")


def test_imageset_pickles_memmap_by_path(tmp_path: Path) -> None:
    path = tmp_path / "images.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (50, 3, 32, 32), dtype=np.uint8))
    images = ImageSet(np.load(path, mmap_mode="r"), name="numbers", split="train")

    payload = pickle.dumps(images)
    restored = pickle.loads(payload)

    assert len(payload) < 2000
    assert isinstance(restored.array, np.memmap)
    np.testing.assert_array_equal(restored.array, images.array)
    assert restored.size == (32, 32)

"""The imagenet32, imagenet64 and imagenet128 readers, and the memory-mapped cache they use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import DataError


def planar_rows(count: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3 * side * side), dtype=np.uint8)


def write_batches(folder: Path, side: int, counts: list[int]) -> dict[str, np.ndarray]:
    """Write train_data_batch_1..10.npz with the given image counts and val_data.npz (2 images)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = []
    for number, count in enumerate(counts, start=1):
        rows = planar_rows(count, side, seed=number)
        np.savez(folder / f"train_data_batch_{number}.npz", data=rows, labels=np.ones(count, dtype=np.int64))
        train.append(rows)

    val = planar_rows(2, side, seed=100)
    np.savez(folder / "val_data.npz", data=val, labels=np.ones(2, dtype=np.int64))
    return {"train": np.concatenate(train), "test": val}


def test_imagenet32_red_row_is_red(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet32"
    write_batches(folder, 32, [1] * 10)
    rows = np.zeros((2, 3 * 32 * 32), dtype=np.uint8)
    rows[0, : 32 * 32] = 255
    np.savez(folder / "val_data.npz", data=rows)

    image = load_dataset("imagenet32", split="test", data_dir=tmp_path)[0]

    assert image.shape == (3, 32, 32)
    assert (image[0] == 255).all()
    assert (image[1] == 0).all()
    assert (image[2] == 0).all()


def test_imagenet64_batches_in_order(tmp_path: Path) -> None:
    rows = write_batches(tmp_path / "imagenet64", 64, [2, 1, 3, 1, 1, 2, 1, 1, 1, 2])

    train = load_dataset("imagenet64", split="train", data_dir=tmp_path)
    test = load_dataset("imagenet64", split="val", data_dir=tmp_path)

    assert train.array.shape == (15, 3, 64, 64)
    np.testing.assert_array_equal(train.array.reshape(15, -1), rows["train"])
    np.testing.assert_array_equal(test.array.reshape(2, -1), rows["test"])


def test_imagenet64_batches_in_two_part_folders(tmp_path: Path) -> None:
    rows = write_batches(tmp_path / "part1", 64, [1] * 10)
    part2 = tmp_path / "Imagenet64_train_part2_npz"
    part2.mkdir()
    for number in range(6, 11):
        os.replace(tmp_path / "part1" / f"train_data_batch_{number}.npz", part2 / f"train_data_batch_{number}.npz")
    os.replace(tmp_path / "part1", tmp_path / "Imagenet64_train_part1_npz")

    train = load_dataset("imagenet64", split="train", data_dir=tmp_path)

    np.testing.assert_array_equal(train.array.reshape(10, -1), rows["train"])


def test_imagenet64_wrong_row_length_rejected(tmp_path: Path) -> None:
    write_batches(tmp_path / "imagenet64", 32, [1] * 10)

    with pytest.raises(DataError, match="12288"):
        load_dataset("imagenet64", split="test", data_dir=tmp_path)


def test_imagenet32_missing_names_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        load_dataset("imagenet32", split="train", data_dir=tmp_path)

    message = str(raised.value)
    assert "train_data_batch_1.npz" in message
    assert "train_32x32" in message
    assert str(tmp_path / "imagenet32") in message


def test_imagenet32_missing_batch_named(tmp_path: Path) -> None:
    write_batches(tmp_path / "imagenet32", 32, [1] * 10)
    (tmp_path / "imagenet32" / "train_data_batch_7.npz").unlink()

    with pytest.raises(DataError, match="train_data_batch_7.npz"):
        load_dataset("imagenet32", split="train", data_dir=tmp_path)


def test_imagenet64_png_release(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet64" / "valid_64x64"
    folder.mkdir(parents=True)
    images = np.random.default_rng(3).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:08d}.png")

    test = load_dataset("imagenet64", split="test", data_dir=tmp_path)

    np.testing.assert_array_equal(test.array, images.transpose(0, 3, 1, 2))


def test_imagenet64_png_wrong_size_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet64" / "train_64x64"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(folder / "b.png")

    with pytest.raises(DataError) as raised:
        load_dataset("imagenet64", split="train", data_dir=tmp_path)
    assert str(folder / "b.png") in str(raised.value)
    assert "32x32" in str(raised.value)


def test_imagenet128_folder_split(tmp_path: Path) -> None:
    folder = tmp_path / "imagenet128"
    folder.mkdir()
    images = np.random.default_rng(4).integers(0, 256, (12, 128, 128, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"n{index:04d}_photo.png")

    train = load_dataset("imagenet128", split="train", data_dir=tmp_path)
    test = load_dataset("imagenet128", split="test", data_dir=tmp_path, image_size=64)

    expected_train = np.delete(images, [9], axis=0).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(train.array, expected_train)
    assert test.array.shape == (1, 3, 64, 64)
    block_mean = images[9, :2, :2, 0].astype(np.float64).mean()
    assert test.array[0, 0, 0, 0] == np.round(block_mean)


def test_imagenet128_not_in_data_dir_itself(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((128, 128, 3), dtype=np.uint8)).save(tmp_path / "stray.png")

    with pytest.raises(DataError, match="imagenet128"):
        load_dataset("imagenet128", split="train", data_dir=tmp_path)


def test_cache_built_then_reused(tmp_path: Path, isolated_data_environment: Path) -> None:
    rows = write_batches(tmp_path / "imagenet32", 32, [3] * 10)

    first = load_dataset("imagenet32", split="train", data_dir=tmp_path, cache=True)
    cache_files = sorted(isolated_data_environment.glob("*.npy"))
    assert len(cache_files) == 1
    built_at = cache_files[0].stat().st_mtime_ns

    second = load_dataset("imagenet32", split="train", data_dir=tmp_path, cache=True)

    assert isinstance(first.array, np.memmap)
    assert isinstance(second.array, np.memmap)
    assert Path(second.array.filename) == cache_files[0]
    assert cache_files[0].stat().st_mtime_ns == built_at
    assert not list(isolated_data_environment.glob("*.tmp-*"))
    np.testing.assert_array_equal(second.array.reshape(30, -1), rows["train"])


def test_cache_rebuilt_after_source_change(tmp_path: Path, isolated_data_environment: Path) -> None:
    write_batches(tmp_path / "imagenet32", 32, [1] * 10)
    load_dataset("imagenet32", split="test", data_dir=tmp_path, cache=True)

    changed = planar_rows(4, 32, seed=55)
    np.savez(tmp_path / "imagenet32" / "val_data.npz", data=changed)
    reloaded = load_dataset("imagenet32", split="test", data_dir=tmp_path, cache=True)

    assert len(list(isolated_data_environment.glob("*.npy"))) == 2
    np.testing.assert_array_equal(reloaded.array.reshape(4, -1), changed)


def test_cache_keyed_by_settings(tmp_path: Path, isolated_data_environment: Path) -> None:
    rows = write_batches(tmp_path / "imagenet32", 32, [1] * 10)

    full = load_dataset("imagenet32", split="test", data_dir=tmp_path, cache=True)
    small = load_dataset("imagenet32", split="test", data_dir=tmp_path, cache=True, image_size=16)

    assert full.size == (32, 32)
    assert small.size == (16, 16)
    assert len(list(isolated_data_environment.glob("*.npy"))) == 2
    np.testing.assert_array_equal(full.array.reshape(2, -1), rows["test"])


def test_cache_not_used_for_small_sets(tmp_path: Path, isolated_data_environment: Path) -> None:
    write_batches(tmp_path / "imagenet32", 32, [1] * 10)

    loaded = load_dataset("imagenet32", split="train", data_dir=tmp_path)

    assert not isinstance(loaded.array, np.memmap)
    assert not isolated_data_environment.exists()


def test_cache_unwritable_folder_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_batches(tmp_path / "imagenet32", 32, [1] * 10)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MRCNF_CACHE", str(blocker / "cache"))

    with pytest.raises(DataError, match="MRCNF_CACHE") as raised:
        load_dataset("imagenet32", split="test", data_dir=tmp_path, cache=True)
    assert str(blocker) in str(raised.value)

"""Sets given by path: image folders, npz files, single images, and unknown names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import DataError, InputError


def write_pngs(folder: Path, count: int, seed: int = 0, size: int = 8) -> list[np.ndarray]:
    """Write count RGB PNGs named 000.png, 001.png, ... and return their pixels (C, H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:03d}.png")
        images.append(pixels.transpose(2, 0, 1))
    return images


def test_folder_every_tenth_file_is_test(tmp_path: Path) -> None:
    images = write_pngs(tmp_path / "pngs", 25)

    train = load_dataset(str(tmp_path / "pngs"), split="train")
    test = load_dataset(str(tmp_path / "pngs"), split="test")
    everything = load_dataset(str(tmp_path / "pngs"), split="all")

    np.testing.assert_array_equal(test.array, np.stack([images[9], images[19]]))
    assert len(train) == 23
    np.testing.assert_array_equal(train.array[9], images[10])
    np.testing.assert_array_equal(everything.array, np.stack(images))


def test_folder_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    first = write_pngs(tmp_path / "pngs" / "b", 1, seed=1)
    second = write_pngs(tmp_path / "pngs" / "a", 1, seed=2)
    (tmp_path / "pngs" / "notes.txt").write_text("not an image")
    (tmp_path / "pngs" / "a" / "._000.png").write_bytes(b"resource fork")
    upper = tmp_path / "pngs" / "c" / "PHOTO.JPG"
    upper.parent.mkdir()
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(upper, format="JPEG")

    loaded = load_dataset(str(tmp_path / "pngs"), split="all")

    assert len(loaded) == 3
    np.testing.assert_array_equal(loaded.array[0], second[0])
    np.testing.assert_array_equal(loaded.array[1], first[0])


def test_folder_with_split_subfolders(tmp_path: Path) -> None:
    train_images = write_pngs(tmp_path / "set" / "train" / "cats", 3, seed=1)
    val_images = write_pngs(tmp_path / "set" / "val", 2, seed=2)

    train = load_dataset(str(tmp_path / "set"), split="train")
    test = load_dataset(str(tmp_path / "set"), split="test")
    everything = load_dataset(str(tmp_path / "set"), split="all")

    np.testing.assert_array_equal(train.array, np.stack(train_images))
    np.testing.assert_array_equal(test.array, np.stack(val_images))
    np.testing.assert_array_equal(everything.array, np.stack(train_images + val_images))


def test_folder_missing_split_subfolder(tmp_path: Path) -> None:
    write_pngs(tmp_path / "set" / "train", 3)

    with pytest.raises(DataError, match="test/"):
        load_dataset(str(tmp_path / "set"), split="test")


def test_folder_mixed_sizes_rejected(tmp_path: Path) -> None:
    write_pngs(tmp_path / "pngs", 2, size=8)
    Image.fromarray(np.zeros((12, 10, 3), dtype=np.uint8)).save(tmp_path / "pngs" / "005.png")

    with pytest.raises(DataError) as raised:
        load_dataset(str(tmp_path / "pngs"), split="all")

    assert str(tmp_path / "pngs" / "005.png") in str(raised.value)
    assert "12x10" in str(raised.value)


def test_folder_too_small_for_test_split(tmp_path: Path) -> None:
    write_pngs(tmp_path / "pngs", 4)

    with pytest.raises(DataError, match="split 'all'"):
        load_dataset(str(tmp_path / "pngs"), split="test")


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")

    with pytest.raises(DataError, match="contains no image files"):
        load_dataset(str(tmp_path / "empty"), split="all")


def test_folder_corrupt_image_named(tmp_path: Path) -> None:
    write_pngs(tmp_path / "pngs", 2)
    (tmp_path / "pngs" / "001.png").write_text("oops")

    with pytest.raises(DataError, match="cannot read .*001.png as an image"):
        load_dataset(str(tmp_path / "pngs"), split="all")


def test_folder_large_set_cached(tmp_path: Path, isolated_data_environment: Path) -> None:
    images = write_pngs(tmp_path / "pngs", 12)

    first = load_dataset(str(tmp_path / "pngs"), split="all", cache=True)
    second = load_dataset(str(tmp_path / "pngs"), split="all", cache=True)

    assert isinstance(second.array, np.memmap)
    assert len(list(isolated_data_environment.glob("pngs-all-*.npy"))) == 1
    np.testing.assert_array_equal(first.array, np.stack(images))
    np.testing.assert_array_equal(second.array, np.stack(images))


def test_single_image_any_split(tmp_path: Path) -> None:
    (image,) = write_pngs(tmp_path, 1)

    for split in ("train", "test", "all"):
        loaded = load_dataset(str(tmp_path / "000.png"), split=split)
        assert loaded.array.shape == (1, 3, 8, 8)
        np.testing.assert_array_equal(loaded[0].numpy(), image)


def test_single_text_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(DataError, match="cannot read .*notes.txt as an image"):
        load_dataset(str(path), split="all")


@pytest.mark.parametrize(
    ("layout", "transform"),
    [
        ("channels_last", lambda images: images.transpose(0, 2, 3, 1)),
        ("channels_first", lambda images: images),
        ("planar", lambda images: images.reshape(len(images), -1)),
    ],
)
def test_npz_layouts(tmp_path: Path, layout: str, transform) -> None:
    images = np.random.default_rng(3).integers(0, 256, (12, 3, 8, 8), dtype=np.uint8)
    path = tmp_path / f"{layout}.npz"
    np.savez(path, data=transform(images))

    everything = load_dataset(str(path), split="all")
    test = load_dataset(str(path), split="test")

    np.testing.assert_array_equal(everything.array, images)
    np.testing.assert_array_equal(test.array, images[[9]])


def test_npz_grey_images_key(tmp_path: Path) -> None:
    grey = np.random.default_rng(4).integers(0, 256, (3, 6, 6), dtype=np.uint8)
    path = tmp_path / "grey.npz"
    np.savez_compressed(path, images=grey)

    loaded = load_dataset(str(path), split="all", channels=1)

    np.testing.assert_array_equal(loaded.array[:, 0], grey)


def test_npz_rgba_alpha_rule(tmp_path: Path) -> None:
    rgba = np.full((2, 6, 6, 4), 200, dtype=np.uint8)
    rgba[1, 0, 0, 3] = 0
    path = tmp_path / "rgba.npz"
    np.savez(path, data=rgba)

    with pytest.raises(DataError, match="alpha below 255"):
        load_dataset(str(path), split="all")

    loaded = load_dataset(str(path), split="all", convert=True)
    assert loaded.array[1, 0, 0, 0] == 0
    assert loaded.array[0, 0, 0, 0] == round(200 * 200 / 255)


def test_npz_without_image_key(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, pixels=np.zeros((2, 8, 8, 3), dtype=np.uint8))

    with pytest.raises(DataError, match="'data' or 'images'"):
        load_dataset(str(path), split="all")


def test_npz_float_rejected(tmp_path: Path) -> None:
    path = tmp_path / "float.npz"
    np.savez(path, data=np.zeros((2, 8, 8, 3), dtype=np.float32))

    with pytest.raises(DataError, match="float32"):
        load_dataset(str(path), split="all")


def test_npz_ambiguous_shape_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.npz"
    np.savez(path, data=np.zeros((2, 3, 5, 4), dtype=np.uint8))

    with pytest.raises(DataError, match=r"\(2, 3, 5, 4\)"):
        load_dataset(str(path), split="all")


def test_unknown_name_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        load_dataset("cifar100", split="train")

    message = str(raised.value)
    assert "'cifar100'" in message
    assert "not found" in message
    for name in ("cifar10", "svhn", "imagenet32", "imagenet64", "imagenet128", "tinyimagenet", "photos"):
        assert name in message


def test_invalid_split_rejected() -> None:
    with pytest.raises(InputError, match="'validation'"):
        load_dataset("photos", split="validation")


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_invalid_channels_rejected(channels: int) -> None:
    with pytest.raises(InputError, match=f"channel count {channels}"):
        load_dataset("photos", channels=channels)


@pytest.mark.parametrize("image_size", [0, -32, True, 32.0])
def test_invalid_image_size_rejected(image_size) -> None:
    with pytest.raises(InputError, match="image_size"):
        load_dataset("photos", image_size=image_size)


def test_failed_cache_build_leaves_nothing(tmp_path: Path, isolated_data_environment: Path) -> None:
    write_pngs(tmp_path / "pngs", 3)
    (tmp_path / "pngs" / "002.png").write_text("oops")

    with pytest.raises(DataError, match="002.png"):
        load_dataset(str(tmp_path / "pngs"), split="all", cache=True)

    assert isolated_data_environment.is_dir()
    assert list(isolated_data_environment.iterdir()) == []

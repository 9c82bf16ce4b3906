"""The tinyimagenet reader on a small copy of the release layout, with a greyscale JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import DataError

WNIDS = ("n01443537", "n01629819")


def save_jpeg(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Save a JPEG and return the pixels Pillow decodes from it, (C, H, W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    decoded = np.asarray(Image.open(path))
    return decoded[np.newaxis] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)


def write_release(root: Path) -> dict[str, list[np.ndarray]]:
    """Write 2 classes of 2 train images each and 3 val images; val_1 is greyscale."""
    rng = np.random.default_rng(11)
    train = []
    for wnid in WNIDS:
        for number in range(2):
            train.append(save_jpeg(root / "train" / wnid / "images" / f"{wnid}_{number}.JPEG", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")

    val = []
    lines = []
    for number in range(3):
        shape = (64, 64) if number == 1 else (64, 64, 3)
        val.append(save_jpeg(root / "val" / "images" / f"val_{number}.JPEG", rng.integers(0, 256, shape, dtype=np.uint8)))
        lines.append(f"val_{number}.JPEG\t{WNIDS[number % 2]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return {"train": train, "test": val}


def test_tinyimagenet_train_order(tmp_path: Path) -> None:
    pixels = write_release(tmp_path / "tiny-imagenet-200")

    train = load_dataset("tinyimagenet", split="train", data_dir=tmp_path)

    assert train.array.shape == (4, 3, 64, 64)
    for index, expected in enumerate(pixels["train"]):
        np.testing.assert_array_equal(train.array[index], expected)


def test_tinyimagenet_val_greyscale_to_rgb(tmp_path: Path) -> None:
    pixels = write_release(tmp_path / "tiny-imagenet-200")

    test = load_dataset("tinyimagenet", split="val", data_dir=tmp_path)

    assert test.array.shape == (3, 3, 64, 64)
    grey = pixels["test"][1][0]
    for channel in range(3):
        np.testing.assert_array_equal(test.array[1, channel], grey)
    np.testing.assert_array_equal(test.array[2], pixels["test"][2])


def test_tinyimagenet_downsampled_to_32(tmp_path: Path) -> None:
    pixels = write_release(tmp_path / "tiny-imagenet-200")

    test = load_dataset("tinyimagenet", split="test", data_dir=tmp_path, image_size=32)

    blocks = pixels["test"][0].astype(np.float64).reshape(3, 32, 2, 32, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(test.array[0], np.round(blocks))


def test_tinyimagenet_missing_val_image_named(tmp_path: Path) -> None:
    root = tmp_path / "tiny-imagenet-200"
    write_release(root)
    (root / "val" / "images" / "val_2.JPEG").unlink()

    with pytest.raises(DataError) as raised:
        load_dataset("tinyimagenet", split="test", data_dir=tmp_path)
    assert "val_2.JPEG" in str(raised.value)
    assert "line 3" in str(raised.value)


def test_tinyimagenet_missing_names_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        load_dataset("tinyimagenet", split="test", data_dir=tmp_path)

    assert "val_annotations.txt" in str(raised.value)
    assert str(tmp_path / "tiny-imagenet-200") in str(raised.value)

"""The cifar10 reader on batches written like the CIFAR-10 python release."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import DataError

IMAGES_PER_BATCH = 6


def write_batch(path: Path, seed: int, count: int = IMAGES_PER_BATCH) -> np.ndarray:
    """Write a batch as the release does and return its rows (count, 3072)."""
    data = np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"batch", b"labels": list(range(count)), b"data": data, b"filenames": [b"x.png"] * count}
    with open(path, "wb") as stream:
        pickle.dump(batch, stream)
    return data


def write_release(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    train = [write_batch(folder / f"data_batch_{number}", seed=number) for number in range(1, 6)]
    test = write_batch(folder / "test_batch", seed=99)
    return {"train": np.concatenate(train), "test": test}


def test_cifar10_train_and_test(tmp_path: Path) -> None:
    rows = write_release(tmp_path / "cifar-10-batches-py")

    train = load_dataset("cifar10", split="train", data_dir=tmp_path)
    test = load_dataset("cifar10", split="test", data_dir=tmp_path)

    assert train.array.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert test.array.shape == (IMAGES_PER_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(train.array.reshape(len(train), -1), rows["train"])
    np.testing.assert_array_equal(test.array.reshape(len(test), -1), rows["test"])


def test_cifar10_planes_are_red_green_blue(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, :1024] = 255
    data[0, 1024 + 5] = 7
    with open(folder / "test_batch", "wb") as stream:
        pickle.dump({b"data": data, b"labels": [0]}, stream)

    image = load_dataset("cifar10", split="test", data_dir=tmp_path)[0]

    assert (image[0] == 255).all()
    assert image[1, 0, 5] == 7
    assert int(image[1].sum()) == 7
    assert (image[2] == 0).all()


@pytest.mark.parametrize("folder_name", ["cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py", "."])
def test_cifar10_usual_folders(tmp_path: Path, folder_name: str) -> None:
    rows = write_release(tmp_path / "data" / folder_name if folder_name != "." else tmp_path / "data")

    test = load_dataset("cifar10", split="val", data_dir=tmp_path / "data")

    assert test.split == "test"
    np.testing.assert_array_equal(test.array.reshape(len(test), -1), rows["test"])


def test_cifar10_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = write_release(tmp_path / "elsewhere" / "cifar-10-batches-py")
    monkeypatch.setenv("MRCNF_DATA", str(tmp_path / "elsewhere"))

    test = load_dataset("cifar10", split="test")

    np.testing.assert_array_equal(test.array.reshape(len(test), -1), rows["test"])


def test_cifar10_default_data_dir(tmp_path: Path) -> None:
    rows = write_release(tmp_path / "data" / "cifar-10-batches-py")

    test = load_dataset("cifar10", split="test")

    np.testing.assert_array_equal(test.array.reshape(len(test), -1), rows["test"])


def test_cifar10_missing_names_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        load_dataset("cifar10", split="train", data_dir=tmp_path)

    message = str(raised.value)
    assert "data_batch_1" in message
    assert "data_batch_5" in message
    assert str(tmp_path / "cifar-10-batches-py") in message


def test_cifar10_missing_one_batch_named(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    (folder / "data_batch_3").unlink()

    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", split="train", data_dir=tmp_path)


class RunsShellCommand:
    """Pickles to a call of os.system, as a malicious batch file would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_malicious_pickle_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    marker = tmp_path / "executed"
    with open(folder / "test_batch", "wb") as stream:
        pickle.dump({b"data": RunsShellCommand(marker)}, stream)

    with pytest.raises(DataError) as raised:
        load_dataset("cifar10", split="test", data_dir=tmp_path)

    assert "system" in str(raised.value)
    assert str(folder / "test_batch") in str(raised.value)
    assert not marker.exists()


def test_cifar10_pickled_function_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    with open(folder / "test_batch", "wb") as stream:
        pickle.dump({b"data": np.zeros((1, 3072), dtype=np.uint8), b"hook": Path}, stream)

    with pytest.raises(DataError, match="pathlib"):
        load_dataset("cifar10", split="test", data_dir=tmp_path)


def test_cifar10_protocol_5_batch(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    data = np.random.default_rng(5).integers(0, 256, (2, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as stream:
        pickle.dump({b"data": data}, stream, protocol=5)

    test = load_dataset("cifar10", split="test", data_dir=tmp_path)

    np.testing.assert_array_equal(test.array.reshape(2, -1), data)


def test_cifar10_wrong_row_length_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    with open(folder / "test_batch", "wb") as stream:
        pickle.dump({b"data": np.zeros((2, 3000), dtype=np.uint8)}, stream)

    with pytest.raises(DataError, match="3072"):
        load_dataset("cifar10", split="test", data_dir=tmp_path)


def test_cifar10_grey_model_needs_convert(tmp_path: Path) -> None:
    rows = write_release(tmp_path / "cifar-10-batches-py")

    with pytest.raises(DataError, match="--convert"):
        load_dataset("cifar10", split="test", data_dir=tmp_path, channels=1)

    grey = load_dataset("cifar10", split="test", data_dir=tmp_path, channels=1, convert=True)
    rgb = rows["test"].reshape(-1, 3, 32, 32).astype(np.int64)
    expected = (19595 * rgb[:, 0] + 38470 * rgb[:, 1] + 7471 * rgb[:, 2] + 32768) >> 16
    np.testing.assert_array_equal(grey.array[:, 0], expected)


def test_cifar10_all_split_concatenates(tmp_path: Path) -> None:
    rows = write_release(tmp_path / "cifar-10-batches-py")

    everything = load_dataset("cifar10", split="all", data_dir=tmp_path)

    expected = np.concatenate([rows["train"], rows["test"]])
    np.testing.assert_array_equal(everything.array.reshape(len(everything), -1), expected)

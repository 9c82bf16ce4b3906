"""SVHN (street view house numbers) in its cropped-digits MATLAB release.

``train_32x32.mat`` and ``test_32x32.mat`` are MATLAB v5 files whose ``X`` is a uint8 array
(32, 32, 3, N), height x width x channel x image, and whose ``y`` contains the labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.io

from mrcnf_cli.data.locate import find_files
from mrcnf_cli.data.sources import ArraySource, Chunk, Source
from mrcnf_cli.errors import DataError

NAME = "svhn"
DESCRIPTION = "SVHN cropped digits, 32x32 RGB (73,257 train, 26,032 test)"
SIDE = 32
FOLDERS = ("svhn", "SVHN")
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
EXPECTED_FILES = "train_32x32.mat (train) and test_32x32.mat (test) in DATA_DIR/svhn/"


def find_sources(data_dir: Path, split: str) -> list[Source]:
    """Read the MATLAB file of `split` ("train" or "test") found under `data_dir`."""
    (path,) = find_files(data_dir, FOLDERS, [FILES[split]], dataset=NAME, split=split)
    images = _read_images(path)

    def read_chunks() -> Iterator[Chunk]:
        yield str(path), images

    return [
        ArraySource(
            description=f"{NAME} {split} file {path}",
            files=(path,),
            count=len(images),
            size=(SIDE, SIDE),
            read_chunks=read_chunks,
        )
    ]


def _read_images(path: Path) -> np.ndarray:
    try:
        contents = scipy.io.loadmat(path, variable_names=["X"])
    except (OSError, ValueError, TypeError, NotImplementedError) as error:
        raise DataError(
            f"cannot read {path} as a MATLAB file ({error}); pass the SVHN *_32x32.mat files"
        ) from None

    images = contents.get("X")
    valid = (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[:3] == (SIDE, SIDE, 3)
    )
    if not valid:
        found = "no X" if images is None else f"X of shape {images.shape} and type {images.dtype}"
        raise DataError(
            f"{path} contains {found}; expected X, a uint8 array (32, 32, 3, N), "
            "as in the SVHN *_32x32.mat files"
        )

    # (H, W, C, N) to (N, C, H, W).
    return images.transpose(3, 2, 0, 1)

"""CIFAR-10 in its python release: pickled batches of 32x32 RGB images.

Each batch file is a pickled dict whose ``b"data"`` is a uint8 array (N, 3072): per row the
1024 red values, then the green, then the blue, each plane row-major.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mrcnf_cli.data.layouts import planar_layout, to_channels_first
from mrcnf_cli.data.locate import find_files
from mrcnf_cli.data.safe_pickle import load_arrays_pickle
from mrcnf_cli.data.sources import ArraySource, Chunk, Source
from mrcnf_cli.errors import DataError

NAME = "cifar10"
DESCRIPTION = "CIFAR-10, 32x32 RGB photographs in 10 classes (50,000 train, 10,000 test)"
SIDE = 32
FOLDERS = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10", "cifar-10", "CIFAR10")
FILES = {"train": tuple(f"data_batch_{number}" for number in range(1, 6)), "test": ("test_batch",)}
EXPECTED_FILES = "data_batch_1 .. data_batch_5 (train) and test_batch (test) in DATA_DIR/cifar-10-batches-py/"


def find_sources(data_dir: Path, split: str) -> list[Source]:
    """Read the batches of `split` ("train" or "test") found under `data_dir`."""
    paths = find_files(data_dir, FOLDERS, FILES[split], dataset=NAME, split=split)
    batches = [(str(path), _read_batch(path)) for path in paths]

    def read_chunks() -> Iterator[Chunk]:
        yield from batches

    return [
        ArraySource(
            description=f"{NAME} {split} batches in {paths[0].parent}",
            files=tuple(paths),
            count=sum(len(images) for _, images in batches),
            size=(SIDE, SIDE),
            read_chunks=read_chunks,
        )
    ]


def _read_batch(path: Path) -> np.ndarray:
    batch = load_arrays_pickle(path)
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: expected a dict with b'data', a uint8 array; pass the "
            "files of the CIFAR-10 python release"
        )

    layout = planar_layout(data.shape, side=SIDE, source=str(path))
    return to_channels_first(data, layout)

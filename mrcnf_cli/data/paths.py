"""Sets given by path: a folder of images, an ``.npz`` file, or one image file.

- A folder is read recursively (`mrcnf_cli.data.folders`): its train/ and test/ (or val/)
  subfolders are the splits, else every 10th file in sorted order is a test file.
- An ``.npz`` file stores the images under the key ``data`` (else ``images``) in one of the
  layouts of `mrcnf_cli.data.layouts`. Every 10th image is a test image.
- One image file is the whole set, whatever the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from mrcnf_cli.data.folders import folder_sources
from mrcnf_cli.data.layouts import (
    Layout,
    infer_layout,
    load_npz_member,
    npz_keys,
    npz_member_header,
    to_channels_first,
)
from mrcnf_cli.data.splits import TEST_EVERY, is_test_index
from mrcnf_cli.data.sources import ArraySource, Chunk, FileSource, Source
from mrcnf_cli.errors import DataError

NPZ_KEYS = ("data", "images")


def find_path_sources(path: Path, split: str) -> list[Source]:
    """Find the images of `split` ("train", "test" or "all") at `path`."""
    if path.is_dir():
        return list(folder_sources(path, split, label="folder"))

    if path.suffix.lower() == ".npz":
        return [_npz_source(path, split)]

    return [FileSource(description=f"image file {path}", files=(path,), cache_by_default=False)]


def _npz_source(path: Path, split: str) -> ArraySource:
    keys = npz_keys(path)
    key = next((key for key in NPZ_KEYS if key in keys), None)
    if key is None:
        found = ", ".join(keys) or "none"
        raise DataError(f"{path} has the arrays {found}; store the images under the key 'data' or 'images'")

    shape, dtype = npz_member_header(path, key)
    if dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path} stores {key!r} as {dtype}; store pixel values 0..255 as uint8")

    layout = infer_layout(shape, source=f"{path} key {key!r}")
    rows = _split_rows(layout.count, split)
    if not len(rows):
        raise DataError(
            f"{path} has {layout.count} images, too few for a {split} split (every {TEST_EVERY}th image "
            "is a test image); pass split 'all'"
        )

    return ArraySource(
        description=f"{path} key {key!r}" + ("" if split == "all" else f" ({split} split)"),
        files=(path,),
        count=len(rows),
        size=layout.size,
        read_chunks=partial(_read_npz, path, key, layout, rows),
        selection=f"{key} {split}",
        cache_by_default=True,
    )


def _split_rows(count: int, split: str) -> np.ndarray:
    indices = np.arange(count)
    if split == "all":
        return indices

    test = is_test_index(indices)
    return indices[test] if split == "test" else indices[~test]


def _read_npz(path: Path, key: str, layout: Layout, rows: np.ndarray) -> Iterator[Chunk]:
    array = load_npz_member(path, key)
    images = to_channels_first(array, layout)
    if len(rows) != len(images):
        images = images[rows]
    yield f"{path} key {key!r}", images

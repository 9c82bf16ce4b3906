"""Downsampled ImageNet at 32x32 or 64x64 (Chrabaszcz, Loshchilov and Hutter, 2017).

Two releases are read:

- npz batches: ``train_data_batch_1.npz`` .. ``train_data_batch_10.npz`` (train) and
  ``val_data.npz`` (test), each with ``data``, a uint8 array (N, 3*S*S) of planar rows (the R
  plane, then G, then B);
- PNG folders: ``train_SxS/`` (train) and ``valid_SxS/`` (test), one S x S PNG per image.

The npz batches are used when all files of the split are present, else the PNG folder. Large
splits go through the memory-mapped cache (`mrcnf_cli.data.cache`), filled batch by batch: the
ImageNet64 train split is about 15.7 GB as uint8 (1,281,167 images of 12,288 bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from mrcnf_cli.data.folders import list_image_files
from mrcnf_cli.data.layouts import load_npz_member, npz_member_header, planar_layout, to_channels_first
from mrcnf_cli.data.locate import candidate_folders, describe_names, find_files, missing_set_error
from mrcnf_cli.data.sources import ArraySource, Chunk, FileSource, Source
from mrcnf_cli.errors import DataError

NPZ_KEY = "data"
TRAIN_BATCHES = 10


def npz_file_names(split: str) -> tuple[str, ...]:
    """Return the npz file names of `split` ("train" or "test")."""
    if split == "train":
        return tuple(f"train_data_batch_{number}.npz" for number in range(1, TRAIN_BATCHES + 1))
    return ("val_data.npz",)


def png_folder_name(split: str, side: int) -> str:
    """Return the folder name of `split` in the PNG release, such as ``train_64x64``."""
    prefix = "train" if split == "train" else "valid"
    return f"{prefix}_{side}x{side}"


def folder_names(side: int) -> tuple[str, ...]:
    """List the folders, relative to the data folder, that may contain the files.

    The release archives unpack into folders such as ``Imagenet64_train_part1_npz``; the
    64x64 training batches come in two parts.
    """
    tops = (f"imagenet{side}", f"Imagenet{side}")
    subfolders = tuple(
        f"Imagenet{side}_{part}{suffix}"
        for part in ("train", "train_part1", "train_part2", "val")
        for suffix in ("_npz", "")
    )
    return tops + tuple(f"{top}/{sub}" for top in tops for sub in subfolders) + subfolders


def expected_files(side: int) -> str:
    """Describe the files the set needs, in one line."""
    return (
        f"train_data_batch_1.npz .. train_data_batch_10.npz (train) and val_data.npz (test), or the PNG "
        f"folders train_{side}x{side}/ and valid_{side}x{side}/, in DATA_DIR/imagenet{side}/"
    )


def find_sources(data_dir: Path, split: str, *, side: int) -> list[Source]:
    """Find `split` ("train" or "test") of downsampled ImageNet at `side` x `side` under `data_dir`."""
    name = f"imagenet{side}"
    folders = folder_names(side)

    png_folder_path = png_folder_name(split, side)
    for folder in candidate_folders(data_dir, folders):
        if (folder / png_folder_path).is_dir() and not _all_npz_present(data_dir, folders, split):
            return [_png_source(folder / png_folder_path, name=name, split=split, side=side)]

    if not _any_npz_present(data_dir, folders, split):
        expected = f"{describe_names(npz_file_names(split))} or the folder {png_folder_path}/"
        raise missing_set_error(name, split, expected, candidate_folders(data_dir, folders))

    paths = find_files(data_dir, folders, npz_file_names(split), dataset=name, split=split)
    return [_npz_source(paths, name=name, split=split, side=side)]


def _all_npz_present(data_dir: Path, folders: tuple[str, ...], split: str) -> bool:
    candidates = candidate_folders(data_dir, folders)
    return all(any((folder / file).is_file() for folder in candidates) for file in npz_file_names(split))


def _any_npz_present(data_dir: Path, folders: tuple[str, ...], split: str) -> bool:
    candidates = candidate_folders(data_dir, folders)
    return any((folder / file).is_file() for folder in candidates for file in npz_file_names(split))


def _png_source(folder: Path, *, name: str, split: str, side: int) -> FileSource:
    files = list_image_files(folder)
    if not files:
        raise DataError(
            f"{name} {split} folder {folder} contains no image files; pass the PNG release's {folder.name}/ folder"
        )
    return FileSource(
        description=f"{name} {split} folder {folder}", files=tuple(files), expected_size=(side, side)
    )


def _npz_source(paths: list[Path], *, name: str, split: str, side: int) -> ArraySource:
    count = 0
    for path in paths:
        shape, dtype = npz_member_header(path, NPZ_KEY)
        if dtype != np.uint8:
            raise DataError(
                f"{path} stores {NPZ_KEY!r} as {dtype}; expected uint8 pixel values, as in the {name} release"
            )
        count += planar_layout(shape, side=side, source=str(path)).count

    folders = sorted({str(path.parent) for path in paths})
    return ArraySource(
        description=f"{name} {split} batches in {', '.join(folders)}",
        files=tuple(paths),
        count=count,
        size=(side, side),
        read_chunks=partial(_read_batches, tuple(paths), side),
        cache_by_default=True,
    )


def _read_batches(paths: tuple[Path, ...], side: int) -> Iterator[Chunk]:
    for path in paths:
        data = load_npz_member(path, NPZ_KEY)
        layout = planar_layout(data.shape, side=side, source=str(path))
        yield str(path), to_channels_first(data, layout)

"""Folders of image files: listing them, and their train and test splits.

A folder with a ``train/`` subfolder and a ``test/`` (or ``val/``) subfolder takes its splits
from them; ``test/`` wins when both ``test/`` and ``val/`` exist. Any other folder is one set,
split by `mrcnf_cli.data.splits.select_split`: in sorted order, every 10th file is a test file.
"""

from __future__ import annotations

import os
from pathlib import Path

from mrcnf_cli.data.decode import IMAGE_SUFFIXES
from mrcnf_cli.data.splits import TEST_EVERY, select_split
from mrcnf_cli.data.sources import FileSource
from mrcnf_cli.errors import DataError

SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}


def list_image_files(folder: Path) -> list[Path]:
    """List the image files under `folder`, recursively, sorted by their path inside it.

    Files are recognised by suffix (IMAGE_SUFFIXES, any case). Hidden files and folders, whose
    names start with ".", are skipped, such as the "._name.jpg" files macOS leaves on shared drives.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    root = os.fspath(folder)
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        relative = os.path.relpath(directory, root)
        parts = () if relative == os.curdir else tuple(relative.split(os.sep))
        for name in names:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            found.append(((*parts, name), os.path.join(directory, name)))

    found.sort()
    return [Path(path) for _, path in found]


def split_folder(folder: Path, split: str) -> Path | None:
    """Return the subfolder that contains `split` ("train" or "test"), or None when there is none."""
    for name in SPLIT_FOLDERS[split]:
        if (folder / name).is_dir():
            return folder / name
    return None


def has_split_folders(folder: Path) -> bool:
    """Return whether `folder` has a train/, test/ or val/ subfolder."""
    return split_folder(folder, "train") is not None or split_folder(folder, "test") is not None


def folder_sources(
    folder: Path, split: str, *, label: str, expected_size: tuple[int, int] | None = None
) -> list[FileSource]:
    """Find the image files of `split` ("train", "test" or "all") in `folder`.

    Args:
        label: what the folder is, for messages ("folder", "imagenet128").
        expected_size: the size (H, W) every file must have, or None.

    Raises:
        DataError: the folder or the split contains no image files.
    """
    if has_split_folders(folder):
        splits = ("train", "test") if split == "all" else (split,)
        sources = []
        for name in splits:
            subfolder = split_folder(folder, name)
            if subfolder is None:
                wanted = " or ".join(f"{folder / option}/" for option in SPLIT_FOLDERS[name])
                raise DataError(
                    f"{label} {folder} has split folders but no {wanted}; add it, or pass another split"
                )
            files = list_image_files(subfolder)
            sources.append(_source(subfolder, files, label=label, expected_size=expected_size))
        return sources

    files = list_image_files(folder)
    if not files:
        raise _no_images_error(label, folder)

    chosen = select_split(files, split)
    if not chosen:
        raise DataError(
            f"{label} {folder} has {len(files)} images, too few for a {split} split (every {TEST_EVERY}th "
            "file is a test file); pass split 'all', or add train/ and test/ subfolders"
        )
    description = f"{label} {folder}" if split == "all" else f"{label} {folder} ({split} split)"
    return [FileSource(description=description, files=tuple(chosen), expected_size=expected_size)]


def _source(
    folder: Path, files: list[Path], *, label: str, expected_size: tuple[int, int] | None
) -> FileSource:
    if not files:
        raise _no_images_error(label, folder)
    return FileSource(description=f"{label} {folder}", files=tuple(files), expected_size=expected_size)


def _no_images_error(label: str, folder: Path) -> DataError:
    suffixes = ", ".join(IMAGE_SUFFIXES)
    return DataError(f"{label} {folder} contains no image files ({suffixes}); pass a folder of images")

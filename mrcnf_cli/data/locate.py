"""Lookup of named data sets in the data folder and in the usual folder names inside it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mrcnf_cli.errors import DataError

DATA_ENV = "MRCNF_DATA"
DEFAULT_DATA_DIR = "data"

# Folders listed in a "not found" message; a longer list is shortened.
MAX_FOLDERS_SHOWN = 6


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """Return `data_dir`, else $MRCNF_DATA, else ./data."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def candidate_folders(
    data_dir: Path, folder_names: Sequence[str], *, include_data_dir: bool = True
) -> list[Path]:
    """List the folders searched for a set's files: each usual name under data_dir, then data_dir."""
    folders = [data_dir / name for name in folder_names]
    return folders + [data_dir] if include_data_dir else folders


def find_files(
    data_dir: Path, folder_names: Sequence[str], file_names: Sequence[str], *, dataset: str, split: str
) -> list[Path]:
    """Find each of `file_names` in the first candidate folder that contains it.

    The files of one split may lie in different folders, as the two archives of the ImageNet64
    training batches unpack into two folders.

    Raises:
        DataError: a file is in none of the folders; the message lists the files and the folders.
    """
    folders = candidate_folders(data_dir, folder_names)
    found: list[Path] = []
    missing: list[str] = []
    for file_name in file_names:
        path = next((folder / file_name for folder in folders if (folder / file_name).is_file()), None)
        if path is None:
            missing.append(file_name)
        else:
            found.append(path)

    if missing:
        raise missing_set_error(dataset, split, describe_names(missing), folders)
    return found


def find_folder(
    data_dir: Path,
    folder_names: Sequence[str],
    marker: str,
    *,
    dataset: str,
    split: str,
    expected: str,
    include_data_dir: bool = True,
) -> Path:
    """Return the first candidate folder that contains `marker` (a file or folder path inside it).

    Raises:
        DataError: no candidate folder contains `marker`; the message names the `expected` files and the folders.
    """
    folders = candidate_folders(data_dir, folder_names, include_data_dir=include_data_dir)
    for folder in folders:
        if (folder / marker).exists():
            return folder

    raise missing_set_error(dataset, split, expected, folders)


def missing_set_error(dataset: str, split: str, expected: str, folders: Sequence[Path]) -> DataError:
    """Build the error for a set that is not on disk; nothing is ever downloaded."""
    shown = [str(folder) for folder in folders]
    if len(shown) > MAX_FOLDERS_SHOWN:
        hidden = len(shown) - MAX_FOLDERS_SHOWN
        shown = [*shown[: MAX_FOLDERS_SHOWN - 1], f"{hidden} more usual folder names", shown[-1]]
    places = ", ".join(shown)
    return DataError(
        f"{dataset} {split} split not found: expected {expected} in one of {places}; "
        "mrcnf downloads nothing, so put the files there or pass --data-dir"
    )


def describe_names(names: Sequence[str]) -> str:
    """Join file names for a message, shortening long lists to the first and last."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]} .. {names[-1]} ({len(names)} files)"

"""Sources of images that readers find on disk: array files, or image files with one image each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (origin named in errors, pixels uint8 or uint16 of shape (n, C, H, W) with C in 1, 2, 3, 4)
Chunk = tuple[str, np.ndarray]


@dataclass(frozen=True)
class ArraySource:
    """Images stored as arrays inside files: pickle batches, MATLAB files, npz archives.

    Attributes:
        description: where the images come from, for logs.
        files: the files read; their paths, sizes and modification times key the cache.
        count: number of images that `read_chunks` yields in total.
        size: image size (H, W) as stored.
        read_chunks: callable that yields the images in order, in chunks.
        selection: which records of the files are taken (part of the cache key).
        convert: the set itself defines the lossy conversions (the built-in photos turn grey by
            the luma rule without being asked).
        cache_by_default: keep a memory-mapped cache when the set is large and `cache` is None.
    """

    description: str
    files: tuple[Path, ...]
    count: int
    size: tuple[int, int]
    read_chunks: Callable[[], Iterator[Chunk]]
    selection: str = "all"
    convert: bool = False
    cache_by_default: bool = False


@dataclass(frozen=True)
class FileSource:
    """Images stored one per file, decoded in the order of `files`.

    Attributes:
        description: where the images come from, for logs.
        files: the image files.
        expected_size: the size (H, W) every file must have as stored, or None when the files
            only have to agree with each other.
        cache_by_default: keep a memory-mapped cache when the set is large and `cache` is None.
    """

    description: str
    files: tuple[Path, ...]
    expected_size: tuple[int, int] | None = None
    cache_by_default: bool = True

    @property
    def count(self) -> int:
        """Number of images."""
        return len(self.files)


Source = ArraySource | FileSource


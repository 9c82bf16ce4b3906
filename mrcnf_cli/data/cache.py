"""The memory-mapped cache of decoded sets: uint8 ``.npy`` files under $MRCNF_CACHE.

A cache file contains one split of one set after conversion and downsampling, shape (N, C, H, W).
Its name ends in a hash of the load settings and of every source file's path, size and
modification time, so a changed file or setting leads to a new cache file. Old cache files are
never deleted; remove the folder to reclaim the space.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mrcnf_cli.data.sources import ArraySource, Source
from mrcnf_cli.errors import DataError

logger = logging.getLogger(__name__)

CACHE_ENV = "MRCNF_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/mrcnf"

# Bumped when the cache layout or a conversion rule changes, so old files are not reused.
CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Return the cache folder: $MRCNF_CACHE, else ~/.cache/mrcnf."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cache_path(name: str, settings: dict[str, object], sources: Sequence[Source]) -> Path:
    """Return the cache file for a set loaded with `settings` from `sources`.

    Stats every source file, which takes a few seconds for a million files.
    """
    hasher = hashlib.sha256()
    hasher.update(json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True).encode())
    for source in sources:
        selection = source.selection if isinstance(source, ArraySource) else "files"
        hasher.update(f"{type(source).__name__}\0{selection}\0{source.count}\n".encode())
        for path in source.files:
            status = path.stat()
            hasher.update(f"{path.resolve()}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())

    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "images"
    return cache_dir() / f"{readable}-{hasher.hexdigest()[:20]}.npy"


def open_cached(path: Path, *, count: int, channels: int, size: tuple[int, int] | None) -> np.memmap | None:
    """Open a cache file read-only, or return None when it is missing or does not fit.

    Args:
        count, channels, size: the expected shape (N, C, H, W); `size` None accepts any H, W.
    """
    if not path.is_file():
        return None

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable cache file %s (%s); building it again", path, error)
        return None

    expected_leading = (count, channels)
    fits = (
        isinstance(array, np.memmap)
        and array.dtype == np.uint8
        and array.ndim == 4
        and array.shape[:2] == expected_leading
        and (size is None or array.shape[2:] == size)
    )
    if not fits:
        logger.warning("ignoring cache file %s of shape %s; building it again", path, array.shape)
        return None

    return array


@contextlib.contextmanager
def writing_cache(path: Path, shape: tuple[int, int, int, int]) -> Iterator[np.memmap]:
    """Yield a writable uint8 memmap of `shape`, moved to `path` only when the block succeeds.

    The array is written under a temporary name in the same folder and then renamed with
    os.replace, so a crash or an error leaves no partial cache file at `path`.

    Raises:
        DataError: the cache folder cannot be written or lacks the space for the array.
    """
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        array = _create_memmap(temporary, shape)
        yield array

        array.flush()
        del array
        os.replace(temporary, path)
    finally:
        # Cleanup must not hide the error that ended the block, such as a cache path that is not a folder.
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _create_memmap(path: Path, shape: tuple[int, int, int, int]) -> np.memmap:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(path.parent, int(np.prod(shape)))
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as error:
        raise DataError(
            f"cannot write the cache file {path} ({error}); set {CACHE_ENV} to a writable folder, "
            "or pass cache=False"
        ) from None

    _reserve_blocks(path)
    return array


def _check_free_space(folder: Path, nbytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise DataError(
            f"the cache needs {nbytes / 2**30:.1f} GiB in {folder} but {free / 2**30:.1f} GiB are free; "
            f"set {CACHE_ENV} to a folder with room, or pass cache=False"
        )


def _reserve_blocks(path: Path) -> None:
    # A memmap writes to a sparse file, and a full disk would then kill the process with SIGBUS;
    # allocating the blocks up front turns that into an error here.
    if not hasattr(os, "posix_fallocate"):
        return

    with open(path, "r+b") as stream:
        size = os.fstat(stream.fileno()).st_size
        try:
            os.posix_fallocate(stream.fileno(), 0, size)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DataError(
                    f"no space left for the cache file {path}; set {CACHE_ENV} to a folder with room"
                ) from None
            # NOTE: file systems without fallocate (EOPNOTSUPP) keep the sparse file.
            logger.debug("cannot reserve blocks for %s: %s", path, error)

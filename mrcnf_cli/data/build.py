"""Assembly of one uint8 array (N, C, H, W) from a reader's sources, in memory or in the cache.

Pixels pass through the mode conversion and the box downsampling in chunks of at most
`CHUNK_IMAGES` images, so no step keeps more than the output array and one chunk, and nothing
is expanded to float. Image files of more than a few kilobytes are decoded by a pool of threads.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrcnf_cli.data.cache import cache_path, open_cached, writing_cache
from mrcnf_cli.data.decode import read_pixels
from mrcnf_cli.data.modes import to_model_pixels
from mrcnf_cli.data.resize import box_downsample, downsample_factor, format_size
from mrcnf_cli.data.sources import ArraySource, FileSource, Source
from mrcnf_cli.errors import DataError

logger = logging.getLogger(__name__)

# Sets at least this large (after conversion) are cached when the caller leaves `cache` as None.
CACHE_MIN_BYTES = 64 * 2**20

CHUNK_IMAGES = 4096

# Image files per decoding task; small enough to spread over the threads, large enough to keep
# the per-task overhead small.
FILES_PER_TASK = 256

PROGRESS_SECONDS = 30.0

# Files whose mean size is below this are decoded in one thread (see _decode_workers).
THREADED_DECODE_MIN_BYTES = 16 * 2**10
MAX_DECODE_THREADS = 8

# Pillow's name for the pixel format of an array with this many channels, used in messages.
ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Target:
    """The output every source is converted to.

    Attributes:
        channels: 1 or 3.
        convert: allow lossy mode conversions.
        image_size: the side of the square output images, or None to keep the stored size.
    """

    channels: int
    convert: bool
    image_size: int | None


def build_array(
    sources: Sequence[Source], target: Target, *, name: str, settings: dict[str, object], cache: bool | None
) -> np.ndarray:
    """Read every source into one uint8 array (N, C, H, W), in source order.

    Args:
        name: readable start of the cache file name.
        settings: everything besides the source files that changes the result (set, split,
            channels, convert, image_size); it keys the cache.
        cache: True to build or reuse a memory-mapped cache file, False to decode into memory,
            None to cache only sets of at least CACHE_MIN_BYTES from sources that prefer it.

    Returns:
        A numpy array, or a read-only np.memmap when the cache is used.
    """
    count = sum(source.count for source in sources)
    if count == 0:
        raise DataError(f"{name} contains no images; pass a set or folder with at least one image")

    size = _known_output_size(sources, target) or _first_file_size(sources, target)
    nbytes = count * target.channels * size[0] * size[1]

    use_cache = cache
    if use_cache is None:
        use_cache = any(source.cache_by_default for source in sources) and nbytes >= CACHE_MIN_BYTES

    if not use_cache:
        array = np.empty((count, target.channels, *size), dtype=np.uint8)
        _fill(array, sources, target)
        return array

    path = cache_path(name, settings, sources)
    cached = open_cached(path, count=count, channels=target.channels, size=size)
    if cached is not None:
        logger.info("reusing cached %s from %s", name, path)
        return cached

    logger.info("building cache %s (%.2f GiB)", path, nbytes / 2**30)
    with writing_cache(path, (count, target.channels, *size)) as array:
        _fill(array, sources, target)

    return np.load(path, mmap_mode="r", allow_pickle=False)


def _known_output_size(sources: Sequence[Source], target: Target) -> tuple[int, int] | None:
    # Check the stored size of every source that declares one now, before any decoding starts.
    declared = []
    for source in sources:
        stored = source.size if isinstance(source, ArraySource) else source.expected_size
        if stored is None:
            continue
        if target.image_size is not None:
            downsample_factor(stored, target.image_size, source=source.description)
        declared.append((source, stored))

    if target.image_size is not None:
        return (target.image_size, target.image_size)

    if not declared:
        return None

    first_size = declared[0][1]
    for source, stored in declared:
        if stored != first_size:
            raise DataError(
                f"{source.description} contains {format_size(stored)} images but another part of the set "
                f"contains {format_size(first_size)}; pass image_size to downsample them to one size"
            )
    return first_size


def _first_file_size(sources: Sequence[Source], target: Target) -> tuple[int, int]:
    first = next(source.files[0] for source in sources if isinstance(source, FileSource) and source.files)
    pixels, _ = read_pixels(first, convert=target.convert)
    return pixels.shape[-2], pixels.shape[-1]


def _fill(array: np.ndarray, sources: Sequence[Source], target: Target) -> None:
    start = 0
    for source in sources:
        started = time.perf_counter()
        if isinstance(source, ArraySource):
            _fill_from_arrays(array[start : start + source.count], source, target)
        else:
            _fill_from_files(array[start : start + source.count], source, target)

        seconds = time.perf_counter() - started
        logger.info("read %d images from %s in %.1f s", source.count, source.description, seconds)
        start += source.count


def _fill_from_arrays(out: np.ndarray, source: ArraySource, target: Target) -> None:
    convert = target.convert or source.convert
    written = 0
    for origin, chunk in source.read_chunks():
        for first in range(0, len(chunk), CHUNK_IMAGES):
            part = chunk[first : first + CHUNK_IMAGES]
            if written + len(part) > len(out):
                raise DataError(
                    f"{origin} contains more images than when it was first read; load the set again"
                )

            mode = ARRAY_MODES.get(part.shape[1], f"{part.shape[1]}-channel")
            pixels = to_model_pixels(
                part, channels=target.channels, convert=convert, source=origin, mode=mode
            )
            out[written : written + len(part)] = _resize(pixels, part.shape[-2:], target, origin)
            written += len(part)

    if written != len(out):
        raise DataError(
            f"{source.description} contained {written} images where {len(out)} were expected; "
            "load the set again"
        )


def _fill_from_files(out: np.ndarray, source: FileSource, target: Target) -> None:
    output_size = out.shape[-2:]
    starts = range(0, len(source.files), FILES_PER_TASK)
    tasks = [(first, source.files[first : first + FILES_PER_TASK]) for first in starts]

    def decode_task(first: int, files: Sequence[Path]) -> int:
        for offset, path in enumerate(files):
            out[first + offset] = _decode_file(path, source, target, output_size)
        return len(files)

    workers = _decode_workers(source.files)
    if workers == 1:
        _report_progress((decode_task(first, files) for first, files in tasks), source)
        return

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        futures = [pool.submit(decode_task, first, files) for first, files in tasks]
        try:
            _report_progress((future.result() for future in futures), source)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _report_progress(decoded_counts: Iterator[int], source: FileSource) -> None:
    done = 0
    last_report = time.perf_counter()
    for decoded in decoded_counts:
        done += decoded
        if time.perf_counter() - last_report > PROGRESS_SECONDS:
            logger.info("decoded %d of %d files from %s", done, len(source.files), source.description)
            last_report = time.perf_counter()


def _decode_workers(files: Sequence[Path]) -> int:
    # Pillow releases the GIL while it decodes, but a file of a few kilobytes spends most of its
    # time in Python code that holds it. Measured with load_dataset on a 2-core machine, two
    # threads made 10,000 CIFAR-10 JPEGs (about 1 KB each) slower, 2.0 s against 1.4 s, and
    # 1,000 128x128 PNGs (about 30 KB each) faster, 0.4 s against 0.7 s.
    sample = files[:64]
    mean_bytes = sum(path.stat().st_size for path in sample) / max(len(sample), 1)
    if mean_bytes < THREADED_DECODE_MIN_BYTES:
        return 1
    return min(MAX_DECODE_THREADS, os.cpu_count() or 1)


def _decode_file(path: Path, source: FileSource, target: Target, output_size: tuple[int, int]) -> np.ndarray:
    pixels, mode = read_pixels(path, convert=target.convert)
    stored = (pixels.shape[-2], pixels.shape[-1])
    if source.expected_size is not None and stored != source.expected_size:
        raise DataError(
            f"{path} is {format_size(stored)} (height x width) but {source.description} should contain "
            f"{format_size(source.expected_size)} images; remove or resize that file"
        )

    if target.image_size is None and stored != output_size:
        raise DataError(
            f"{path} is {format_size(stored)} (height x width) but the set's images are "
            f"{format_size(output_size)}; pass image_size to downsample all to one size, or remove that file"
        )

    pixels = to_model_pixels(
        pixels, channels=target.channels, convert=target.convert, source=str(path), mode=mode
    )
    return _resize(pixels, stored, target, str(path))


def _resize(pixels: np.ndarray, stored: tuple[int, int], target: Target, origin: str) -> np.ndarray:
    if target.image_size is None:
        return pixels

    factor = downsample_factor(tuple(stored), target.image_size, source=origin)
    return box_downsample(pixels, factor)

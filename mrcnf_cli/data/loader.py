"""load_dataset: the one entry point from a set name or path to an ImageSet."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mrcnf_cli.data.build import Target, build_array
from mrcnf_cli.data.imageset import ImageSet
from mrcnf_cli.data.locate import resolve_data_dir
from mrcnf_cli.data.modes import MODEL_CHANNELS
from mrcnf_cli.data.paths import find_path_sources
from mrcnf_cli.data.registry import DATASETS
from mrcnf_cli.data.sources import Source
from mrcnf_cli.data.splits import normalize_split
from mrcnf_cli.errors import DataError, InputError

logger = logging.getLogger(__name__)


def load_dataset(
    name_or_path: str,
    *,
    split: str = "train",
    data_dir: str | Path | None = None,
    channels: int = 3,
    convert: bool = False,
    image_size: int | None = None,
    cache: bool | None = None,
) -> ImageSet:
    """Load a named set or the images at a path as uint8 images (N, C, H, W).

    Args:
        name_or_path: a name in DATASETS, or a path to a folder of images, an .npz file or one
            image file. A name always means the named set; write ``./cifar10`` for a folder of
            that name.
        split: "train", "test" ("val" is the same) or "all" (both, or every image of a path).
        data_dir: where named sets are looked for; default $MRCNF_DATA, else ./data.
        channels: the model's channel count, 1 or 3.
        convert: allow lossy mode conversions (alpha, 16-bit, colour to grey); see
            `mrcnf_cli.data.modes`.
        image_size: box-downsample square images to image_size x image_size by an integer factor
            (for the photos set: the crop size, default 32).
        cache: True to keep the decoded set in a memory-mapped file under $MRCNF_CACHE, False
            to decode into memory, None to cache large npz and image-file sets only.

    Raises:
        InputError: an invalid split, channel count or image_size.
        DataError: the set is missing or empty, or contains images the model cannot take.
    """
    split = normalize_split(split)
    _check_options(channels=channels, image_size=image_size)

    started = time.perf_counter()
    sources, name = _find_sources(name_or_path, split=split, data_dir=data_dir, image_size=image_size)

    target = Target(channels=channels, convert=convert, image_size=image_size)
    settings = {
        "set": name,
        "split": split,
        "channels": channels,
        "convert": convert,
        "image_size": image_size,
    }
    array = build_array(sources, target, name=f"{Path(name).name}-{split}", settings=settings, cache=cache)

    source = "; ".join(source.description for source in sources)
    logger.info(
        "loaded %s %s: %d images of %dx%dx%d (C x H x W) from %s in %.1f s",
        name, split, len(array), *array.shape[1:], source, time.perf_counter() - started,
    )
    return ImageSet(array, name=name, split=split, source=source)


def _check_options(*, channels: int, image_size: int | None) -> None:
    if channels not in MODEL_CHANNELS:
        raise InputError(f"invalid channel count {channels!r}; pass 1 (grey) or 3 (RGB)")

    valid_size = isinstance(image_size, int) and not isinstance(image_size, bool) and image_size >= 1
    if image_size is not None and not valid_size:
        raise InputError(
            f"invalid image_size {image_size!r}; pass a positive whole number of pixels, or None"
        )


def _find_sources(
    name_or_path: str, *, split: str, data_dir: str | Path | None, image_size: int | None
) -> tuple[list[Source], str]:
    reader = DATASETS.get(name_or_path)
    if reader is not None:
        root = resolve_data_dir(data_dir)
        splits = ("train", "test") if split == "all" else (split,)
        sources = [source for name in splits for source in reader.find_sources(root, name, image_size)]
        return sources, reader.name

    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(
            f"data set {name_or_path!r} is not a known name ({', '.join(DATASETS)}) and the path {path} "
            "was not found; pass one of those names, or a folder, .npz or image file that exists"
        )
    return find_path_sources(path, split), str(name_or_path)

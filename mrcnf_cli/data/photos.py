"""The built-in set: crops of colour photographs that ship inside the scikit-image package.

The files are read by path from the ``skimage/data/`` folder of the installed package, so
nothing is downloaded. scikit-image's own loaders are not called, because some of them fetch
files from the network. Six everyday photographs are used (the other images there are grey,
synthetic, microscopy, medical or astronomical):

- train: astronaut.png, coffee.png, motorcycle_left.png, motorcycle_right.png;
- test: chelsea.png, rocket.jpg.

The two motorcycle photographs are a stereo pair of one scene, so both are train photographs
and no test crop shows a training scene. Each photograph is cut into non-overlapping crops of
image_size x image_size (32 by default) on a grid that starts at its top-left corner with a stride
of image_size. The strips left at the right and bottom edges are dropped. Crops are ordered by
photograph (in the order above) and then row by row. For a 1-channel model the crops are turned
grey by the ITU-R 601-2 luma rule (`mrcnf_cli.data.modes.luma`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mrcnf_cli.data.decode import read_pixels
from mrcnf_cli.data.resize import format_size
from mrcnf_cli.data.sources import ArraySource, Chunk, Source
from mrcnf_cli.errors import DataError

NAME = "photos"
DESCRIPTION = "built-in colour photographs from the installed scikit-image package, cut into square crops"
DEFAULT_CROP = 32
PHOTOGRAPHS = {
    "train": ("astronaut.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png"),
    "test": ("chelsea.png", "rocket.jpg"),
}
EXPECTED_FILES = (
    f"{', '.join(PHOTOGRAPHS['train'] + PHOTOGRAPHS['test'])} in the skimage/data/ folder of the "
    "installed scikit-image package (nothing under DATA_DIR)"
)


def photographs_folder() -> Path:
    """Return the ``skimage/data`` folder of the installed scikit-image, without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the photos set needs scikit-image installed; install it with pip install scikit-image"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def find_sources(data_dir: Path, split: str, *, image_size: int | None) -> list[Source]:
    """Cut the photographs of `split` ("train" or "test") into crops of image_size (default 32).

    `data_dir` is not used: the photographs come with scikit-image.
    """
    crop = DEFAULT_CROP if image_size is None else image_size
    folder = photographs_folder()
    paths = [folder / name for name in PHOTOGRAPHS[split]]
    crops = [(str(path), _crop_grid(path, crop)) for path in paths]

    def read_chunks() -> Iterator[Chunk]:
        yield from crops

    return [
        ArraySource(
            description=f"{NAME} {split} photographs in {folder}",
            files=tuple(paths),
            count=sum(len(pixels) for _, pixels in crops),
            size=(crop, crop),
            read_chunks=read_chunks,
            selection=f"crops of {crop}",
            convert=True,
        )
    ]


def _crop_grid(path: Path, crop: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"built-in photograph {path} is missing; reinstall scikit-image, or pass another data set"
        )

    pixels, mode = read_pixels(path, convert=False)
    if mode != "RGB":
        raise DataError(f"built-in photograph {path} has mode {mode}, not RGB; reinstall scikit-image")

    _, height, width = pixels.shape
    rows, columns = height // crop, width // crop
    if rows == 0 or columns == 0:
        raise DataError(
            f"photos image_size {crop} is larger than the photograph {path.name} "
            f"({format_size((height, width))}); pass a smaller image_size"
        )

    grid = pixels[:, : rows * crop, : columns * crop].reshape(3, rows, crop, columns, crop)
    return np.ascontiguousarray(grid.transpose(1, 3, 0, 2, 4).reshape(rows * columns, 3, crop, crop))

"""Evaluation job on a stack directory: BPD of a data set or of image files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrcnf_cli.data import load_dataset
from mrcnf_cli.data.decode import read_image
from mrcnf_cli.errors import DataError, ImageSizeError, InputError
from mrcnf_cli.evaluate import BpdReport, configure_evaluation, evaluate_bpd, iterate_batches
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.stack import MultiResFlow
from mrcnf_cli.store import format_sizes, load_stack

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """An evaluation of a stack directory: the report and what was evaluated."""

    report: BpdReport
    model_dir: str
    data: str
    split: str
    trace: str
    seed: int


def evaluate_model(
    model_dir: Path,
    *,
    data: str | None = None,
    images: list[Path] | None = None,
    split: str = "test",
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    convert: bool = False,
    trace: str = "hutchinson",
    solver: SolverConfig | None = None,
    batch_size: int = 64,
    max_images: int | None = None,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
) -> Evaluation:
    """Evaluate the BPD of a data set or of image files under a stack directory.

    The stack's files are only read. Dequantization noise and probes come from ``seed``, so
    two runs give the same numbers.
    """
    if (data is None) == (not images):
        raise InputError("give either --data or image files, not both and not neither")
    if max_images is not None and max_images < 1:
        raise InputError(f"--max-images must be positive, got {max_images}")

    loaded = load_stack(Path(model_dir), device=device)
    stack = loaded.stack
    configure_evaluation(stack, trace=trace, solver=solver)

    names = None
    if images:
        array, names = read_image_files(images, channels=stack.config.channels, convert=convert)
        description, split = f"{len(images)} image files", "files"
    else:
        image_set = _load_at_stack_size(
            data, stack, split=split, data_dir=data_dir, convert=convert, image_size=image_size
        )
        array, description = image_set.array, image_set.name

    stack.level_count_for(_checked_size(array, stack))
    report = evaluate_bpd(
        stack, iterate_batches(array, batch_size, max_images), seed=seed, names=names, keep_rows=names is not None
    )
    return Evaluation(report, str(model_dir), description, split, trace, seed)


def _load_at_stack_size(data: str, stack: MultiResFlow, *, split: str, data_dir, convert: bool, image_size: int | None):
    """Load a data set; without ``image_size``, box-downsample larger square images to the stack's finest size.

    Data that cannot be downsampled to that size (smaller images, another aspect) is loaded as
    stored, and the size check that follows names the fix.
    """
    options = {"split": split, "data_dir": data_dir, "channels": stack.config.channels, "convert": convert}
    height, width = stack.sizes[-1]
    if image_size is None and height == width:
        try:
            return load_dataset(data, image_size=height, **options)
        except DataError:
            logger.debug("data set %s does not downsample to %dx%d; loading it as stored", data, height, width)
    return load_dataset(data, image_size=image_size, **options)


def _checked_size(array: np.ndarray, stack: MultiResFlow) -> tuple[int, int]:
    size = tuple(array.shape[-2:])
    if size not in stack.sizes:
        raise ImageSizeError(
            f"images of size {size[0]}x{size[1]} cannot be evaluated by this stack: it takes {format_sizes(stack.sizes)}; "
            f"pass --image-size {stack.sizes[-1][0]} to box-downsample a data set, or crop or resize the images"
        )
    return size


def read_image_files(paths: list[Path], *, channels: int, convert: bool) -> tuple[np.ndarray, list[str]]:
    """Read image files into one uint8 array (N, C, H, W); all must share one size."""
    pixels = [read_image(Path(path), channels=channels, convert=convert) for path in paths]
    sizes = {tuple(image.shape[-2:]) for image in pixels}
    if len(sizes) > 1:
        listing = ", ".join(f"{path} is {image.shape[-2]}x{image.shape[-1]}" for path, image in zip(paths, pixels))
        raise ImageSizeError(f"the images differ in size ({listing}); evaluate each size separately")
    return np.stack(pixels), [str(path) for path in paths]

"""Generation jobs on a stack directory: samples and super-resolved images written as PNG files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrcnf_cli.errors import ImageSizeError, NonFiniteError
from mrcnf_cli.figures import superres_figure
from mrcnf_cli.generate import (
    check_target,
    clip_keeping_block_means,
    continuous_input,
    downsample_to,
    image_grid,
    quantize,
    sample_images,
    save_png,
    superres_images,
)
from mrcnf_cli.jobs.evaluation import read_image_files
from mrcnf_cli.parsing import parse_resolution
from mrcnf_cli.stack import MultiResFlow
from mrcnf_cli.store import check_suffix, check_writable, format_sizes, load_stack

logger = logging.getLogger(__name__)


@dataclass
class SampleJob:
    """Files and statistics written by :func:`sample_model`."""

    files: list[str]
    requested: int
    non_finite: int
    sizes: list[tuple[int, int]]
    nfe: list[int]
    seconds: float


def sample_model(
    model_dir: Path,
    out: Path,
    *,
    count: int,
    temperature: float | list[float] = 1.0,
    resolution: str | None = None,
    grid: bool = True,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device = torch.device("cpu"),
) -> SampleJob:
    """Sample images from a stack directory and write them as one grid PNG or one PNG each.

    Images with non-finite values are counted and not written.

    Raises:
        NonFiniteError: every image had non-finite values (nothing is written).
    """
    check_writable(Path(out), folder=not grid)
    if grid:
        check_suffix(Path(out), ".png", "--out")
    stack = load_stack(Path(model_dir), device=device).stack
    size = parse_resolution(resolution) if resolution else None
    check_target(stack, size)
    generated = sample_images(stack, count, temperature=temperature, size=size, seed=seed, batch_size=batch_size)

    non_finite = int((~generated.finite).sum())
    if non_finite == count:
        raise NonFiniteError(f"all {count} samples had non-finite values; nothing written; try a lower --temperature or a tighter solver")
    if non_finite:
        logger.warning("%d of %d samples had non-finite values and were not written", non_finite, count)

    pixels = generated.quantized()
    out = Path(out)
    if grid:
        save_png(out, image_grid(pixels))
        files = [str(out)]
    else:
        out.mkdir(parents=True, exist_ok=True)
        indices = torch.nonzero(generated.finite).flatten().tolist()
        files = [str(out / f"sample-{index:05d}.png") for index in indices]
        for file, image in zip(files, pixels):
            save_png(Path(file), image)

    used = len(generated.nfe)
    return SampleJob(files, count, non_finite, stack.sizes[:used], generated.nfe, generated.seconds)


@dataclass
class SuperresJob:
    """Files and statistics written by :func:`superres_model`."""

    inputs: list[str]
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    files: list[list[str]]
    non_finite: int
    nfe: list[int]
    seconds: float
    figure: str | None


def superres_model(
    model_dir: Path,
    images: list[Path],
    out: Path,
    *,
    to: str | None = None,
    samples: int = 1,
    temperature: float | list[float] = 1.0,
    seed: int = 0,
    from_high: str | None = None,
    compare: Path | None = None,
    convert: bool = False,
    device: torch.device = torch.device("cpu"),
) -> SuperresJob:
    """Super-resolve image files with a stack directory; write K PNGs per image into ``out``.

    The input images are used at their own resolution, conditioned on as they are: each 8-bit
    pixel becomes its bin centre ``(k + 0.5) / 256``. With ``from_high``, the files are
    high-resolution ground truth, first reduced to that resolution by exact 2x2 means.
    """
    check_writable(Path(out), folder=True)
    if compare is not None:
        check_writable(Path(compare))
        check_suffix(Path(compare), ".png", "--compare")
    stack = load_stack(Path(model_dir), device=device).stack
    pixels, names = read_image_files(images, channels=stack.config.channels, convert=convert)

    ground_truth = None
    target = parse_resolution(to) if to else stack.sizes[-1]
    if from_high is not None:
        low_size = parse_resolution(from_high)
        check_target(stack, low_size)
        _check_ground_truth(stack, pixels, to)
        target = parse_resolution(to) if to else tuple(pixels.shape[-2:])
        ground_truth = pixels
        x = downsample_to(stack, pixels, low_size)
    else:
        _check_superres_input(stack, pixels)
        x = continuous_input(pixels)

    check_target(stack, target)
    if target[0] <= x.shape[-2]:
        raise ImageSizeError(
            f"target resolution {target[0]}x{target[1]} is not finer than the input {x.shape[-2]}x{x.shape[-1]}; "
            f"choose one of {format_sizes([s for s in stack.sizes if s[0] > x.shape[-2]])}"
        )
    generated = superres_images(stack, x, size=target, samples=samples, temperature=temperature, seed=seed)

    # Write each finite output as <input name>-<k>.png.
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    factor = target[0] // x.shape[-2]
    finite_images = torch.nan_to_num(generated.images)
    quantized = quantize(clip_keeping_block_means(finite_images, factor))
    files: list[list[str]] = []
    for index, name in enumerate(names):
        written = []
        for k in range(samples):
            position = index * samples + k
            if generated.finite[position]:
                path = out / f"{Path(name).stem}-{k + 1}.png"
                save_png(path, quantized[position])
                written.append(str(path))
        files.append(written)
    non_finite = int((~generated.finite).sum())
    if non_finite == len(generated.finite):
        raise NonFiniteError("every super-resolved image had non-finite values; try a lower --temperature")

    if compare is not None:
        shaped = quantized.reshape(len(names), samples, *quantized.shape[1:])
        superres_figure(compare, quantize(x), shaped, ground_truth)

    return SuperresJob(
        names, tuple(x.shape[-2:]), target, files, non_finite, generated.nfe, generated.seconds, str(compare) if compare else None
    )


def _check_ground_truth(stack: MultiResFlow, pixels: np.ndarray, to: str | None) -> None:
    """Require ground truth at one of the stack's resolutions, equal to ``--to`` when given."""
    size = tuple(pixels.shape[-2:])
    if size not in stack.sizes:
        raise ImageSizeError(
            f"--from-high needs ground-truth images at one of the stack's resolutions, {format_sizes(stack.sizes)}; "
            f"these are {size[0]}x{size[1]}: crop or resize them"
        )
    if to is not None and parse_resolution(to) != size:
        raise ImageSizeError(
            f"--to {to} differs from the ground truth's {size[0]}x{size[1]}; with --from-high the output has the "
            "ground truth's resolution, so drop --to"
        )


def _check_superres_input(stack: MultiResFlow, pixels: np.ndarray) -> None:
    size = tuple(pixels.shape[-2:])
    coarser = stack.sizes[:-1]
    if size not in coarser:
        raise ImageSizeError(
            f"input images of size {size[0]}x{size[1]} match no coarser level of this stack; "
            f"it super-resolves images of {format_sizes(coarser) or 'no size (one level only)'}, or pass --from-high RES"
        )

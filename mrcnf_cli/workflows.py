"""Whole jobs on a stack directory, one function per command: train a stack, evaluate its BPD.

Each function reads data and files, calls the core, and returns plain results; the command layer
only parses options and prints.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.data import load_dataset
from mrcnf_cli.data.decode import read_image
from mrcnf_cli.errors import DataError, ImageSizeError, InputError, ModelFileError, NonFiniteError
from mrcnf_cli.evaluate import BpdReport, configure_evaluation, evaluate_bpd, iterate_batches
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
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.stack import MultiResFlow
from mrcnf_cli.level import Level
from mrcnf_cli.store import Manifest, add_level_to_manifest, check_writable, create_or_check_manifest, format_sizes, load_stack
from mrcnf_cli.training import LevelResult, TrainingReporter, TrainOptions, train_level

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOptions:
    """Architecture of the levels a training job creates.

    Attributes:
        num_levels: number of resolutions S.
        map: pyramid map name.
        cnf: CNF block settings.
        num_blocks: CNF blocks per level.
        logit: apply the logit preprocessing.
        alpha: logit margin.
        multires_noise: use the multi-resolution base variances.
    """

    num_levels: int = 3
    map: str = "mrcnf"
    cnf: CNFConfig = CNFConfig()
    num_blocks: int = 1
    logit: bool = True
    alpha: float = 0.05
    multires_noise: bool = False


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse "16x16" or "16" into (H, W); raise InputError naming the value otherwise."""
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"invalid resolution {text!r}; write it as HxW, for example 16x16")
    return values[0], values[1]


def resolve_device(name: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a device; raise InputError for an unusable one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"invalid device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise InputError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def train_stack(
    model_dir: Path,
    *,
    data: str,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    convert: bool = False,
    channels: int = 3,
    model: ModelOptions = ModelOptions(),
    options: TrainOptions = TrainOptions(),
    level: str | None = None,
    device: torch.device = torch.device("cpu"),
    reporter: TrainingReporter | None = None,
) -> list[LevelResult]:
    """Train every level of a stack coarse to fine, or one level alone, into ``model_dir``.

    ``options.max_time`` is shared between the levels still to train: each level gets the time
    left divided by the number of levels left, so time a level does not use passes to the next.

    Args:
        model_dir: the stack directory, created when missing.
        data: a data set name or path (see :func:`mrcnf_cli.data.load_dataset`).
        data_dir: where named sets are looked for.
        image_size: box-downsample the images to this size first.
        convert: allow lossy image mode conversions.
        channels: image channels of the model.
        model: architecture of new levels.
        options: optimisation settings of every level.
        level: train only the level of this resolution ("16x16"); all levels when None.
        device: where to train.
        reporter: progress receiver.

    Returns:
        One :class:`LevelResult` per level trained, coarse to fine.
    """
    torch.manual_seed(options.seed)

    # 1. Data: training images and held-out images for validation.
    train_set = load_dataset(data, split="train", data_dir=data_dir, channels=channels, convert=convert, image_size=image_size)
    test_set = load_dataset(data, split="test", data_dir=data_dir, channels=channels, convert=convert, image_size=image_size)
    if len(train_set) == 0:
        raise DataError(f"data set {data!r} has no training images")

    # 2. The stack's plan: fresh levels for the architecture, checked against stack.json.
    fresh = MultiResFlow.build(
        train_set.size,
        model.num_levels,
        channels=channels,
        map=model.map,
        cnf=model.cnf,
        num_blocks=model.num_blocks,
        logit=model.logit,
        alpha=model.alpha,
        multires_noise=model.multires_noise,
    )
    data_info = {"data": train_set.name, "image_size": list(train_set.size)}
    create_or_check_manifest(Path(model_dir), Manifest(model.map, channels, fresh.sizes, data_info))

    indices = list(range(model.num_levels))
    if level is not None:
        size = parse_resolution(level)
        if size not in fresh.sizes:
            raise InputError(f"--level {level} is not a level of this stack; choose one of {format_sizes(fresh.sizes)}")
        indices = [fresh.sizes.index(size)]

    # 3. Train each level in turn, each alone.
    fresh.to(device)
    results = []
    started = time.monotonic()
    for position, index in enumerate(indices):
        level_options = options
        if options.max_time is not None:
            remaining = options.max_time - (time.monotonic() - started)
            level_options = dataclasses.replace(options, max_time=max(remaining / (len(indices) - position), 1e-3))
        logger.info("training level %s (%d of %d) on %s", format_sizes([fresh.sizes[index]]), position + 1, len(indices), device)
        results.append(
            train_level(
                fresh,
                index,
                train_set.array,
                test_set.array,
                model_dir=Path(model_dir),
                options=level_options,
                data_info=data_info,
                reporter=reporter,
            )
        )
    return results


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
        image_set = load_dataset(data, split=split, data_dir=data_dir, channels=stack.config.channels, convert=convert, image_size=image_size)
        array, description = image_set.array, image_set.name

    stack.level_count_for(_checked_size(array, stack))
    report = evaluate_bpd(
        stack, iterate_batches(array, batch_size, max_images), seed=seed, names=names, keep_rows=names is not None
    )
    return Evaluation(report, str(model_dir), description, split, trace, seed)


def _checked_size(array: np.ndarray, stack: MultiResFlow) -> tuple[int, int]:
    size = tuple(array.shape[-2:])
    if size not in stack.sizes:
        factor = 2 ** (len(stack.sizes) - 1)
        raise ImageSizeError(
            f"images of size {size[0]}x{size[1]} cannot be evaluated by this stack: it takes {format_sizes(stack.sizes)} "
            f"(a {len(stack.sizes)}-level stack needs sizes divisible by {factor}); crop or resize the images"
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



def parse_duration(text: str) -> float:
    """Parse a wall time such as "1200", "90s", "20m" or "1.5h" into seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value, unit = (text[:-1], text[-1].lower()) if text and text[-1].lower() in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds != float("inf")):
        raise InputError(f"invalid duration {text!r}; give seconds or a number with s, m or h, for example 20m")
    return seconds


def parse_widths(text: str) -> tuple[int, ...]:
    """Parse hidden-layer widths such as "64,64,64"."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise InputError(f"invalid hidden widths {text!r}; give positive integers separated by commas, for example 64,64,64")
    return widths


@dataclass
class SampleJob:
    """What :func:`sample_model` wrote."""

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
    """What :func:`superres_model` wrote."""

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
    stack = load_stack(Path(model_dir), device=device).stack
    pixels, names = read_image_files(images, channels=stack.config.channels, convert=convert)

    ground_truth = None
    if from_high is not None:
        low_size = parse_resolution(from_high)
        check_target(stack, low_size)
        ground_truth = pixels
        x = downsample_to(stack, pixels, low_size)
    else:
        _check_superres_input(stack, pixels)
        x = continuous_input(pixels)

    target = parse_resolution(to) if to else stack.sizes[-1]
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


def _check_superres_input(stack: MultiResFlow, pixels: np.ndarray) -> None:
    size = tuple(pixels.shape[-2:])
    coarser = stack.sizes[:-1]
    if size not in coarser:
        raise ImageSizeError(
            f"input images of size {size[0]}x{size[1]} match no coarser level of this stack; "
            f"it super-resolves images of {format_sizes(coarser) or 'no size (one level only)'}, or pass --from-high RES"
        )


def extend_stack(
    model_dir: Path,
    *,
    data: str,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    convert: bool = False,
    options: TrainOptions = TrainOptions(),
    device: torch.device = torch.device("cpu"),
    reporter: TrainingReporter | None = None,
) -> LevelResult:
    """Attach and train a finer level on a trained stack, at twice its finest resolution.

    The new level copies the architecture of the current finest level. The existing level files
    are only read. Running the command again resumes the new level's training.

    Raises:
        ImageSizeError: the data's resolution is not twice the stack's finest.
        ModelFileError: a level other than the one being added has no file.
    """
    model_dir = Path(model_dir)
    loaded = load_stack(model_dir, device=device)
    manifest, stack = loaded.manifest, loaded.stack

    # 1. The level to train: a new one, or one an earlier extend added but did not finish.
    trained = len(stack.levels)
    if trained < len(manifest.sizes) - 1:
        missing = format_sizes(manifest.sizes[trained:-1])
        raise ModelFileError(f"levels {missing} of {model_dir} have no files; train them with mrcnf train --level first")
    finest = stack.sizes[-1]
    target = (2 * finest[0], 2 * finest[1])

    train_set = load_dataset(data, split="train", data_dir=data_dir, channels=manifest.channels, convert=convert, image_size=image_size)
    if tuple(train_set.size) != target:
        raise ImageSizeError(
            f"data {train_set.name!r} has images of {format_sizes([train_set.size])}, but extending this stack needs "
            f"{format_sizes([target])}, twice its finest level {format_sizes([finest])}; pass matching data or --image-size"
        )
    test_set = load_dataset(data, split="test", data_dir=data_dir, channels=manifest.channels, convert=convert, image_size=image_size)

    # 2. A new level with the finest level's architecture, listed in stack.json.
    template = stack.levels[-1].config
    new_config = dataclasses.replace(
        template, size=target, conditional=True, value_range=(-2 / stack.pyramid_map.k, 2 / stack.pyramid_map.k),
        base_std=_extended_base_std(stack),
    )
    extended = MultiResFlow(stack.config, [*stack.levels, Level(new_config)]).to(device)
    add_level_to_manifest(model_dir, target)
    logger.info("extending %s from %s to %s with %s", model_dir, format_sizes([finest]), format_sizes([target]), train_set.name)

    data_info = {"data": train_set.name, "image_size": list(train_set.size)}
    return train_level(
        extended, len(extended.levels) - 1, train_set.array, test_set.array,
        model_dir=model_dir, options=options, data_info=data_info, reporter=reporter,
    )


def _extended_base_std(stack: MultiResFlow) -> float:
    """Return the base standard deviation of a level added above the finest one.

    With unit base variance the new level keeps it. With multi-resolution noise, the finer
    pixels implied by the current finest level have four times its pixel variance, so the new
    details get twice the standard deviation of the current finest details.
    NOTE: a one-level stack with multi-resolution noise has base_std 1 and is treated as unit variance.
    """
    finest = stack.levels[-1].config
    if finest.base_std == 1.0:
        return 1.0
    if finest.conditional:
        return 2 * finest.base_std
    return 4 * finest.base_std / stack.pyramid_map.k

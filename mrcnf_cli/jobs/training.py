"""Training jobs on a stack directory: train a new stack level by level, or extend one."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.data import load_dataset
from mrcnf_cli.distributed import distributed_timeout, leaves_process_group, setup_distributed
from mrcnf_cli.errors import DataError, ImageSizeError, InputError, ModelFileError
from mrcnf_cli.level import Level
from mrcnf_cli.parsing import parse_resolution
from mrcnf_cli.stack import MultiResFlow
from mrcnf_cli.store import Manifest, add_level_to_manifest, create_or_check_manifest, format_sizes, load_stack
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


@leaves_process_group
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
    world, device = setup_distributed(device, timeout_seconds=distributed_timeout())
    if world.enabled:
        logger.info("data-parallel training: process %d of %d, %d images per step in total", world.rank, world.world_size, options.batch_size * world.world_size)

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
    indices = list(range(model.num_levels))
    if level is not None:
        size = parse_resolution(level)
        if size not in fresh.sizes:
            raise InputError(f"--level {level} is not a level of this stack; choose one of {format_sizes(fresh.sizes)}")
        indices = [fresh.sizes.index(size)]

    data_info = {"data": train_set.name, "image_size": list(train_set.size)}
    create_or_check_manifest(Path(model_dir), Manifest(model.map, channels, fresh.sizes, data_info))

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
                world=world,
            )
        )
    return results


@leaves_process_group
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
    world, device = setup_distributed(device, timeout_seconds=distributed_timeout())
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
    data_info = {"data": train_set.name, "image_size": list(train_set.size)}
    add_level_to_manifest(model_dir, target, data_info)
    logger.info("extending %s from %s to %s with %s", model_dir, format_sizes([finest]), format_sizes([target]), train_set.name)

    return train_level(
        extended, len(extended.levels) - 1, train_set.array, test_set.array,
        model_dir=model_dir, options=options, data_info=data_info, reporter=reporter, world=world,
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

"""Training of one level of a stack: the optimisation loop, checkpoints, resume and validation.

Each level trains alone on its own variables: the coarsest image, or the details of its
resolution given the coarser image, both cut from dequantized 8-bit training images. The loss is
the level's negative log-likelihood in bits per dimension of its own variables plus the RNODE
regularisers. The best level (by validation BPD) is saved as the stack's level file; the latest
state, with optimizer and random-generator state, is saved under ``runs/`` for exact resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mrcnf_cli.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from mrcnf_cli.distributed import Distributed
from mrcnf_cli.errors import InputError, ModelFileError, NonFiniteError, SolverError
from mrcnf_cli.stack import MultiResFlow, dequantize
from mrcnf_cli.store import level_file_name, load_level, run_directory, save_level

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"


# The command-line flag of each option, so that errors name what the user typed.
OPTION_FLAGS = {
    "steps": "--steps", "epochs": "--epochs", "max_time": "--max-time", "batch_size": "--batch-size",
    "learning_rate": "--lr", "warmup_steps": "--warmup", "max_grad_norm": "--grad-clip",
    "kinetic_weight": "--kinetic", "jacobian_weight": "--jacobian", "validate_every": "--validate-every",
    "validation_images": "--validation-images",
}


def _option_name(name: str) -> str:
    return OPTION_FLAGS.get(name, name.replace("_", " "))


@dataclass(frozen=True)
class TrainOptions:
    """Optimisation settings of one level.

    Attributes:
        steps: stop after this many optimizer steps in total (None: no step limit).
        epochs: stop after this many passes over the training images (None: no limit).
        max_time: stop after this many seconds of training in this call (None: no limit).
        batch_size: training images per step and process; a distributed step uses
            ``batch_size * world_size`` images.
        learning_rate: Adam learning rate after warmup.
        warmup_steps: steps of the linear learning-rate warmup from 0.
        max_grad_norm: gradient-norm clipping threshold.
        kinetic_weight: weight of the kinetic-energy regulariser (RNODE).
        jacobian_weight: weight of the Jacobian Frobenius-norm regulariser (RNODE).
        validate_every: steps between validations and checkpoints.
        validation_images: held-out images used for validation BPD.
        log_every: steps between progress reports.
        seed: seed of the data order, dequantization noise and Hutchinson probes.
        max_failures: consecutive non-finite steps after which training stops.
        resume: continue from the level's checkpoint when one exists.
    """

    steps: int | None = 10000
    epochs: float | None = None
    max_time: float | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 1000
    max_grad_norm: float = 100.0
    kinetic_weight: float = 0.01
    jacobian_weight: float = 0.01
    validate_every: int = 500
    validation_images: int = 256
    log_every: int = 10
    seed: int = 0
    max_failures: int = 5
    resume: bool = True

    def __post_init__(self):
        positive = {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "max_grad_norm": self.max_grad_norm,
            "validate_every": self.validate_every,
            "validation_images": self.validation_images,
            "log_every": self.log_every,
            "max_failures": self.max_failures,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{_option_name(name)} must be a finite number above 0, got {value}")
        for name in ("steps", "epochs", "max_time"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(f"{_option_name(name)} must be a finite number above 0, got {value}")
        for name in ("warmup_steps", "kinetic_weight", "jacobian_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{_option_name(name)} must be zero or positive, got {value}")
        if self.steps is None and self.epochs is None and self.max_time is None:
            raise InputError("training needs a budget: give --steps, --epochs or --max-time")


class TrainingReporter(Protocol):
    """Receives progress from the training loop (the command line draws a progress bar with it)."""

    def start(self, level: str, total_steps: int | None, first_step: int) -> None: ...

    def step(self, metrics: dict) -> None: ...

    def validation(self, metrics: dict) -> None: ...

    def finish(self) -> None: ...


class LoggingReporter:
    """Report progress as log lines every ``log_every`` steps."""

    def __init__(self, log_every: int = 10):
        self.log_every = log_every

    def start(self, level: str, total_steps: int | None, first_step: int) -> None:
        logger.info("level %s: training from step %d (budget %s steps)", level, first_step, total_steps or "unlimited")

    def step(self, metrics: dict) -> None:
        if metrics["step"] % self.log_every == 0:
            logger.info(
                "level %s step %d: %.4f bits/dim, NFE %d, %.2f s/step",
                metrics["level"], metrics["step"], metrics["bpd"], metrics["nfe"], metrics["seconds_per_step"],
            )

    def validation(self, metrics: dict) -> None:
        logger.info(
            "level %s step %d: validation %.4f bits/dim on %d images, NFE %d%s",
            metrics["level"], metrics["step"], metrics["validation_bpd"], metrics["validation_images"],
            metrics["nfe"], " (best so far, saved)" if metrics["best"] else "",
        )

    def finish(self) -> None:
        pass


@dataclass
class LevelResult:
    """Summary of one call of :func:`train_level`."""

    level: str
    steps: int
    skipped_steps: int
    best_validation_bpd: float | None
    seconds: float
    stopped_by: str


def level_bits(stack: MultiResFlow, level_index: int, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return one level's negative log-likelihood of 8-bit images, (B,) in bits per dimension of its variables."""
    level = stack.levels[level_index]
    x = dequantize(images, generator=generator, dtype=next(level.parameters()).dtype)
    v, context = stack.level_inputs(x, level_index)

    logp = level.log_prob(v, context, generator=generator)
    return -logp / (v[0].numel() * math.log(2)) + 8


def level_loss(
    stack: MultiResFlow, level_index: int, images: torch.Tensor, generator: torch.Generator, options: TrainOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute the training loss of one level on a batch of 8-bit images.

    Returns:
        ``(loss, bits)``: the scalar loss and the negative log-likelihood in bits per dimension of
        the level's variables, (B,).
    """
    bits = level_bits(stack, level_index, images, generator)

    kinetic, jacobian = stack.levels[level_index].regularization.mean(0)
    loss = bits.mean() + options.kinetic_weight * kinetic + options.jacobian_weight * jacobian
    return loss, bits


@torch.no_grad()
def validation_bpd(stack: MultiResFlow, level_index: int, images: np.ndarray, *, batch_size: int, seed: int) -> tuple[float, int]:
    """Return the level's mean BPD of its own variables on held-out 8-bit images, and the mean NFE.

    Uses a generator seeded with ``seed``, so every validation draws the same noise.
    """
    level = stack.levels[level_index]
    device = next(level.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = level.training
    level.eval()

    total, count, nfe = 0.0, 0, []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        bits = level_bits(stack, level_index, batch, generator)
        total += bits.double().sum().item()
        count += len(batch)
        nfe.append(level.nfe)

    level.train(was_training)
    return total / count, round(sum(nfe) / len(nfe))


class _SilentReporter:
    """The reporter of every process but the first in a distributed job."""

    def start(self, level: str, total_steps: int | None, first_step: int) -> None:
        pass

    def step(self, metrics: dict) -> None:
        pass

    def validation(self, metrics: dict) -> None:
        pass

    def finish(self) -> None:
        pass


class LevelObjective(nn.Module):
    """The training loss of one level as a module, so that DistributedDataParallel can wrap it.

    Only the level is a submodule, so only its parameters are trained and synchronised.
    """

    def __init__(self, stack: MultiResFlow, level_index: int, options: TrainOptions):
        super().__init__()
        self.level = stack.levels[level_index]
        self.level_index = level_index
        self.options = options
        self._stack = (stack,)

    def forward(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return level_loss(self._stack[0], self.level_index, images, generator, self.options)


class LevelTrainer:
    """Train one level of a stack and save it into the stack directory.

    Args:
        stack: the stack; ``stack.levels[level_index]`` is trained in place, on the stack's device.
        level_index: 0 for the coarsest level.
        train_images: uint8 images (N, C, H, W) at the level's resolution or finer (a memory map
            is fine: only batches are read).
        validation_images: held-out uint8 images, same layout.
        model_dir: the stack directory.
        options: optimisation settings.
        data_info: description of the training data, recorded in the level file.
        reporter: progress receiver; log lines when None.
        world: this process's place in a distributed job. Every process trains on its own shard
            of each global batch with its own random generator; only the first writes files.
    """

    def __init__(
        self,
        stack: MultiResFlow,
        level_index: int,
        train_images: np.ndarray,
        validation_images: np.ndarray,
        *,
        model_dir: Path,
        options: TrainOptions,
        data_info: dict,
        reporter: TrainingReporter | None = None,
        world: Distributed = Distributed(),
    ):
        self.stack = stack
        self.level_index = level_index
        self.level = stack.levels[level_index]
        self.name = self.level.config.name
        self.device = next(self.level.parameters()).device
        self.options = options
        self.data_info = data_info
        self.world = world
        self.reporter = (reporter or LoggingReporter(options.log_every)) if world.is_main else _SilentReporter()
        self.run_dir = run_directory(model_dir, self.level.config.size)
        self.level_path = Path(model_dir) / level_file_name(self.level.config.size)

        if len(train_images) < world.world_size:
            raise InputError(f"the training set has {len(train_images)} images, fewer than the {world.world_size} processes")
        self.train_images = train_images
        self.validation_images = validation_images[: options.validation_images]
        if len(self.validation_images) == 0:
            raise InputError("the validation set is empty; give a data set with a test split")
        self.images_per_process = len(train_images) // world.world_size
        self.batch_size = min(options.batch_size, self.images_per_process)

        # Optimizer and state, restored from the checkpoint when resuming.
        self.optimizer = torch.optim.Adam(self.level.parameters(), lr=options.learning_rate)
        self.generator = torch.Generator(device=self.device).manual_seed(options.seed + 1_000_003 * world.rank)
        self.state = TrainingState(world_size=world.world_size)
        checkpoint = self.run_dir / CHECKPOINT_NAME
        if options.resume and checkpoint.exists():
            self.state = load_checkpoint(
                checkpoint, self.level, self.optimizer, self.generator, rank=world.rank, world_size=world.world_size
            )
            logger.info("level %s: resuming from step %d (%s)", self.name, self.state.step, checkpoint)
        elif world.is_main:
            # A fresh start (--no-resume, or no checkpoint) begins a new metrics file.
            (self.run_dir / METRICS_NAME).unlink(missing_ok=True)

        # Validation BPDs on different images do not compare, so another set starts the best over.
        validation_set = {**data_info, "validation_images": len(self.validation_images)}
        if self.state.validation_set not in (None, validation_set) and self.state.best_validation_bpd is not None:
            logger.warning(
                "level %s: the validation set changed from %s to %s; the best validation BPD starts over",
                self.name, self.state.validation_set, validation_set,
            )
            self.state.best_validation_bpd = None
        self.state.validation_set = validation_set

        objective = LevelObjective(stack, level_index, options)
        if world.enabled:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.model: nn.Module = DistributedDataParallel(objective, device_ids=device_ids)
        else:
            self.model = objective
        self._order: torch.Tensor | None = None
        self._order_epoch: int | None = None
        self._replace_level_file = False

    def run(self) -> LevelResult:
        """Train until a budget runs out; validate, checkpoint and save the best level on the way.

        Raises:
            NonFiniteError: ``max_failures`` consecutive steps had a non-finite loss or gradient.
            KeyboardInterrupt: after saving the checkpoint, on Ctrl-C.
        """
        state, options = self.state, self.options
        # A missing or damaged level file is replaced at the next validation, whatever its BPD.
        self._replace_level_file = not self._level_file_usable()
        if state.step and not self._replace_level_file and self._budget_left(0.0) in ("steps", "epochs"):
            logger.info("level %s: already trained for %d steps; raise --steps or --epochs to continue", self.name, state.step)
            return LevelResult(self.name, state.step, state.skipped_steps, state.best_validation_bpd, state.seconds, "already trained")

        started = time.monotonic()
        seconds_before = state.seconds
        stopped_by = "steps"
        self.level.train()
        self.reporter.start(self.name, options.steps, state.step)

        with _deferred_interrupt() as interrupted:
            while True:
                stopped_by = self._budget_left(time.monotonic() - started)
                if self.world.any_true(bool(stopped_by) or interrupted(), self.device):
                    stopped_by = stopped_by or "max_time"
                    break

                self._step()
                state.seconds = seconds_before + time.monotonic() - started
                if state.consecutive_failures == 0 and state.step % options.validate_every == 0:
                    self._validate()

            if self.world.any_true(interrupted(), self.device):
                self._save()
                self.reporter.finish()
                logger.warning("level %s: interrupted at step %d; state saved to %s", self.name, state.step, self.run_dir)
                raise KeyboardInterrupt

        # A final validation unless the last step was just validated.
        if state.step % options.validate_every != 0 or self._replace_level_file:
            self._validate()
        self.reporter.finish()
        return LevelResult(self.name, state.step, state.skipped_steps, state.best_validation_bpd, state.seconds, stopped_by)

    def _step(self) -> None:
        """Take one optimizer step, or skip it on every process when any process gets a non-finite value."""
        state, options = self.state, self.options
        step_started = time.monotonic()
        images = self._next_batch()

        # 1. Loss and gradients; all processes agree on finiteness before the collective backward.
        #    A solve that hit its step limit counts as a non-finite loss.
        try:
            loss, bits = self.model(images, self.generator)
        except SolverError as error:
            logger.warning("level %s: %s", self.name, error)
            loss, bits = torch.tensor(float("nan"), device=self.device), torch.full((1,), float("nan"))
        self.optimizer.zero_grad(set_to_none=True)
        # NOTE: this reads the loss on the host, one device sync per step, because every process
        # must decide to skip together.
        finite_loss = self.world.all_agree(bool(torch.isfinite(loss.detach())), self.device)
        grad_norm = float("nan")
        if finite_loss:
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.level.parameters(), options.max_grad_norm))

        # 2. Skip a non-finite step; stop after too many in a row.
        if not (finite_loss and math.isfinite(grad_norm)):
            state.consecutive_failures += 1
            state.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            logger.warning(
                "level %s: skipped a step with a non-finite %s (%d in a row)",
                self.name, "loss" if not finite_loss else "gradient", state.consecutive_failures,
            )
            if state.consecutive_failures >= options.max_failures:
                raise NonFiniteError(
                    f"level {self.name}: {state.consecutive_failures} steps in a row had non-finite values; "
                    "the last good files are kept; lower --lr or tighten the solver tolerance"
                )
            return

        # 3. The update, with the learning rate of a linear warmup.
        for group in self.optimizer.param_groups:
            group["lr"] = options.learning_rate * min(1.0, (state.step + 1) / max(1, options.warmup_steps))
        self.optimizer.step()
        state.step += 1
        state.consecutive_failures = 0

        # One host read for both metrics.
        loss_value, bpd_value = torch.stack([loss.detach(), bits.detach().mean()]).tolist()
        metrics = {
            "level": self.name,
            "step": state.step,
            "loss": loss_value,
            "bpd": bpd_value,
            "nfe": self.level.nfe,
            "grad_norm": grad_norm,
            "learning_rate": self.optimizer.param_groups[0]["lr"],
            "seconds_per_step": time.monotonic() - step_started,
        }
        if self.world.is_main:
            append_metrics(self.run_dir, metrics)
        self.reporter.step(metrics)

    def _next_batch(self) -> torch.Tensor:
        """Return this process's share of the next global batch and advance the position."""
        state = self.state
        if self._order_epoch != state.epoch:
            self._order = epoch_order(len(self.train_images), state.epoch, self.options.seed, self.world)
            self._order_epoch = state.epoch
        indices = self._order[state.position : state.position + self.batch_size].numpy()

        state.position += self.batch_size
        if state.position + self.batch_size > self.images_per_process:
            state.epoch, state.position = state.epoch + 1, 0
        return torch.from_numpy(np.ascontiguousarray(self.train_images[np.sort(indices)])).to(self.device)

    def _validate(self) -> None:
        # NOTE: every process computes the same validation BPD (same images, same seed), so that
        # all of them agree on the best level without another collective.
        bpd, nfe = validation_bpd(
            self.stack, self.level_index, self.validation_images, batch_size=self.options.batch_size, seed=self.options.seed + 1
        )
        best = self.state.best_validation_bpd is None or bpd < self.state.best_validation_bpd
        if best:
            self.state.best_validation_bpd = bpd
        self._save(bpd if best or self._replace_level_file else None)
        self._replace_level_file = False

        metrics = {
            "level": self.name, "step": self.state.step, "validation_bpd": bpd,
            "validation_images": len(self.validation_images), "nfe": nfe, "best": best,
        }
        if self.world.is_main:
            append_metrics(self.run_dir, metrics)
        self.reporter.validation(metrics)

    def _save(self, validated_bpd: float | None = None) -> None:
        """Save the checkpoint (every process's generator state included) and, when given, the level file."""
        generator_states = self.world.gather_tensors(self.generator.get_state().to(self.device))
        if not self.world.is_main:
            return
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.level, self.optimizer, [s.cpu() for s in generator_states], self.state)
        if validated_bpd is not None:
            info = {
                **self.data_info,
                "steps": self.state.step,
                "validation_bpd": validated_bpd,
                "validation_images": len(self.validation_images),
                "parameters": sum(parameter.numel() for parameter in self.level.parameters()),
                "trained_seconds": round(self.state.seconds, 1),
            }
            save_level(self.level_path, self.level, info)

    def _level_file_usable(self) -> bool:
        """Return whether the level file exists and loads."""
        if not self.level_path.exists():
            return False
        try:
            load_level(self.level_path)
        except ModelFileError as error:
            logger.warning("level %s: %s; it will be replaced by the current weights", self.name, error)
            return False
        return True

    def _budget_left(self, elapsed: float) -> str:
        return _budget_exhausted(self.state, self.options, elapsed, self.images_per_process)


def train_level(
    stack: MultiResFlow,
    level_index: int,
    train_images: np.ndarray,
    validation_images: np.ndarray,
    *,
    model_dir: Path,
    options: TrainOptions,
    data_info: dict,
    reporter: TrainingReporter | None = None,
    world: Distributed = Distributed(),
) -> LevelResult:
    """Train one level of a stack and save it into the stack directory; see :class:`LevelTrainer`."""
    if len(train_images) == 0:
        raise InputError("the training set is empty")
    trainer = LevelTrainer(
        stack, level_index, train_images, validation_images,
        model_dir=model_dir, options=options, data_info=data_info, reporter=reporter, world=world,
    )
    return trainer.run()


def epoch_order(count: int, epoch: int, seed: int, world: Distributed = Distributed()) -> torch.Tensor:
    """Return this process's shuffled image order for one epoch, a function of (seed, epoch, rank).

    torch's DistributedSampler shuffles all indices with the seed and epoch, then gives process
    r every world_size-th index from r; a single process gets the whole permutation.
    """
    sampler = DistributedSampler(
        range(count), num_replicas=world.world_size, rank=world.rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler))


def _budget_exhausted(state: TrainingState, options: TrainOptions, elapsed: float, image_count: int) -> str:
    if options.steps is not None and state.step >= options.steps:
        return "steps"
    if options.epochs is not None and state.epoch + state.position / image_count >= options.epochs:
        return "epochs"
    if options.max_time is not None and elapsed >= options.max_time:
        return "max_time"
    return ""


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator:
    """Turn the first Ctrl-C into a flag checked between steps; a second one interrupts at once."""
    flag = {"set": False}

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True
        logger.warning("interrupt received: saving after this step (press Ctrl-C again to stop at once)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:
        # Not the main thread: leave Ctrl-C to its default behaviour.
        previous = None
    try:
        yield lambda: flag["set"]
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def append_metrics(run_dir: Path, metrics: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / METRICS_NAME, "a") as handle:
        handle.write(json.dumps(metrics) + "\n")

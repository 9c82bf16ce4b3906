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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mrcnf_cli.errors import InputError, ModelFileError, NonFiniteError
from mrcnf_cli.level import Level
from mrcnf_cli.stack import MultiResFlow, dequantize
from mrcnf_cli.store import atomic_save_tensors, level_file_name, run_directory, save_level

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class TrainOptions:
    """Optimisation settings of one level.

    Attributes:
        steps: stop after this many optimizer steps in total (None: no step limit).
        epochs: stop after this many passes over the training images (None: no limit).
        max_time: stop after this many seconds of training in this call (None: no limit).
        batch_size: training images per step.
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
                raise InputError(f"{name.replace('_', ' ')} must be positive, got {value}")
        for name in ("steps", "epochs", "max_time"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(f"{name.replace('_', ' ')} must be positive, got {value}")
        for name in ("warmup_steps", "kinetic_weight", "jacobian_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name.replace('_', ' ')} must be zero or positive, got {value}")
        if self.steps is None and self.epochs is None and self.max_time is None:
            raise InputError("training needs a budget: give steps, epochs or max time")


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
class TrainingState:
    """Counters of a level's training, saved in its checkpoint."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    seconds: float = 0.0
    consecutive_failures: int = 0
    skipped_steps: int = 0
    best_validation_bpd: float | None = None


@dataclass
class LevelResult:
    """What one call of :func:`train_level` did."""

    level: str
    steps: int
    skipped_steps: int
    best_validation_bpd: float | None
    seconds: float
    stopped_by: str


def level_loss(
    stack: MultiResFlow, level_index: int, images: torch.Tensor, generator: torch.Generator, options: TrainOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute the training loss of one level on a batch of 8-bit images.

    Returns:
        ``(loss, bits)``: the scalar loss and the negative log-likelihood in bits per dimension of
        the level's variables, (B,).
    """
    level = stack.levels[level_index]
    x = dequantize(images, generator=generator, dtype=next(level.parameters()).dtype)
    v, context = stack.level_inputs(x, level_index)

    logp = level.log_prob(v, context, generator=generator)
    dimensions = v[0].numel()
    bits = -logp / (dimensions * math.log(2)) + 8

    kinetic, jacobian = level.regularization.mean(0)
    loss = bits.mean() + options.kinetic_weight * kinetic + options.jacobian_weight * jacobian
    return loss, bits


@torch.no_grad()
def validation_bpd(stack: MultiResFlow, level_index: int, images: np.ndarray, *, batch_size: int, seed: int) -> tuple[float, int]:
    """Return the level's mean BPD of its own variables on held-out 8-bit images, and the mean NFE.

    Uses a generator seeded with ``seed`` so that every validation sees the same noise.
    """
    level = stack.levels[level_index]
    device = next(level.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = level.training
    level.eval()

    total, count, nfe = 0.0, 0, []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        x = dequantize(batch, generator=generator, dtype=next(level.parameters()).dtype)
        v, context = stack.level_inputs(x, level_index)
        logp = level.log_prob(v, context, generator=generator)
        bits = -logp / (v[0].numel() * math.log(2)) + 8
        total += bits.double().sum().item()
        count += len(batch)
        nfe.append(level.nfe)

    level.train(was_training)
    return total / count, round(sum(nfe) / len(nfe))


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
) -> LevelResult:
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

    Returns:
        A :class:`LevelResult`.

    Raises:
        NonFiniteError: ``max_failures`` consecutive steps had a non-finite loss or gradient.
        KeyboardInterrupt: after saving the checkpoint, on Ctrl-C.
    """
    level = stack.levels[level_index]
    name = level.config.name
    device = next(level.parameters()).device
    reporter = reporter or LoggingReporter(options.log_every)
    run_dir = run_directory(model_dir, level.config.size)
    level_path = Path(model_dir) / level_file_name(level.config.size)
    if len(train_images) == 0:
        raise InputError("the training set is empty")
    validation_images = validation_images[: options.validation_images]
    if len(validation_images) == 0:
        raise InputError("the validation set is empty; give a data set with a test split")

    # 1. Optimizer and state, restored from the checkpoint when resuming.
    optimizer = torch.optim.Adam(level.parameters(), lr=options.learning_rate)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    state = TrainingState()
    if options.resume and (run_dir / CHECKPOINT_NAME).exists():
        state = load_checkpoint(run_dir / CHECKPOINT_NAME, level, optimizer, generator)
        logger.info("level %s: resuming from step %d (%s)", name, state.step, run_dir / CHECKPOINT_NAME)

    def save_all(validated_bpd: float | None = None) -> None:
        save_checkpoint(run_dir / CHECKPOINT_NAME, level, optimizer, generator, state)
        if validated_bpd is not None:
            info = {
                **data_info,
                "steps": state.step,
                "validation_bpd": validated_bpd,
                "validation_images": len(validation_images),
                "parameters": sum(parameter.numel() for parameter in level.parameters()),
                "trained_seconds": round(state.seconds, 1),
            }
            save_level(level_path, level, info)

    def validate() -> None:
        bpd, nfe = validation_bpd(stack, level_index, validation_images, batch_size=options.batch_size, seed=options.seed + 1)
        best = state.best_validation_bpd is None or bpd < state.best_validation_bpd
        if best:
            state.best_validation_bpd = bpd
        save_all(bpd if best or not level_path.exists() else None)
        metrics = {"level": name, "step": state.step, "validation_bpd": bpd, "validation_images": len(validation_images), "nfe": nfe, "best": best}
        append_metrics(run_dir, metrics)
        reporter.validation(metrics)

    if state.step and level_path.exists() and _budget_exhausted(state, options, 0.0, len(train_images)) in ("steps", "epochs"):
        logger.info("level %s: already trained for %d steps; raise --steps or --epochs to continue", name, state.step)
        return LevelResult(name, state.step, state.skipped_steps, state.best_validation_bpd, 0.0, "already trained")

    # 2. The loop: one batch per step until a budget runs out.
    batch_size = min(options.batch_size, len(train_images))
    started = time.monotonic()
    seconds_before = state.seconds
    stopped_by = "steps"
    level.train()
    reporter.start(name, options.steps, state.step)

    with _deferred_interrupt() as interrupted:
        while True:
            stopped_by = _budget_exhausted(state, options, time.monotonic() - started, len(train_images))
            if stopped_by or interrupted():
                break

            step_started = time.monotonic()
            indices = epoch_order(len(train_images), state.epoch, options.seed)[state.position : state.position + batch_size]
            images = torch.from_numpy(np.ascontiguousarray(train_images[np.sort(indices.numpy())])).to(device)

            loss, bits = level_loss(stack, level_index, images, generator, options)
            optimizer.zero_grad(set_to_none=True)
            finite_loss = bool(torch.isfinite(loss.detach()))
            grad_norm = float("nan")
            if finite_loss:
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(level.parameters(), options.max_grad_norm))

            state.position += batch_size
            if state.position + batch_size > len(train_images):
                state.epoch, state.position = state.epoch + 1, 0
            state.seconds = seconds_before + time.monotonic() - started

            # NOTE: reading the loss and gradient norm syncs with the device once per step; the
            # skip decision needs them on the host.
            if not (finite_loss and math.isfinite(grad_norm)):
                state.consecutive_failures += 1
                state.skipped_steps += 1
                optimizer.zero_grad(set_to_none=True)
                logger.warning(
                    "level %s: skipped a step with a non-finite %s (%d in a row)",
                    name, "loss" if not finite_loss else "gradient", state.consecutive_failures,
                )
                if state.consecutive_failures >= options.max_failures:
                    raise NonFiniteError(
                        f"level {name}: {state.consecutive_failures} steps in a row had non-finite values; "
                        "the last good files are kept; lower --lr or tighten the solver tolerance"
                    )
                continue

            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate * min(1.0, (state.step + 1) / max(1, options.warmup_steps))
            optimizer.step()
            state.step += 1
            state.consecutive_failures = 0

            metrics = {
                "level": name,
                "step": state.step,
                "loss": float(loss.detach()),
                "bpd": float(bits.detach().mean()),
                "nfe": level.nfe,
                "grad_norm": grad_norm,
                "learning_rate": optimizer.param_groups[0]["lr"],
                "seconds_per_step": time.monotonic() - step_started,
            }
            append_metrics(run_dir, metrics)
            reporter.step(metrics)

            if state.step % options.validate_every == 0:
                validate()

        if interrupted():
            save_all()
            reporter.finish()
            logger.warning("level %s: interrupted at step %d; state saved to %s", name, state.step, run_dir)
            raise KeyboardInterrupt

    # 3. A final validation unless the last step was just validated.
    if state.step % options.validate_every != 0 or not level_path.exists():
        validate()
    reporter.finish()
    return LevelResult(name, state.step, state.skipped_steps, state.best_validation_bpd, state.seconds, stopped_by)


def epoch_order(count: int, epoch: int, seed: int) -> torch.Tensor:
    """Return the shuffled image order of one epoch, a function of (seed, epoch) alone."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(count, generator=generator)


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


def save_checkpoint(path: Path, level: Level, optimizer: torch.optim.Optimizer, generator: torch.Generator, state: TrainingState) -> None:
    """Save weights, optimizer moments, generator state and counters; no pickle."""
    tensors = {f"model.{name}": tensor for name, tensor in level.state_dict().items()}

    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for key, tensor in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(tensor)
    tensors["generator"] = generator.get_state()

    metadata = {
        "config": json.dumps(level.config.to_dict()),
        "state": json.dumps(asdict(state)),
        "param_groups": json.dumps(optimizer_state["param_groups"]),
    }
    atomic_save_tensors(path, tensors, metadata)


def load_checkpoint(path: Path, level: Level, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> TrainingState:
    """Restore what :func:`save_checkpoint` saved; raise ModelFileError when it does not fit."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        config = json.loads(metadata["config"])
        state = TrainingState(**json.loads(metadata["state"]))
        param_groups = json.loads(metadata["param_groups"])
    except Exception as error:  # noqa: BLE001 - any damage means the same thing to the user
        raise ModelFileError(f"checkpoint {path} is damaged ({error}); delete it or pass --no-resume") from None

    if config != level.config.to_dict():
        raise ModelFileError(
            f"checkpoint {path} was trained with other level settings; pass --no-resume to start this level over"
        )

    device = next(level.parameters()).device
    level.load_state_dict({name[len("model."):]: tensor for name, tensor in tensors.items() if name.startswith("model.")})

    optimizer_state: dict = {"state": {}, "param_groups": param_groups}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[key] = tensor.to(device) if key != "step" else tensor
    optimizer.load_state_dict(optimizer_state)
    generator.set_state(tensors["generator"])
    return state

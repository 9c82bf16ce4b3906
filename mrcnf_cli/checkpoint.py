"""A level's training checkpoint: weights, Adam state, random-generator states and counters.

Everything is stored in one safetensors file with JSON metadata, so resuming never unpickles.
Each process of a distributed job has its own generator, saved as ``generator.<rank>``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mrcnf_cli.errors import ModelFileError
from mrcnf_cli.level import Level
from mrcnf_cli.store import atomic_save_tensors


@dataclass
class TrainingState:
    """Counters of a level's training, saved in its checkpoint.

    Attributes:
        step: optimizer steps taken.
        epoch: passes over the training images completed.
        position: images of the current epoch already used, per process.
        seconds: wall time spent training.
        consecutive_failures: non-finite steps in a row.
        skipped_steps: non-finite steps in total.
        best_validation_bpd: best validation BPD so far, bits per dimension of the level's variables.
        world_size: number of processes that trained.
        validation_set: data name, image size and image count that ``best_validation_bpd`` was
            measured on.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    seconds: float = 0.0
    consecutive_failures: int = 0
    skipped_steps: int = 0
    best_validation_bpd: float | None = None
    world_size: int = 1
    validation_set: dict | None = None


def save_checkpoint(
    path: Path, level: Level, optimizer: torch.optim.Optimizer, generator_states: list[torch.Tensor], state: TrainingState
) -> None:
    """Save weights, optimizer moments, every process's generator state and the counters."""
    tensors = {f"model.{name}": tensor for name, tensor in level.state_dict().items()}

    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for key, tensor in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(tensor)
    for rank, generator_state in enumerate(generator_states):
        tensors[f"generator.{rank}"] = generator_state

    metadata = {
        "config": json.dumps(level.config.to_dict()),
        "state": json.dumps(asdict(state)),
        "param_groups": json.dumps(optimizer_state["param_groups"]),
    }
    atomic_save_tensors(path, tensors, metadata)


def load_checkpoint(
    path: Path, level: Level, optimizer: torch.optim.Optimizer, generator: torch.Generator, *, rank: int = 0, world_size: int = 1
) -> TrainingState:
    """Restore what :func:`save_checkpoint` saved into this process's level, optimizer and generator.

    Raises:
        ModelFileError: the file is damaged, contains another level configuration, or was saved by
            a different number of processes.
    """
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        config = json.loads(metadata["config"])
        state = TrainingState(**json.loads(metadata["state"]))
        param_groups = json.loads(metadata["param_groups"])
    except Exception as error:  # noqa: BLE001 - any damage means the same thing to the user
        raise ModelFileError(f"checkpoint {path} is damaged ({error}); delete it or pass --no-resume") from None

    expected = level.config.to_dict()
    if config != expected:
        changed = ", ".join(sorted(key for key in expected.keys() | config.keys() if config.get(key) != expected.get(key)))
        raise ModelFileError(
            f"checkpoint {path} was trained with other level settings ({changed}); pass --no-resume to start this level over"
        )
    if state.world_size != world_size:
        raise ModelFileError(
            f"checkpoint {path} was saved by {state.world_size} processes, but this job runs {world_size}; "
            f"resume with {state.world_size} processes or pass --no-resume"
        )

    device = next(level.parameters()).device
    level.load_state_dict({name[len("model."):]: tensor for name, tensor in tensors.items() if name.startswith("model.")})

    optimizer_state: dict = {"state": {}, "param_groups": param_groups}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[key] = tensor.to(device) if key != "step" else tensor
    optimizer.load_state_dict(optimizer_state)
    generator.set_state(tensors[f"generator.{rank}"])
    return state

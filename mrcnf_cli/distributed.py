"""Data-parallel training with torch.distributed, as launched by torchrun.

torchrun starts one process per device and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. Each process then trains the same level on its own shard of every global batch,
and DistributedDataParallel averages the gradients. NCCL is used on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mrcnf_cli.errors import InputError

logger = logging.getLogger(__name__)

RENDEZVOUS_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a distributed job; rank 0 of world size 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_agree(self, flag: bool, device: torch.device) -> bool:
        """Return True only if ``flag`` is True on every process (False on any one wins)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def any_true(self, flag: bool, device: torch.device) -> bool:
        """Return True if ``flag`` is True on any process."""
        return not self.all_agree(not flag, device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather_tensors(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Collect one same-shaped tensor from every process, ordered by rank."""
        if not self.enabled:
            return [tensor]
        gathered = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(gathered, tensor)
        return gathered


def world_from_environment() -> Distributed:
    """Read this process's rank and world size from torchrun's environment variables.

    Without WORLD_SIZE, or with WORLD_SIZE 1, the process runs alone, whatever the value of RANK.

    Raises:
        InputError: a variable is not a whole number, a rendezvous variable is missing, or the
            rank is outside the world.
    """
    world_size = _environment_integer("WORLD_SIZE", "1")
    if world_size <= 1:
        return Distributed()

    missing = [name for name in RENDEZVOUS_VARIABLES if name not in os.environ]
    if missing:
        raise InputError(
            f"WORLD_SIZE is {world_size} but {', '.join(missing)} are not set; launch with torchrun, "
            "for example: torchrun --nproc-per-node 2 -m mrcnf_cli train ..."
        )
    rank, local_rank = _environment_integer("RANK"), _environment_integer("LOCAL_RANK")
    if rank >= world_size:
        raise InputError(f"invalid RANK {rank} for WORLD_SIZE {world_size}; ranks run from 0 to {world_size - 1}")
    return Distributed(rank, world_size, local_rank)


def _environment_integer(name: str, default: str | None = None) -> int:
    text = os.environ.get(name, default)
    if text is None or not text.strip().isdigit():
        raise InputError(f"invalid {name} {text!r}; torchrun sets it to a whole number, so launch with torchrun")
    return int(text)


def setup_distributed(device: torch.device, *, timeout_seconds: float = 300.0) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun prepared, and pick this process's device.

    On CUDA each process takes the GPU of its local rank.

    Raises:
        InputError: more processes on this machine than GPUs, an incomplete rendezvous
            environment, or peers that did not join within ``timeout_seconds``.
    """
    world = world_from_environment()
    if not world.enabled:
        return world, device

    if device.type == "cuda":
        count = torch.cuda.device_count()
        if world.local_rank >= count:
            raise InputError(
                f"local rank {world.local_rank} has no GPU: this machine has {count}; "
                f"start at most {count} processes per node (--nproc-per-node {count})"
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(
                backend,
                rank=world.rank,
                world_size=world.world_size,
                timeout=datetime.timedelta(seconds=timeout_seconds),
            )
        except (RuntimeError, ValueError) as error:
            raise InputError(
                f"could not join the distributed job at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} "
                f"within {timeout_seconds:.0f} s ({error}); check that every process was started"
            ) from None
        logger.info("process %d of %d joined the %s process group on %s", world.rank, world.world_size, backend, device)
    return world, device


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leaves_process_group(job):
    """Wrap a job that may join a process group so that it leaves the group when it returns or fails.

    A process that exits with a live gloo group can abort in the group's threads at exit. After a
    successful job every process first waits at a barrier, so none leaves while others still work.
    """

    @functools.wraps(job)
    def wrapper(*args, **kwargs):
        try:
            result = job(*args, **kwargs)
            if dist.is_initialized():
                dist.barrier()
            return result
        finally:
            shutdown_distributed()

    return wrapper


def distributed_timeout() -> float:
    """Return the seconds to wait for all processes to join: $MRCNF_DIST_TIMEOUT, else 300."""
    text = os.environ.get("MRCNF_DIST_TIMEOUT", "300")
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise InputError(f"invalid MRCNF_DIST_TIMEOUT {text!r}; give a positive number of seconds")
    return seconds

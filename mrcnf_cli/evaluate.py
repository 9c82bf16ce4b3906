"""Bits per dimension of a stack over a set of 8-bit images, streamed batch by batch."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from mrcnf_cli.cnf import TRACE_ESTIMATORS
from mrcnf_cli.errors import DataError, InputError
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.stack import MultiResFlow

logger = logging.getLogger(__name__)


@dataclass
class BpdReport:
    """BPD statistics of a set of images under a stack.

    Attributes:
        count: number of images.
        bpd_mean: mean bits per dimension (uniform-dequantization bound).
        bpd_std: standard deviation of the per-image BPD.
        level_bpd_mean: mean share of each level, bits per full-image dimension, coarse to fine.
        map_bpd_mean: mean share of the pyramid maps.
        nfe_mean: mean dynamics evaluations per batch of each level.
        sizes: (H, W) of each level used.
        seconds: wall time of the evaluation.
        rows: per-image BPD and shares, when requested.
    """

    count: int
    bpd_mean: float
    bpd_std: float
    level_bpd_mean: list[float]
    map_bpd_mean: float
    nfe_mean: list[float]
    sizes: list[tuple[int, int]]
    seconds: float
    rows: list[dict] = field(default_factory=list)


def configure_evaluation(stack: MultiResFlow, *, trace: str | None = None, solver: SolverConfig | None = None) -> None:
    """Set the divergence estimator and the evaluation solver of every block of a stack."""
    if trace is not None and trace not in TRACE_ESTIMATORS:
        raise InputError(f"unknown trace estimator {trace!r}; choose one of: {', '.join(TRACE_ESTIMATORS)}")
    for level in stack.levels:
        for block in level.blocks:
            changes = {}
            if trace is not None:
                changes["trace"] = trace
            if solver is not None:
                changes["eval_solver"] = solver
            block.config = dataclasses.replace(block.config, **changes)


@torch.no_grad()
def evaluate_bpd(
    stack: MultiResFlow,
    batches: Iterable[torch.Tensor],
    *,
    seed: int = 0,
    names: list[str] | None = None,
    keep_rows: bool = False,
) -> BpdReport:
    """Compute BPD statistics over 8-bit image batches, holding only running sums in memory.

    Args:
        stack: the model, in any mode (evaluated in evaluation mode).
        batches: uint8 batches (B, C, H, W), all of one size.
        seed: seed of the dequantization noise and Hutchinson probes, so runs repeat exactly.
        names: one name per image for the per-image rows.
        keep_rows: keep one row per image.

    Returns:
        A :class:`BpdReport`.
    """
    stack.eval()
    device = next(stack.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.monotonic()

    count = 0
    bpd_sum = bpd_square_sum = map_sum = 0.0
    level_sums: np.ndarray | None = None
    nfe_sums: np.ndarray | None = None
    batch_count = 0
    rows: list[dict] = []
    sizes: list[tuple[int, int]] = []

    for images in batches:
        result = stack.log_prob(images.to(device), generator=generator)
        bpd = result.bpd.cpu().numpy()
        level_bpd = result.level_bpd.cpu().numpy()

        if level_sums is None:
            level_sums = np.zeros(level_bpd.shape[1])
            nfe_sums = np.zeros(level_bpd.shape[1])
            sizes = result.sizes
        bpd_sum += float(bpd.sum())
        bpd_square_sum += float((bpd**2).sum())
        map_sum += float(result.map_bpd.sum())
        level_sums += level_bpd.sum(0)
        nfe_sums += np.array(result.nfe)
        batch_count += 1

        if keep_rows:
            for offset in range(len(bpd)):
                row = {"bpd": float(bpd[offset]), "level_bpd": level_bpd[offset].tolist(), "map_bpd": float(result.map_bpd[offset])}
                if names is not None:
                    row = {"image": names[count + offset], **row}
                rows.append(row)
        count += len(bpd)
        logger.info("evaluated %d images: running mean %.4f bits/dim, NFE %s", count, bpd_sum / count, result.nfe)

    if count == 0:
        raise DataError("no images to evaluate; the data set is empty")

    mean = bpd_sum / count
    variance = max(bpd_square_sum / count - mean**2, 0.0) * count / max(count - 1, 1)
    return BpdReport(
        count=count,
        bpd_mean=mean,
        bpd_std=math.sqrt(variance),
        level_bpd_mean=(level_sums / count).tolist(),
        map_bpd_mean=map_sum / count,
        nfe_mean=(nfe_sums / batch_count).tolist(),
        sizes=sizes,
        seconds=time.monotonic() - started,
        rows=rows,
    )


def iterate_batches(array: np.ndarray, batch_size: int, limit: int | None = None) -> Iterable[torch.Tensor]:
    """Yield uint8 batches from an (N, C, H, W) array or memory map, reading one batch at a time."""
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    total = len(array) if limit is None else min(limit, len(array))
    for start in range(0, total, batch_size):
        yield torch.from_numpy(np.ascontiguousarray(array[start : min(start + batch_size, total)]))

"""Out-of-distribution and patch-shuffling evaluations of a stack directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrcnf_cli.data import DATASETS, load_dataset
from mrcnf_cli.data.locate import resolve_data_dir
from mrcnf_cli.errors import DataError, InputError, MrcnfError
from mrcnf_cli.evaluate import BpdReport, evaluate_bpd, iterate_batches
from mrcnf_cli.figures import ood_histograms, shuffle_plot
from mrcnf_cli.ood import BUILT_IN_SETS, complexity_bpd, get_codec, roc_metrics, shuffle_patches
from mrcnf_cli.stack import MultiResFlow
from mrcnf_cli.store import atomic_path, check_suffix, check_writable, load_stack

logger = logging.getLogger(__name__)

METHODS = ("S", "bpd", "all")


@dataclass
class ScoredSet:
    """Per-image scores of one image set; every score is higher for more out-of-distribution images."""

    name: str
    bpd: np.ndarray
    level_bpd: np.ndarray
    complexity: np.ndarray | None

    @property
    def count(self) -> int:
        return len(self.bpd)

    def scores(self) -> dict[str, np.ndarray]:
        scores = {"bpd": self.bpd}
        if self.complexity is not None:
            scores["S"] = self.bpd - self.complexity
        return scores


@dataclass
class OodReport:
    """Detection results of one in-distribution set against each OOD set."""

    in_distribution: ScoredSet
    out_of_distribution: list[ScoredSet]
    results: list[dict]
    level_names: list[str]
    codec: dict | None
    max_images: int | None
    plot: str | None = None


def score_images(
    stack: MultiResFlow, name: str, images: np.ndarray, *, codec, batch_size: int, seed: int
) -> ScoredSet:
    """Compute BPD, level shares and (with a codec) compressed length of every image of a set."""
    if len(images) == 0:
        raise DataError(f"image set {name!r} is empty; give a set with images")
    logger.info("scoring %d images of %s", len(images), name)
    report = evaluate_bpd(stack, iterate_batches(images, batch_size), seed=seed, keep_rows=True)
    bpd = np.array([row["bpd"] for row in report.rows])
    level_bpd = np.array([row["level_bpd"] for row in report.rows])
    complexity = complexity_bpd(images, codec) if codec is not None else None
    return ScoredSet(name, bpd, level_bpd, complexity)


def ood_evaluation(
    model_dir: Path,
    *,
    data: str | None = None,
    ood: list[str] | None = None,
    method: str = "all",
    compressor: str = "jxl",
    data_dir: str | Path | None = None,
    split: str = "test",
    max_images: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    convert: bool = False,
    plot: Path | None = None,
    device: torch.device = torch.device("cpu"),
) -> OodReport:
    """Score an in-distribution set and OOD sets under a stack and compute detection metrics.

    Every set is box-downsampled to the stack's finest resolution when its images are larger by
    an integer factor. ``data`` defaults to the test split of the set the stack was trained on,
    and ``ood`` to the built-in ``constant`` and ``noise`` sets plus every named set found under
    ``data_dir``.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if max_images is not None and max_images < 1:
        raise InputError(f"--max-images must be positive, got {max_images}")
    codec = get_codec(compressor) if method in ("S", "all") else None
    if plot is not None:
        check_writable(Path(plot))
        check_suffix(Path(plot), ".png", "--plot")

    loaded = load_stack(Path(model_dir), device=device)
    stack = loaded.stack
    size = stack.sizes[-1]
    channels = stack.config.channels
    data = data or loaded.manifest.data.get("data")
    if not data:
        raise InputError(f"{model_dir} does not record its training data; pass --data")

    # 1. The in-distribution images, then each OOD set at the same size and count limit.
    inside = load_dataset(data, split=split, data_dir=data_dir, channels=channels, convert=convert, image_size=size[0]).array[:max_images]
    scored_in = score_images(stack, data, inside, codec=codec, batch_size=batch_size, seed=seed)
    scored_out = []
    for name in ood or default_ood_sets(data, data_dir):
        images = _ood_images(name, count=len(inside), channels=channels, size=size, data_dir=data_dir, convert=convert, seed=seed)
        scored_out.append(score_images(stack, name, images[:max_images], codec=codec, batch_size=batch_size, seed=seed))

    # 2. Metrics for each score against each OOD set.
    level_names = [f"level {h}x{w}" for h, w in stack.sizes]
    results = []
    for out in scored_out:
        candidates = {**scored_in.scores(), **{name: scored_in.level_bpd[:, i] for i, name in enumerate(level_names)}}
        outside = {**out.scores(), **{name: out.level_bpd[:, i] for i, name in enumerate(level_names)}}
        for score_name, in_scores in candidates.items():
            if method == "S" and score_name == "bpd" or method == "bpd" and score_name == "S":
                continue
            metrics = roc_metrics(in_scores, outside[score_name])
            results.append({"ood": out.name, "score": score_name, "n_in": scored_in.count, "n_out": out.count, **metrics})

    codec_info = {"name": codec.name, "settings": codec.settings, "headers_counted": True} if codec else None
    report = OodReport(scored_in, scored_out, results, level_names, codec_info, max_images)
    if plot is not None:
        ood_histograms(plot, [scored_in, *scored_out])
        report.plot = str(plot)
    return report


def default_ood_sets(in_distribution: str, data_dir: str | Path | None) -> list[str]:
    """Return the built-in OOD sets and every named set whose files exist under ``data_dir``."""
    names = list(BUILT_IN_SETS)
    for name in DATASETS:
        if name in (in_distribution, "photos"):
            continue
        try:
            DATASETS[name].find_sources(resolve_data_dir(data_dir), "test", None)
        except MrcnfError:
            continue
        names.append(name)
    logger.info("OOD sets: %s", ", ".join(names))
    return names


def _ood_images(name: str, *, count: int, channels: int, size, data_dir, convert: bool, seed: int) -> np.ndarray:
    if name in BUILT_IN_SETS:
        return BUILT_IN_SETS[name](count, channels, size, seed)
    return load_dataset(name, split="test", data_dir=data_dir, channels=channels, convert=convert, image_size=size[0]).array


@dataclass
class ShuffleReport:
    """BPD of a set with its patches shuffled, for each patch size."""

    data: str
    images: int
    unshuffled: BpdReport
    by_patch: dict[int, BpdReport] = field(default_factory=dict)
    permutations: str | None = None
    plot: str | None = None


def shuffle_evaluation(
    model_dir: Path,
    *,
    data: str | None = None,
    patches: list[int],
    data_dir: str | Path | None = None,
    split: str = "test",
    max_images: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    convert: bool = False,
    permutations_path: Path | None = None,
    plot: Path | None = None,
    device: torch.device = torch.device("cpu"),
) -> ShuffleReport:
    """Evaluate BPD after permuting k x k patches of every image, for each patch size k.

    The same dequantization seed is used for every patch size, so a patch as large as the image
    gives exactly the unshuffled BPD.
    """
    for path, suffix, option in ((permutations_path, ".npz", "--permutations"), (plot, ".png", "--plot")):
        if path is not None:
            check_writable(Path(path))
            check_suffix(Path(path), suffix, option)
    loaded = load_stack(Path(model_dir), device=device)
    stack = loaded.stack
    size = stack.sizes[-1]
    data = data or loaded.manifest.data.get("data")
    if not data:
        raise InputError(f"{model_dir} does not record its training data; pass --data")
    images = load_dataset(data, split=split, data_dir=data_dir, channels=stack.config.channels, convert=convert, image_size=size[0]).array[:max_images]
    if len(images) == 0:
        raise DataError(f"data set {data!r} ({split}) is empty")
    for patch in patches:
        shuffle_patches(images[:1], patch, seed)  # rejects a patch size that does not divide the images

    report = ShuffleReport(data, len(images), evaluate_bpd(stack, iterate_batches(images, batch_size), seed=seed))
    saved = {}
    for patch in patches:
        shuffled, permutation = shuffle_patches(images, patch, seed)
        logger.info("patch size %d: evaluating %d shuffled images", patch, len(shuffled))
        report.by_patch[patch] = evaluate_bpd(stack, iterate_batches(shuffled, batch_size), seed=seed)
        saved[f"patch_{patch}"] = permutation

    if permutations_path is not None:
        with atomic_path(Path(permutations_path)) as temporary:
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, **saved)
        report.permutations = str(permutations_path)
    if plot is not None:
        shuffle_plot(plot, report.unshuffled.bpd_mean, {patch: (r.bpd_mean, r.bpd_std) for patch, r in report.by_patch.items()})
        report.plot = str(plot)
    return report

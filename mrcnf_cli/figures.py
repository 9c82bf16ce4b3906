"""Figures written by the commands, drawn with matplotlib's non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrcnf_cli.store import atomic_path  # noqa: E402


def superres_figure(
    path: Path,
    inputs: np.ndarray,
    samples: np.ndarray,
    ground_truth: np.ndarray | None = None,
) -> None:
    """Draw super-resolution results as rows: ground truth (when known), input, then each sample.

    Args:
        path: PNG file to write.
        inputs: low-resolution uint8 images (N, C, h, w), drawn with nearest-neighbour pixels.
        samples: uint8 samples (N, K, C, H, W).
        ground_truth: high-resolution uint8 images (N, C, H, W), or None.
    """
    rows = [("input", inputs)] if ground_truth is None else [("ground truth", ground_truth), ("input", inputs)]
    rows += [(f"sample {k + 1}", samples[:, k]) for k in range(samples.shape[1])]
    columns = len(inputs)

    figure, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 1.6 * len(rows)), squeeze=False)
    for row, (label, images) in enumerate(rows):
        for column in range(columns):
            axis = axes[row, column]
            image = images[column].transpose(1, 2, 0)
            axis.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(label)

    _save(figure, path)


def ood_histograms(path: Path, sets) -> None:
    """Draw histograms of -bpd and, when known, of the complexity score S, one colour per set.

    Args:
        path: PNG file to write.
        sets: scored sets, the in-distribution one first (objects with ``name``, ``bpd`` and
            ``complexity``).
    """
    with_complexity = sets[0].complexity is not None
    figure, axes = plt.subplots(1, 2 if with_complexity else 1, figsize=(10 if with_complexity else 5, 3.5), squeeze=False)

    for scored in sets:
        axes[0, 0].hist(-scored.bpd, bins=40, alpha=0.5, density=True, label=scored.name)
        if with_complexity:
            axes[0, 1].hist(scored.bpd - scored.complexity, bins=40, alpha=0.5, density=True, label=scored.name)
    axes[0, 0].set_xlabel("-bpd (bits per dimension)")
    if with_complexity:
        axes[0, 1].set_xlabel("S = bpd - L (bits per dimension)")
    for axis in axes[0]:
        axis.set_ylabel("density")
        axis.legend(fontsize="small")

    _save(figure, path)


def shuffle_plot(path: Path, unshuffled_bpd: float, by_patch: dict[int, tuple[float, float]]) -> None:
    """Plot mean BPD (with one standard deviation) against patch size, beside the unshuffled BPD."""
    patches = sorted(by_patch)
    means = [by_patch[patch][0] for patch in patches]
    stds = [by_patch[patch][1] for patch in patches]

    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.errorbar(patches, means, yerr=stds, marker="o", capsize=3, label="shuffled")
    axis.axhline(unshuffled_bpd, color="grey", linestyle="--", label="unshuffled")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("patch size (pixels)")
    axis.set_ylabel("bits per dimension")
    axis.legend()

    _save(figure, path)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(Path(path)) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)

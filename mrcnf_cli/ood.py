"""Out-of-distribution scores: input complexity, ROC metrics, built-in OOD sets, patch shuffling.

The input-complexity score of Serrà et al. ("Input complexity and out-of-distribution detection
with likelihood-based generative models", ICLR 2020) is ``S(x) = bpd(x) - L(x)``, where ``L(x)``
is the length of the losslessly compressed 8-bit image in bits per dimension. Every score here
is oriented so that a higher value means "more out-of-distribution".
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
from PIL import Image

from mrcnf_cli.errors import ImageSizeError, InputError, UnknownNameError


@dataclass(frozen=True)
class Codec:
    """A lossless image codec used to measure complexity.

    Attributes:
        name: registry name.
        settings: human-readable settings, printed in reports.
        encode: uint8 image (H, W, C) -> encoded bytes, headers included.
        decode: encoded bytes -> uint8 image, used to check that the encoding is lossless.
    """

    name: str
    settings: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]


def _flif_encode(image: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "image.png", Path(folder) / "image.flif"
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(source)
        subprocess.run(["flif", "-e", "-Q100", str(source), str(target)], check=True, capture_output=True)
        return target.read_bytes()


def _flif_decode(data: bytes) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "image.flif", Path(folder) / "image.png"
        source.write_bytes(data)
        subprocess.run(["flif", "-d", str(source), str(target)], check=True, capture_output=True)
        return np.asarray(Image.open(target))


CODECS: dict[str, Codec] = {
    "jxl": Codec(
        "jxl",
        "JPEG XL lossless (libjxl through imagecodecs), effort 7",
        lambda image: imagecodecs.jpegxl_encode(image, lossless=True, effort=7),
        imagecodecs.jpegxl_decode,
    ),
    "png": Codec("png", "PNG, zlib level 9 (imagecodecs)", lambda image: imagecodecs.png_encode(image, level=9), imagecodecs.png_decode),
    "j2k": Codec(
        "j2k",
        "JPEG 2000 reversible 5/3 wavelet (OpenJPEG through imagecodecs)",
        lambda image: imagecodecs.jpeg2k_encode(image, level=0, reversible=True),
        imagecodecs.jpeg2k_decode,
    ),
    "flif": Codec("flif", "FLIF lossless (the flif program on PATH), -Q100", _flif_encode, _flif_decode),
}


def get_codec(name: str) -> Codec:
    """Look up a codec; raise UnknownNameError, or InputError when the flif program is missing."""
    if name not in CODECS:
        raise UnknownNameError("compressor", name, CODECS)
    if name == "flif" and shutil.which("flif") is None:
        raise InputError("compressor 'flif' needs the flif program on PATH, which was not found; use --compressor jxl")
    return CODECS[name]


def complexity_bpd(images: np.ndarray, codec: Codec) -> np.ndarray:
    """Return the compressed length of each uint8 image (N, C, H, W) in bits per dimension.

    The length counts the whole encoded file, headers included.
    """
    lengths = np.empty(len(images))
    for index, image in enumerate(images):
        encoded = codec.encode(np.ascontiguousarray(image.transpose(1, 2, 0)))
        lengths[index] = 8 * len(encoded) / image.size
    return lengths


def roc_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    """Compute detection metrics for scores where higher means out-of-distribution.

    Returns:
        ``auroc``: probability that an OOD image scores above an in-distribution one (ties count
        one half); ``aupr_in``: average precision with the in-distribution class positive (scores
        negated); ``aupr_out``: average precision with the OOD class positive;
        ``fpr_at_95_tpr``: fraction of in-distribution images flagged as OOD at the lowest threshold
        that flags 95% of OOD images.
    """
    in_scores = np.asarray(in_scores, dtype=np.float64)
    out_scores = np.asarray(out_scores, dtype=np.float64)
    if len(in_scores) == 0 or len(out_scores) == 0:
        raise InputError("ROC metrics need at least one in-distribution and one out-of-distribution image")

    return {
        "auroc": _auroc(in_scores, out_scores),
        "aupr_in": _average_precision(-in_scores, -out_scores),
        "aupr_out": _average_precision(out_scores, in_scores),
        "fpr_at_95_tpr": _fpr_at_tpr(in_scores, out_scores, 0.95),
    }


def _auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    # Mann-Whitney U: mean rank of the positives among all scores, with average ranks for ties.
    scores = np.concatenate([negatives, positives])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    positive_ranks = ranks[len(negatives) :].sum()
    count = len(positives)
    return float((positive_ranks - count * (count + 1) / 2) / (count * len(negatives)))


def _average_precision(positives: np.ndarray, negatives: np.ndarray) -> float:
    # Precision averaged over the positives, thresholds at each distinct score, highest first.
    scores = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    true_positives = np.cumsum(labels)[distinct]
    flagged = distinct + 1
    precision = true_positives / flagged
    recall_steps = np.diff(np.r_[0.0, true_positives / len(positives)])
    return float((precision * recall_steps).sum())


def _fpr_at_tpr(negatives: np.ndarray, positives: np.ndarray, tpr: float) -> float:
    threshold = np.sort(positives)[::-1][int(np.ceil(tpr * len(positives))) - 1]
    return float((negatives >= threshold).mean())


def constant_images(count: int, channels: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """Return ``count`` images of one uniform random colour each, uint8 (N, C, H, W)."""
    colours = np.random.default_rng(seed).integers(0, 256, size=(count, channels, 1, 1), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(colours, (count, channels, *size)))


def noise_images(count: int, channels: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """Return ``count`` images of independent uniform random pixels, uint8 (N, C, H, W)."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, channels, *size), dtype=np.uint8)


BUILT_IN_SETS: dict[str, Callable[[int, int, tuple[int, int], int], np.ndarray]] = {
    "constant": constant_images,
    "noise": noise_images,
}


def shuffle_patches(images: np.ndarray, patch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each image into ``patch`` x ``patch`` tiles and permute the tiles at random.

    Args:
        images: uint8 images (N, C, H, W); H and W divisible by ``patch``.
        patch: tile side in pixels.
        seed: seed of the permutations.

    Returns:
        ``(shuffled, permutations)``: the images and, per image, the permutation (N, tiles) that
        puts tile ``permutations[n, i]`` of the original at position i.

    Raises:
        ImageSizeError: ``patch`` does not divide H and W.
    """
    count, channels, height, width = images.shape
    if patch < 1 or height % patch or width % patch:
        raise ImageSizeError(f"patch size {patch} does not divide the image size {height}x{width}; choose a divisor of both")

    rows, columns = height // patch, width // patch
    tiles = images.reshape(count, channels, rows, patch, columns, patch).transpose(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(count, rows * columns, channels, patch, patch)

    generator = np.random.default_rng(seed)
    permutations = np.stack([generator.permutation(rows * columns) for _ in range(count)])
    shuffled = np.take_along_axis(tiles, permutations[:, :, None, None, None], axis=1)

    shuffled = shuffled.reshape(count, rows, columns, channels, patch, patch).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(shuffled.reshape(count, channels, height, width)), permutations

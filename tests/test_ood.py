"""Complexity codecs, ROC metrics, patch shuffling, and the ood and shuffle-eval commands."""

import itertools
import json
import shutil

import numpy as np
import pytest

from mrcnf_cli.errors import ImageSizeError, InputError, UnknownNameError
from mrcnf_cli.ood import CODECS, complexity_bpd, constant_images, get_codec, noise_images, roc_metrics, shuffle_patches

from helpers import assert_one_line_error, invoke


def brute_force_auroc(in_scores, out_scores):
    total = 0.0
    for inside, outside in itertools.product(in_scores, out_scores):
        if outside > inside:
            total += 1.0
        elif outside == inside:
            total += 0.5
    return total / (len(in_scores) * len(out_scores))


def brute_force_average_precision(positives, negatives):
    # Precision at each positive's threshold (all items scoring at least as high), averaged.
    scores = np.concatenate([positives, negatives])
    return float(np.mean([(positives >= s).sum() / (scores >= s).sum() for s in positives]))


def test_auroc_matches_pair_counting():
    generator = np.random.default_rng(0)
    in_scores = np.round(generator.normal(0, 1, 40), 1)
    out_scores = np.round(generator.normal(0.7, 1, 30), 1)
    metrics = roc_metrics(in_scores, out_scores)
    assert metrics["auroc"] == pytest.approx(brute_force_auroc(in_scores, out_scores), abs=1e-12)


def test_average_precision_matches_brute_force():
    generator = np.random.default_rng(1)
    in_scores = generator.normal(0, 1, 25)
    out_scores = generator.normal(1, 1, 35)
    metrics = roc_metrics(in_scores, out_scores)
    assert metrics["aupr_out"] == pytest.approx(brute_force_average_precision(out_scores, in_scores), abs=1e-12)
    assert metrics["aupr_in"] == pytest.approx(brute_force_average_precision(-in_scores, -out_scores), abs=1e-12)


def test_perfect_and_reversed_separation():
    perfect = roc_metrics(np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0]))
    assert perfect == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr_at_95_tpr": 0.0}
    reversed_ = roc_metrics(np.array([5.0, 6.0]), np.array([0.0, 1.0, 2.0]))
    assert reversed_["auroc"] == 0.0
    assert reversed_["fpr_at_95_tpr"] == 1.0


def test_fpr_at_95_tpr_threshold():
    out_scores = np.arange(100, dtype=float)  # the 95th highest is 5
    in_scores = np.array([4.0, 5.0, 6.0, 100.0])
    assert roc_metrics(in_scores, out_scores)["fpr_at_95_tpr"] == 0.75


def test_empty_scores_rejected():
    with pytest.raises(InputError, match="at least one"):
        roc_metrics(np.array([]), np.array([1.0]))


@pytest.mark.parametrize("name", ["jxl", "png", "j2k"])
def test_codecs_are_lossless_on_real_images(name, real_data):
    from PIL import Image

    files = sorted((real_data / "cifar10-jpg" / "test").rglob("*.jpg"))[:5]
    codec = get_codec(name)
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        decoded = codec.decode(codec.encode(pixels))
        assert np.array_equal(decoded.reshape(pixels.shape), pixels)


@pytest.mark.parametrize("name", ["jxl", "png", "j2k"])
def test_constant_images_compress_better_than_noise(name):
    codec = get_codec(name)
    flat = complexity_bpd(constant_images(3, 3, (32, 32), seed=0), codec)
    noisy = complexity_bpd(noise_images(3, 3, (32, 32), seed=0), codec)
    assert flat.max() < 2
    assert noisy.min() > 6
    assert len(CODECS["jxl"].encode(np.zeros((32, 32, 3), np.uint8))) * 8 / 3072 == pytest.approx(
        complexity_bpd(np.zeros((1, 3, 32, 32), np.uint8), CODECS["jxl"])[0]
    )


def test_flif_missing_is_usage_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="flif program on PATH"):
        get_codec("flif")


def test_unknown_codec_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown compressor 'zip'; choose one of: flif, j2k, jxl, png"):
        get_codec("zip")


def patches_of(image, patch):
    c, h, w = image.shape
    tiles = image.reshape(c, h // patch, patch, w // patch, patch).transpose(1, 3, 0, 2, 4).reshape(-1, c, patch, patch)
    return sorted(tile.tobytes() for tile in tiles)


@pytest.mark.parametrize("patch", [1, 2, 4, 8])
def test_shuffle_keeps_patches_and_histogram(patch):
    images = noise_images(3, 3, (8, 8), seed=2)
    shuffled, permutations = shuffle_patches(images, patch, seed=5)
    assert permutations.shape == (3, (8 // patch) ** 2)
    for original, result in zip(images, shuffled):
        assert patches_of(original, patch) == patches_of(result, patch)
        assert np.array_equal(np.bincount(original.ravel(), minlength=256), np.bincount(result.ravel(), minlength=256))
    if patch < 8:
        assert not np.array_equal(shuffled, images)


def test_shuffle_follows_permutation():
    images = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    shuffled, permutations = shuffle_patches(images, 2, seed=0)
    tiles = [images[0, 0, :2, :2], images[0, 0, :2, 2:], images[0, 0, 2:, :2], images[0, 0, 2:, 2:]]
    positions = [shuffled[0, 0, :2, :2], shuffled[0, 0, :2, 2:], shuffled[0, 0, 2:, :2], shuffled[0, 0, 2:, 2:]]
    for position, source in zip(positions, permutations[0]):
        assert np.array_equal(position, tiles[source])


def test_whole_image_patch_is_identity():
    images = noise_images(2, 3, (8, 8), seed=3)
    shuffled, _ = shuffle_patches(images, 8, seed=0)
    assert np.array_equal(shuffled, images)


def test_patch_must_divide_image():
    with pytest.raises(ImageSizeError, match="patch size 3 does not divide the image size 8x8"):
        shuffle_patches(noise_images(1, 3, (8, 8), seed=0), 3, seed=0)


def test_ood_command_report(trained_stack, cifar_crops, tmp_path):
    result = invoke("ood", "--model", trained_stack[0], "--data", cifar_crops, "--ood", "constant", "--ood", "noise",
                    "--max-images", 8, "--plot", tmp_path / "hist.png", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["subsampled"] is True
    assert report["max_images"] == 8
    assert report["codec"]["headers_counted"] is True
    scores = {(row["ood"], row["score"]) for row in report["results"]}
    assert scores == {(ood, score) for ood in ("constant", "noise") for score in ("bpd", "S", "level 8x8", "level 16x16", "level 32x32")}
    assert all(row["n_in"] == 8 and row["n_out"] == 8 for row in report["results"])
    noise_bpd = next(s for s in report["sets"] if s["name"] == "noise")["bpd_mean"]
    data_bpd = report["sets"][0]["bpd_mean"]
    assert noise_bpd > data_bpd
    assert (tmp_path / "hist.png").exists()


def test_ood_defaults_to_training_data(trained_stack):
    result = invoke("ood", "--model", trained_stack[0], "--method", "bpd", "--max-images", 4, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["codec"] is None
    assert {row["ood"] for row in report["results"]} >= {"constant", "noise"}
    assert {row["score"] for row in report["results"]} == {"bpd", "level 8x8", "level 16x16", "level 32x32"}


@pytest.mark.parametrize("args,fragment", [
    (["--method", "likelihood"], "unknown method 'likelihood'"),
    (["--compressor", "zip"], "unknown compressor 'zip'"),
])
def test_ood_bad_options(trained_stack, args, fragment):
    result = invoke("ood", "--model", trained_stack[0], "--ood", "noise", *args)
    assert_one_line_error(result, 2, fragment)


def test_ood_empty_set(trained_stack, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("ood", "--model", trained_stack[0], "--ood", tmp_path / "empty", "--method", "bpd", "--max-images", 2)
    assert_one_line_error(result, 2, "empty")


def test_shuffle_whole_image_equals_unshuffled(trained_stack, cifar_crops, tmp_path):
    result = invoke("shuffle-eval", "--model", trained_stack[0], "--data", cifar_crops, "--patch", "4,32", "--max-images", 6,
                    "--permutations", tmp_path / "perm.npz", "--plot", tmp_path / "plot.png", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_patch = {row["patch"]: row for row in report["patches"]}
    assert by_patch[32]["bpd"] == report["unshuffled"]["bpd"]
    assert by_patch[4]["bpd"] != report["unshuffled"]["bpd"]
    saved = np.load(tmp_path / "perm.npz")
    assert saved["patch_4"].shape == (6, 64)
    assert (tmp_path / "plot.png").exists()


def test_shuffle_bad_patch(trained_stack, cifar_crops):
    result = invoke("shuffle-eval", "--model", trained_stack[0], "--data", cifar_crops, "--patch", "5")
    assert_one_line_error(result, 2, "patch size 5", "32x32")

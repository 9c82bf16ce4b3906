"""sample, superres and extend: reproducibility, the super-resolution invariant, bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import mrcnf_cli.jobs.generation as generation_jobs
from mrcnf_cli.generate import clip_keeping_block_means, continuous_input, parse_temperatures, quantize, superres_images
from mrcnf_cli.errors import InputError
from mrcnf_cli.store import load_stack

from helpers import TINY_TRAINING, assert_one_line_error, digest, invoke


def block_means(pixels: np.ndarray) -> np.ndarray:
    n, c, h, w = pixels.shape
    return pixels.astype(np.float64).reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)[None]


def test_sample_same_seed_same_bytes(trained_stack, tmp_path):
    model, _ = trained_stack
    first = invoke("sample", "--model", model, "-n", 4, "--seed", 7, "--out", tmp_path / "a.png", "--json")
    second = invoke("sample", "--model", model, "-n", 4, "--seed", 7, "--out", tmp_path / "b.png")
    invoke("sample", "--model", model, "-n", 4, "--seed", 8, "--out", tmp_path / "c.png")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    report = json.loads(first.stdout)
    assert report["images"] == 4
    assert report["non_finite"] == 0
    assert [level["resolution"] for level in report["levels"]] == ["8x8", "16x16", "32x32"]
    assert all(level["nfe"] > 0 for level in report["levels"])


def test_sample_temperature_zero_identical(trained_stack, tmp_path):
    model, _ = trained_stack
    result = invoke("sample", "--model", model, "-n", 3, "-t", 0, "--no-grid", "--out", tmp_path / "zero", "--resolution", "16x16")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "zero").glob("*.png"))
    assert len(files) == 3
    images = [read_png(path) for path in files]
    assert images[0].shape == (1, 3, 16, 16)
    assert all(np.array_equal(images[0], image) for image in images[1:])


def test_sample_per_level_temperatures(trained_stack, tmp_path):
    model, _ = trained_stack
    result = invoke("sample", "--model", model, "-n", 2, "-t", "1,0.5,0", "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    wrong_count = invoke("sample", "--model", model, "-n", 2, "-t", "1,0.5", "--out", tmp_path / "u.png")
    assert_one_line_error(wrong_count, 2, "2 temperatures for 3 levels")
    assert not (tmp_path / "u.png").exists()


@pytest.mark.parametrize("value", ["-0.5", "warm", "nan"])
def test_sample_bad_temperature(trained_stack, tmp_path, value):
    result = invoke("sample", "--model", trained_stack[0], "-n", 2, f"--temperature={value}", "--out", tmp_path / "x.png")
    assert_one_line_error(result, 2, f"invalid temperature {value!r}")
    assert not (tmp_path / "x.png").exists()


def test_sample_all_non_finite_exits_one(trained_stack, tmp_path, monkeypatch):
    original = generation_jobs.sample_images

    def poisoned(*args, **kwargs):
        generated = original(*args, **kwargs)
        generated.images[:] = float("nan")
        generated.finite[:] = False
        return generated

    monkeypatch.setattr(generation_jobs, "sample_images", poisoned)
    result = invoke("sample", "--model", trained_stack[0], "-n", 2, "--out", tmp_path / "nan.png")
    assert_one_line_error(result, 1, "all 2 samples had non-finite values")
    assert not (tmp_path / "nan.png").exists()


def test_superres_keeps_block_means_in_float(trained_stack, cifar_crops):
    stack = load_stack(trained_stack[0]).stack
    files = sorted((cifar_crops / "test").glob("*.jpg"))[:4]
    high = np.concatenate([read_png(path) for path in files])
    low = np.round(block_means(high)).astype(np.uint8)

    x = continuous_input(low)
    generated = superres_images(stack, x, samples=2, seed=0)

    assert generated.images.shape == (8, 3, 32, 32)
    means = generated.images.double().reshape(8, 3, 16, 2, 16, 2).mean(dim=(3, 5))
    assert (means - x.repeat_interleave(2, dim=0)).abs().max() < 1e-6


def test_superres_command_on_real_crops(trained_stack, cifar_crops, tmp_path):
    model, _ = trained_stack
    inputs = []
    for index, path in enumerate(sorted((cifar_crops / "test").glob("*.jpg"))[:3]):
        low = np.round(block_means(read_png(path))).astype(np.uint8)[0]
        inputs.append(tmp_path / f"low{index}.png")
        Image.fromarray(low.transpose(1, 2, 0)).save(inputs[-1])

    result = invoke("superres", *inputs, "--model", model, "-k", 2, "--out", tmp_path / "out", "--json", "--compare", tmp_path / "figure.png")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_resolution"] == "16x16"
    assert report["output_resolution"] == "32x32"

    for source, output in zip(inputs, report["outputs"]):
        assert len(output["files"]) == 2
        low = read_png(source).astype(np.float64)
        for file in output["files"]:
            high = read_png(file)
            assert high.shape == (1, 3, 32, 32)
            assert np.abs(block_means(high) - low).max() <= 1.0
    assert Image.open(tmp_path / "figure.png").size[0] > 100


def test_superres_from_high_with_figure(trained_stack, cifar_crops, tmp_path):
    files = sorted((cifar_crops / "test").glob("*.jpg"))[:2]
    result = invoke("superres", *files, "--model", trained_stack[0], "--from-high", "8x8", "--to", "32x32",
                    "--out", tmp_path / "out", "--compare", tmp_path / "figure.png", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_resolution"] == "8x8"
    assert (tmp_path / "figure.png").exists()


def test_superres_ground_truth_finer_than_stack_rejected(trained_stack, tmp_path):
    path = tmp_path / "large.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(path)
    result = invoke("superres", path, "--model", trained_stack[0], "--from-high", "8x8", "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "64x64", "8x8, 16x16, 32x32")
    assert not (tmp_path / "out").exists()


def test_superres_wrong_size_rejected(trained_stack, tmp_path):
    path = tmp_path / "odd.png"
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(path)
    result = invoke("superres", path, "--model", trained_stack[0], "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "12x12", "8x8, 16x16")
    assert not (tmp_path / "out").exists()


def test_superres_translucent_image_rejected(trained_stack, tmp_path):
    path = tmp_path / "alpha.png"
    pixels = np.zeros((16, 16, 4), dtype=np.uint8)
    pixels[..., 3] = 128
    Image.fromarray(pixels, mode="RGBA").save(path)
    result = invoke("superres", path, "--model", trained_stack[0], "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "RGBA", "--convert")


def test_extend_adds_level_keeps_old_files(cifar_crops, tmp_path):
    model = tmp_path / "stack"
    base = invoke("train", "--res", 2, "--data", cifar_crops, "--image-size", 16, "--model", model, "--steps", 2, *TINY_TRAINING)
    assert base.exit_code == 0, base.output
    before = {name: value for name, value in digest(model).items() if name.endswith(".safetensors") and "/" not in name}
    bpd_before = json.loads(invoke("bpd", "--model", model, "--data", cifar_crops, "--image-size", 16, "--json").stdout)
    default_size = json.loads(invoke("bpd", "--model", model, "--data", cifar_crops, "--json").stdout)
    assert default_size["bpd"] == bpd_before["bpd"]

    result = invoke("extend", "--model", model, "--data", cifar_crops, "--steps", 2, "--batch-size", 16,
                    "--validate-every", 2, "--validation-images", 16, "--warmup", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["levels"][0]["level"] == "32x32"

    after = digest(model)
    assert all(after[name] == value for name, value in before.items())
    manifest = json.loads((model / "stack.json").read_text())
    assert manifest["levels"][-1]["file"] == "level-32x32.safetensors"
    assert manifest["data"]["image_size"] == [32, 32]
    bpd_after = json.loads(invoke("bpd", "--model", model, "--data", cifar_crops, "--image-size", 16, "--json").stdout)
    assert bpd_after["bpd"] == bpd_before["bpd"]
    full = json.loads(invoke("bpd", "--model", model, "--data", cifar_crops, "--json").stdout)
    assert [level["resolution"] for level in full["levels"]] == ["8x8", "16x16", "32x32"]


def test_extend_wrong_resolution_rejected(trained_stack, cifar_crops, tmp_path):
    model = tmp_path / "stack"
    shutil.copytree(trained_stack[0], model)
    before = digest(model)
    result = invoke("extend", "--model", model, "--data", cifar_crops, "--steps", 1)
    assert_one_line_error(result, 2, "32x32", "64x64")
    assert digest(model) == before


def test_parse_temperatures():
    assert parse_temperatures("0.7") == 0.7
    assert parse_temperatures("1,0.5,0") == [1.0, 0.5, 0.0]
    with pytest.raises(InputError, match="invalid temperature '-1'"):
        parse_temperatures("1,-1")


def test_quantize_inverts_bin_centres():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    assert np.array_equal(quantize(continuous_input(pixels)), pixels)
    assert quantize(torch.tensor([[-0.2, 1.3]])).tolist() == [[0, 255]]


@pytest.mark.parametrize("factor", [2, 4])
def test_clip_keeps_block_means(factor):
    generator = torch.Generator().manual_seed(factor)
    means = torch.rand(3, 3, 4, 4, generator=generator, dtype=torch.float64)
    wild = torch.randn(3, 3, 4 * factor, 4 * factor, generator=generator, dtype=torch.float64) * 2
    wild = wild - wild.reshape(3, 3, 4, factor, 4, factor).mean(dim=(3, 5)).repeat_interleave(factor, 2).repeat_interleave(factor, 3)
    x = wild + means.repeat_interleave(factor, 2).repeat_interleave(factor, 3)

    clipped = clip_keeping_block_means(x, factor)

    assert clipped.min() >= 0
    assert clipped.max() < 1
    block = clipped.reshape(3, 3, 4, factor, 4, factor).mean(dim=(3, 5))
    assert (block - means).abs().max() < 1e-10
    in_range = x.clamp(0.1, 0.9)
    assert torch.equal(clip_keeping_block_means(in_range, factor), in_range)

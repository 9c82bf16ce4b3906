"""The train and bpd commands end to end, and their handling of bad input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_TRAINING, assert_one_line_error, digest, invoke

TINY = TINY_TRAINING


@pytest.fixture
def trained(trained_stack):
    return trained_stack


def test_train_writes_stack(trained):
    model, report = trained
    assert [row["level"] for row in report["levels"]] == ["08x08", "16x16", "32x32"]
    assert all(row["steps"] == 2 for row in report["levels"])
    assert sorted(p.name for p in model.glob("*.safetensors")) == [
        "level-08x08.safetensors", "level-16x16.safetensors", "level-32x32.safetensors"
    ]
    manifest = json.loads((model / "stack.json").read_text())
    assert manifest["map"] == "mrcnf"
    assert manifest["channels"] == 3


def test_bpd_json_on_real_images(trained, cifar_crops):
    model, _ = trained
    before = digest(model)
    first = invoke("bpd", "--model", model, "--data", cifar_crops, "--json")
    second = invoke("bpd", "--model", model, "--data", cifar_crops, "--json")

    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["images"] == 24
    assert [level["resolution"] for level in report["levels"]] == ["8x8", "16x16", "32x32"]
    shares = sum(level["bpd_share"] for level in report["levels"]) + report["map_bpd_share"]
    assert shares == pytest.approx(report["bpd"], abs=1e-9)
    assert 3 < report["bpd"] < 12
    assert json.loads(second.stdout)["bpd"] == report["bpd"]
    assert digest(model) == before


def test_bpd_image_files_one_row_each(trained, cifar_crops):
    model, _ = trained
    files = sorted((cifar_crops / "test").glob("*.jpg"))[:3]
    result = invoke("bpd", "--model", model, *files, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [row["image"] for row in rows] == [str(path) for path in files]
    assert all(row["bpd"] > 0 for row in rows)


def test_bpd_coarser_images_use_coarser_levels(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "small.png"
    Image.fromarray(np.full((16, 16, 3), 120, dtype=np.uint8)).save(path)
    result = invoke("bpd", "--model", model, path, "--json")
    assert result.exit_code == 0, result.output
    assert [level["resolution"] for level in json.loads(result.stdout)["levels"]] == ["8x8", "16x16"]


def test_bpd_wrong_size_rejected(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "odd.png"
    Image.fromarray(np.zeros((33, 33, 3), dtype=np.uint8)).save(path)
    result = invoke("bpd", "--model", model, path)
    assert_one_line_error(result, 2, "33x33", "8x8, 16x16, 32x32")


def test_train_resume_with_more_steps(trained, cifar_crops, tmp_path):
    model = tmp_path / "copy"
    shutil.copytree(trained[0], model)
    result = invoke("train", "--res", 3, "--data", cifar_crops, "--model", model, "--steps", 3, "--level", "8x8", "--json", *TINY)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["levels"] == [
        {"level": "08x08", "steps": 3, "skipped_steps": 0, "validation_bpd": pytest.approx(json.loads(result.stdout)["levels"][0]["validation_bpd"]),
         "seconds": pytest.approx(0, abs=60), "stopped_by": "steps"}
    ]


def test_bpd_missing_model(tmp_path):
    result = invoke("bpd", "--model", tmp_path / "none", "--data", "photos")
    assert_one_line_error(result, 2, "does not exist", "mrcnf train")


def test_bpd_truncated_level_file(trained, cifar_crops, tmp_path):
    model = tmp_path / "broken"
    shutil.copytree(trained[0], model)
    path = model / "level-16x16.safetensors"
    path.write_bytes(path.read_bytes()[:50])
    result = invoke("bpd", "--model", model, "--data", cifar_crops)
    assert_one_line_error(result, 2, "level-16x16.safetensors", "truncated")


def test_train_unknown_dataset(tmp_path):
    result = invoke("train", "--data", "imagenet65", "--model", tmp_path / "m", "--steps", 1)
    assert_one_line_error(result, 2, "imagenet65")
    assert not (tmp_path / "m").exists()


def test_train_missing_named_set(tmp_path):
    result = invoke("train", "--data", "cifar10", "--data-dir", tmp_path, "--model", tmp_path / "m", "--steps", 1)
    assert_one_line_error(result, 2, "data_batch_1")


@pytest.mark.parametrize("args,fragments", [
    (["--solver", "rk4"], ["fixed-grid solver 'rk4' needs a step size"]),
    (["--solver", "rk45"], ["unknown ODE solver 'rk45'"]),
    (["--atol", "0"], ["atol must be a positive number"]),
    (["--max-time", "soon"], ["invalid duration 'soon'"]),
    (["--max-time", "0"], ["invalid duration '0'", "above 0"]),
    (["--lr", "0"], ["--lr must be a finite number above 0, got 0.0"]),
    (["--epochs", "inf"], ["--epochs must be a finite number above 0, got inf"]),
    (["--hidden", "64,x"], ["invalid hidden widths '64,x'"]),
    (["--level", "12x12"], ["--level 12x12 is not a level of this stack", "8x8, 16x16, 32x32"]),
    (["--map", "wavelet"], ["unknown pyramid map 'wavelet'"]),
    (["--res", "7"], ["not divisible by 2^6 = 64"]),
    (["--device", "cuda:7"], ["cuda:7"]),
])
def test_train_bad_options(args, fragments, tmp_path):
    result = invoke("train", "--data", "photos", "--model", tmp_path / "m", "--steps", 1, *args)
    assert_one_line_error(result, 2, *fragments)
    assert not list((tmp_path / "m").glob("*.safetensors"))


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--steps", "-3"], ["--lr", "abc"]])
def test_train_bad_numbers_are_usage_errors(args, tmp_path):
    result = invoke("train", "--model", tmp_path / "m", *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_entry_point_exit_codes(tmp_path):
    version = subprocess.run([sys.executable, "-m", "mrcnf_cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0
    assert version.stdout.startswith("mrcnf ")

    missing = subprocess.run(
        [sys.executable, "-m", "mrcnf_cli", "bpd", "--model", str(tmp_path / "none"), "--data", "photos"],
        capture_output=True, text=True,
    )
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [f"error: model directory {tmp_path / 'none'} does not exist; train one with mrcnf train --model {tmp_path / 'none'}"]

"""The benchmark scripts' error contract: one error line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *arguments, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / name), *map(str, arguments)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name,arguments,expected", [
    ("training_step.py", ["--model", "missing"], "argument --model: missing does not exist"),
    ("training_step.py", ["--model", ".", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    ("training_step.py", ["--model", ".", "--adjoint", "--flops"], "--flops cannot count the adjoint method's backward pass"),
    ("throughput.py", ["--model", ".", "--steps", "x"], "argument --steps: invalid whole number 'x'"),
    ("equal_budget.py", ["--levels", "1,a"], "argument --levels: invalid list '1,a'"),
    ("equal_budget.py", ["--minutes", "-1"], "argument --minutes: must be a finite number above 0, got -1"),
    ("speedup.py", ["--model", ".", "--baseline", "no-such-commit"], "--baseline no-such-commit is not a commit of"),
    ("equal_budget.py", ["--levels", "1,1"], "argument --levels: depths repeat in 1,1"),
    ("equal_budget.py", ["--plot", "curve.txt"], "argument --plot: curve.txt is not a figure file name; end it with one of .png, .pdf"),
    ("equal_budget.py", ["--plot", "missing/curve.png"], "argument --plot: folder missing does not exist"),
    ("equal_budget.py", ["--plot", "."], "argument --plot: . is not a figure file name"),
    ("training_step.py", ["--model", ".", "--seed", str(2**64)], f"argument --seed: must be at most {2**64 - 1}"),
])
def test_bad_option_is_one_line(name, arguments, expected, tmp_path):
    result = run_script(name, *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {expected}")
    assert list(tmp_path.iterdir()) == []


def test_not_a_stack_is_one_line(tmp_path):
    result = run_script("training_step.py", "--model", tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "is not a stack directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_earlier_stack_is_rejected(tmp_path):
    (tmp_path / "out" / "levels-2").mkdir(parents=True)
    result = run_script("equal_budget.py", "--levels", "1,2", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'out' / 'levels-2'} already contains a stack from an earlier run; remove it or choose another --out"
    assert list((tmp_path / "out").iterdir()) == [tmp_path / "out" / "levels-2"]


def test_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("")
    result = run_script("equal_budget.py", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --out: {tmp_path / 'out'} is a file, not a folder; choose a folder"


@pytest.mark.parametrize("content,expected", [
    (np.zeros((0, 3, 32, 32), np.uint8), "contains no images; save at least one"),
    (None, "is not a .npy file of images; save a uint8 array (N, 3, 32, 32) with numpy.save"),
])
def test_bad_image_file_is_one_line(content, expected, trained_stack, tmp_path):
    images = tmp_path / "images.npy"
    if content is None:
        images.write_text("not an array")
    else:
        np.save(images, content)
    result = run_script("training_step.py", "--model", trained_stack[0], "--images", images, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {images} {expected}"


def test_module_from_another_tree_is_rejected(tmp_path):
    code = "import common, mrcnf_cli.errors; common.check_package_tree()"
    environment = dict(os.environ, MRCNF_PACKAGE_TREE=str(tmp_path), PYTHONPATH=str(BENCHMARKS))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: the package in {tmp_path} has no module mrcnf_cli")


def test_check_only_lists_trained_levels(trained_stack, tmp_path):
    result = run_script("training_step.py", "--model", trained_stack[0], "--check-only", "--batch-size", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"levels": ["08x08", "16x16", "32x32"], "level": "32x32", "batch_size": 3}

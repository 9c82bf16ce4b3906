"""The command line as scripts use it: completions, JSON documents, exit codes and bad input."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mrcnf_cli.completion import SHELLS, render

from helpers import assert_one_line_error, digest, invoke

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completions_up_to_date(shell):
    committed = ROOT / "completions" / SHELLS[shell]
    assert committed.read_text() == render(shell), "stale: run python -m mrcnf_cli.completion completions"


@pytest.mark.parametrize("words,expected", [
    ("mrcnf sh", {"shuffle-eval"}),
    ("mrcnf train --data ti", {"tinyimagenet"}),
    ("mrcnf train --solver dop", {"dopri5", "dopri8"}),
    ("mrcnf train --map ", {"haar", "mrcnf"}),
    ("mrcnf ood --compressor j", {"j2k", "jxl"}),
    ("mrcnf ood --method ", {"S", "bpd", "all"}),
    ("mrcnf bpd --tr", {"--trace"}),
])
def test_completion_offers_names(words, expected):
    environment = {**os.environ, "_MRCNF_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = subprocess.run([sys.executable, "-m", "mrcnf_cli"], env=environment, capture_output=True, text=True)
    assert set(result.stdout.split()) == expected


def documented_keys() -> dict[str, dict]:
    text = (ROOT / "docs" / "cli.md").read_text()
    blocks = re.findall(r"### `mrcnf ([a-z-]+) --json`\n\n```json\n(.*?)```", text, re.DOTALL)
    return {command: json.loads(body) for command, body in blocks}


def test_every_json_command_documented():
    assert set(documented_keys()) == {"train", "bpd", "sample", "superres", "ood", "shuffle-eval", "info"}


def test_json_outputs_hold_documented_keys(trained_stack, cifar_crops, tmp_path):
    model, train_report = trained_stack
    documented = documented_keys()
    low = tmp_path / "low.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(low)
    outputs = {
        "train": train_report,
        "bpd": invoke("bpd", "-m", model, "--data", cifar_crops, "--json", "-q"),
        "sample": invoke("sample", "-m", model, "-n", 2, "--out", tmp_path / "s.png", "--json", "-q"),
        "superres": invoke("superres", low, "-m", model, "--out", tmp_path / "sr", "--json", "-q"),
        "ood": invoke("ood", "-m", model, "--data", cifar_crops, "--ood", "noise", "--max-images", 4, "--json", "-q"),
        "shuffle-eval": invoke("shuffle-eval", "-m", model, "--data", cifar_crops, "--patch", 16, "--max-images", 4, "--json", "-q"),
        "info": invoke("info", "-m", model, "--json", "-q"),
    }
    for command, output in outputs.items():
        if not isinstance(output, dict):
            assert output.exit_code == 0, output.output
            assert output.stderr == "", f"{command} --quiet wrote to stderr: {output.stderr}"
            output = json.loads(output.stdout)
        assert set(output) == set(documented[command]), command
        for key in ("levels", "results", "patches", "outputs", "sets"):
            if key in documented[command] and output[key]:
                assert set(output[key][0]) == set(documented[command][key][0]), f"{command} {key}"


def test_image_paths_from_stdin(trained_stack, cifar_crops):
    files = sorted((cifar_crops / "test").glob("*.jpg"))[:2]
    result = runner_with_input("\n".join(str(path) for path in files) + "\n", "bpd", "-m", trained_stack[0], "-", "--json")
    assert result.exit_code == 0, result.output
    assert [row["image"] for row in json.loads(result.stdout)["rows"]] == [str(path) for path in files]


def runner_with_input(text, *args):
    from typer.testing import CliRunner

    from mrcnf_cli.app import app

    return CliRunner().invoke(app, [str(arg) for arg in args], input=text)


# Bad input for every subcommand: (name, arguments, exit code, fragments of the error line).
@pytest.fixture
def broken(trained_stack, tmp_path):
    """Damaged copies of the trained stack and bad image files, keyed by name."""
    model = trained_stack[0]
    cases = {}

    def copy(name):
        target = tmp_path / name
        shutil.copytree(model, target)
        return target

    truncated = copy("truncated")
    path = truncated / "level-16x16.safetensors"
    path.write_bytes(path.read_bytes()[:-64])
    cases["truncated"] = truncated

    nan = copy("nan")
    path = nan / "level-32x32.safetensors"
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    first = sorted(tensors)[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(path), metadata=metadata)
    cases["nan"] = nan

    dangling = copy("dangling")
    (dangling / "level-08x08.safetensors").unlink()
    cases["dangling"] = dangling

    (tmp_path / "text.png").write_text("not an image\n")
    Image.fromarray(np.zeros((33, 33, 3), np.uint8)).save(tmp_path / "odd.png")
    Image.fromarray(np.full((16, 16), 7, np.uint8), mode="L").save(tmp_path / "grey.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 100
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((16, 16), 3, np.uint8), mode="L").convert("P").save(tmp_path / "palette.png")
    Image.fromarray(np.full((16, 16), 1000, np.uint16)).save(tmp_path / "deep.png")
    (tmp_path / "a-file").write_text("x")
    cases["root"] = tmp_path
    return cases


BAD_INPUT = [
    ("missing model", ["bpd", "-m", "{root}/nowhere", "--data", "photos"], 2, ["nowhere does not exist"]),
    ("missing model", ["sample", "-m", "{root}/nowhere", "--out", "{root}/o.png"], 2, ["nowhere does not exist"]),
    ("missing model", ["superres", "{root}/grey.png", "-m", "{root}/nowhere", "--out", "{root}/o"], 2, ["nowhere does not exist"]),
    ("missing model", ["extend", "-m", "{root}/nowhere", "--data", "photos"], 2, ["nowhere does not exist"]),
    ("missing model", ["ood", "-m", "{root}/nowhere", "--ood", "noise"], 2, ["nowhere does not exist"]),
    ("missing model", ["shuffle-eval", "-m", "{root}/nowhere"], 2, ["nowhere does not exist"]),
    ("missing model", ["info", "-m", "{root}/nowhere"], 2, ["nowhere does not exist"]),
    ("truncated level", ["bpd", "-m", "{truncated}", "{model_image}"], 2, ["level-16x16.safetensors", "truncated"]),
    ("truncated level", ["sample", "-m", "{truncated}", "--out", "{root}/o.png"], 2, ["level-16x16.safetensors"]),
    ("NaN level", ["bpd", "-m", "{nan}", "{model_image}"], 2, ["level-32x32.safetensors", "NaN"]),
    ("NaN level", ["shuffle-eval", "-m", "{nan}", "--patch", "16"], 2, ["level-32x32.safetensors", "NaN"]),
    ("missing level file", ["bpd", "-m", "{dangling}", "{model_image}"], 2, ["level-08x08.safetensors not found"]),
    ("missing level file", ["ood", "-m", "{dangling}", "--ood", "noise"], 2, ["level-08x08.safetensors not found"]),
    ("unknown dataset", ["train", "--data", "mnist", "-m", "{root}/new"], 2, ["mnist"]),
    ("unknown dataset", ["bpd", "-m", "{model}", "--data", "mnist"], 2, ["mnist"]),
    ("unknown dataset", ["ood", "-m", "{model}", "--ood", "mnist"], 2, ["mnist"]),
    ("unknown dataset", ["shuffle-eval", "-m", "{model}", "--data", "mnist"], 2, ["mnist"]),
    ("text as image", ["bpd", "-m", "{model}", "{root}/text.png"], 2, ["text.png"]),
    ("text as image", ["superres", "{root}/text.png", "-m", "{model}", "--out", "{root}/o"], 2, ["text.png"]),
    ("33x33 image", ["bpd", "-m", "{model}", "{root}/odd.png"], 2, ["33x33", "8x8, 16x16, 32x32"]),
    ("33x33 image", ["superres", "{root}/odd.png", "-m", "{model}", "--out", "{root}/o"], 2, ["33x33"]),
    ("translucent RGBA", ["bpd", "-m", "{model}", "{root}/rgba.png"], 2, ["rgba.png", "RGBA", "--convert"]),
    ("16-bit", ["bpd", "-m", "{model}", "{root}/deep.png"], 2, ["deep.png", "--convert"]),
    ("unwritable output", ["sample", "-m", "{model}", "--out", "{root}/a-file/x.png"], 2, ["a-file"]),
    ("output is a folder", ["sample", "-m", "{model}", "--out", "{root}"], 2, ["folder"]),
    ("unwritable output", ["superres", "{root}/grey.png", "-m", "{model}", "--out", "{root}/a-file/o"], 2, ["a-file"]),
    ("negative temperature", ["sample", "-m", "{model}", "-t", "-1", "--out", "{root}/o.png"], 2, ["temperature '-1'"]),
    ("text temperature", ["superres", "{root}/grey.png", "-m", "{model}", "-t", "hot", "--out", "{root}/o"], 2, ["temperature 'hot'"]),
    ("zero tolerance", ["train", "-m", "{root}/new", "--atol", "0"], 2, ["atol", "0"]),
    ("negative step size", ["train", "-m", "{root}/new", "--solver", "euler", "--step-size", "-0.1"], 2, ["step size", "-0.1"]),
    ("zero eval step size", ["bpd", "-m", "{model}", "{model_image}", "--solver", "rk4", "--step-size", "0"], 2, ["step size", "0"]),
    ("fixed grid without step", ["train", "-m", "{root}/new", "--eval-solver", "rk4"], 2, ["'rk4' needs a step size"]),
    ("fixed grid without step", ["bpd", "-m", "{model}", "{model_image}", "--solver", "euler"], 2, ["'euler' needs a step size"]),
    ("bad patch", ["shuffle-eval", "-m", "{model}", "--patch", "0"], 2, ["patch sizes '0'"]),
    ("wrong extend data", ["extend", "-m", "{model}", "--data", "photos"], 2, ["32x32", "64x64"]),
    ("cuda without CUDA", ["bpd", "-m", "{model}", "{model_image}", "--device", "cuda"], 2, ["CUDA is not available"]),
]


@pytest.mark.parametrize("name,arguments,code,fragments", BAD_INPUT, ids=[f"{case[1][0]}: {case[0]}" for case in BAD_INPUT])
def test_bad_input(name, arguments, code, fragments, trained_stack, broken, cifar_crops):
    if "cuda" in arguments and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    values = {key: str(path) for key, path in broken.items()}
    values["model"] = str(trained_stack[0])
    values["model_image"] = str(sorted((cifar_crops / "test").glob("*.jpg"))[0])
    before_root = digest(broken["root"])
    before_model = digest(trained_stack[0])

    result = invoke(*[argument.format(**values) for argument in arguments])

    assert_one_line_error(result, code, *fragments)
    assert digest(trained_stack[0]) == before_model
    written = {path for path in digest(broken["root"]) if path not in before_root}
    assert written == set(), f"files written on bad input: {written}"


@pytest.mark.parametrize("command", [
    ["sample", "-n", "0"], ["sample", "-n", "x"], ["bpd", "--batch-size", "0"], ["train", "--steps", "0"],
    ["train", "--lr", "fast"], ["superres", "x.png", "--samples", "-2"], ["ood", "--max-images", "0"],
    ["bpd", "--seed", str(2**64)],
])
def test_bad_numbers_exit_two(command, tmp_path):
    result = invoke(*command, "-m", tmp_path / "m")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arguments,line", [
    (["train", "--foo"], "error: No such option: --foo; see 'mrcnf train --help'"),
    (["nosuch"], "error: No such command 'nosuch'; see 'mrcnf --help'"),
    (["bpd", "--mdl", "x"], "error: No such option: --mdl (Possible options: --model); see 'mrcnf bpd --help'"),
    (["sample", "-n"], "error: Option '-n' requires an argument; see 'mrcnf sample --help'"),
])
def test_parse_error_is_one_line(arguments, line):
    result = invoke(*arguments)
    assert_one_line_error(result, 2)
    assert result.stderr.strip() == line
    assert result.stdout == ""


def test_bad_number_error_names_option(tmp_path):
    result = invoke("sample", "-n", "x", "-m", tmp_path / "m")
    assert_one_line_error(result, 2, "'-n' / '--count'", "see 'mrcnf sample --help'")


def test_no_arguments_prints_help():
    result = invoke()
    assert result.exit_code == 2
    assert "Usage: mrcnf [OPTIONS] COMMAND" in result.stdout
    assert "error" not in result.stderr


def test_piped_table_is_not_cut(trained_stack, cifar_crops, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = invoke("info", "-m", trained_stack[0])
    assert result.exit_code == 0, result.output
    assert str(cifar_crops) in result.stdout
    assert "…" not in result.stdout


def test_lossless_modes_accepted(trained_stack, broken):
    for name in ("grey.png", "palette.png"):
        result = invoke("bpd", "-m", trained_stack[0], broken["root"] / name, "--json", "-q")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["levels"][-1]["resolution"] == "16x16"


def test_sixteen_bit_with_convert(trained_stack, broken, tmp_path):
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(tmp_path / "deep32.png")
    result = invoke("bpd", "-m", trained_stack[0], tmp_path / "deep32.png", "--convert", "--json", "-q")
    assert result.exit_code == 0, result.output


def test_verbose_shows_traceback(tmp_path):
    result = invoke("info", "-m", tmp_path / "nowhere", "--verbose")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_help_lists_exit_codes():
    result = invoke("--help")
    assert "Exit codes: 0 success; 2 bad usage or bad input; 1 runtime failure; 130" in result.stdout


def test_model_path_that_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for command in (["train", "--steps", "1"], ["info"]):
        result = invoke(*command, "--model", tmp_path / "notes.txt")
        assert_one_line_error(result, 2, "is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "x"


@pytest.mark.parametrize("command,fragment", [
    (["sample", "--out", "{root}/grid.jpg"], "--out {root}/grid.jpg must name a .png file"),
    (["shuffle-eval", "--patch", "16", "--permutations", "{root}/perm.txt"], "--permutations {root}/perm.txt must name a .npz file"),
    (["ood", "--ood", "noise", "--plot", "{root}/hist.pdf"], "--plot {root}/hist.pdf must name a .png file"),
])
def test_output_suffix_checked(command, fragment, trained_stack, tmp_path):
    result = invoke(*[part.format(root=tmp_path) for part in command], "-m", trained_stack[0])
    assert_one_line_error(result, 2, fragment.format(root=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_failed_level_option_writes_nothing(tmp_path):
    result = invoke("train", "--model", tmp_path / "m", "--level", "7x7", "--steps", "1")
    assert_one_line_error(result, 2, "--level 7x7")
    assert not (tmp_path / "m" / "stack.json").exists()


def test_empty_stdin_rejected(trained_stack):
    result = runner_with_input("", "bpd", "-m", trained_stack[0], "-")
    assert_one_line_error(result, 2, "no image paths on stdin")


def test_interrupt_during_startup_exits_130():
    """Ctrl-C while torch is still importing: one line and exit code 130, no traceback."""
    code = (
        "import signal, sys, threading, os\n"
        "sys.argv = ['mrcnf', 'info']\n"
        "from mrcnf_cli.entry import main\n"
        "threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130
    assert result.stderr.strip() == "interrupted"

"""The README's Python example runs and prints the BPD of a fresh 3-level stack."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_prints_bpd():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, str(README), "exec"), {})

    first, second = output.getvalue().splitlines()
    bpd = float(re.fullmatch(r"(\d+\.\d+) bits/dim", first).group(1))
    # Uniform 8-bit pixels under an identity flow with a logit and a unit Gaussian cost more than 8 bits.
    assert 8 < bpd < 12
    assert second.startswith("level shares: [")
    assert second.endswith("maps: 0.0")


def test_readme_names_both_commands():
    text = README.read_text()
    assert "    make demo\n" in text
    assert "    make test\n" in text


def test_readme_commands_run(real_data, tmp_path, monkeypatch):
    """Run the README's mrcnf commands on real CIFAR-10 images written as python batches, with tiny settings."""
    import json
    import pickle
    import shlex

    import numpy as np
    from PIL import Image

    from helpers import TINY_TRAINING, invoke

    # 1. A small CIFAR-10 python release built from real images, and two image files.
    batches = tmp_path / "data" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    files = sorted((real_data / "cifar10-jpg" / "train").rglob("*.jpg"))[:112]
    rows = np.stack([np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).reshape(-1) for path in files])
    for index in range(5):
        with open(batches / f"data_batch_{index + 1}", "wb") as handle:
            pickle.dump({b"data": rows[index * 16 : (index + 1) * 16], b"labels": [0] * 16}, handle)
    with open(batches / "test_batch", "wb") as handle:
        pickle.dump({b"data": rows[80:], b"labels": [0] * 32}, handle)
    for index, name in enumerate(("image1.png", "image2.png")):
        Image.fromarray(rows[index].reshape(3, 32, 32).transpose(1, 2, 0)).save(tmp_path / name)

    # 2. Each command of the README, run as written from tmp_path.
    monkeypatch.chdir(tmp_path)
    commands = re.findall(r"^    mrcnf (.*)$", README.read_text(), re.MULTILINE)
    assert len(commands) == 3
    for command in commands:
        arguments = shlex.split(command.replace("~/data", str(tmp_path / "data")))
        if arguments[0] == "train":
            arguments += [*TINY_TRAINING, "--steps", "2"]
        result = invoke(*arguments)
        assert result.exit_code == 0, f"mrcnf {command}: {result.output}"
        if "--json" in arguments:
            assert json.loads(result.stdout)["images"] == 32

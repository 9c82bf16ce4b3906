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

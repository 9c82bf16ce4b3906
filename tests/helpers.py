"""Small helpers the tests share: random (non-identity) networks and brute-force Jacobians."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn
from typer.testing import CliRunner

from mrcnf_cli.app import app


def randomize(module: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Give every parameter of a module normal random values, so no block is the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * std)
    return module


def brute_force_jacobian(function, x: torch.Tensor) -> torch.Tensor:
    """Return the (D, D) Jacobian of a map of one sample x (1, ...) to an output of the same size."""
    flat_function = lambda flat: function(flat.reshape(x.shape)).reshape(-1)  # noqa: E731
    return torch.autograd.functional.jacobian(flat_function, x.reshape(-1), vectorize=True)


runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


def assert_one_line_error(result, code, *fragments):
    """Check the exit code and that stderr contains log records and exactly one error line."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


# A tiny, fast architecture and schedule for command-line tests.
TINY_TRAINING = [
    "--hidden", "8", "--solver", "rk4", "--step-size", "0.5", "--eval-solver", "rk4", "--eval-step-size", "0.5",
    "--batch-size", "16", "--validate-every", "2", "--validation-images", "16", "--warmup", "1",
]

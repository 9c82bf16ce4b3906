"""The ODE solvers mrcnf accepts, by torchdiffeq name, and their validated settings."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import torch

from mrcnf_cli.errors import InputError, UnknownNameError

# torchdiffeq solver name -> whether it adapts its step size to an error tolerance.
SOLVERS: dict[str, bool] = {
    "dopri5": True,
    "dopri8": True,
    "bosh3": True,
    "fehlberg2": True,
    "adaptive_heun": True,
    "euler": False,
    "midpoint": False,
    "heun2": False,
    "heun3": False,
    "rk4": False,
    "explicit_adams": False,
    "implicit_adams": False,
}


@dataclass(frozen=True)
class SolverConfig:
    """Settings of one ODE solve.

    Attributes:
        method: torchdiffeq solver name, one of :data:`SOLVERS`.
        atol: absolute error tolerance of an adaptive solver.
        rtol: relative error tolerance of an adaptive solver.
        step_size: step of a fixed-grid solver, in units of ODE time; required by fixed-grid
            solvers, ignored (with a warning) by adaptive ones.
        max_steps: steps an adaptive solver may take before the solve fails, which stops a solve
            of very stiff dynamics from running for hours.
    """

    method: str = "dopri5"
    atol: float = 1e-5
    rtol: float = 1e-5
    step_size: float | None = None
    max_steps: int = 1000

    def __post_init__(self):
        if self.method not in SOLVERS:
            raise UnknownNameError("ODE solver", self.method, SOLVERS)

        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"solver {name} must be a positive number, got {value!r}")

        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise InputError(f"solver step size must be a positive number, got {self.step_size!r}")

        if not (isinstance(self.max_steps, int) and self.max_steps > 0):
            raise InputError(f"solver max steps must be a positive integer, got {self.max_steps!r}")

        if not self.adaptive and self.step_size is None:
            raise InputError(
                f"fixed-grid solver {self.method!r} needs a step size; pass one "
                "(for example 0.25) or choose an adaptive solver such as dopri5"
            )

        if self.adaptive and self.step_size is not None:
            warnings.warn(
                f"adaptive solver {self.method!r} ignores the step size {self.step_size}; "
                "it chooses its own steps from atol and rtol",
                stacklevel=3,
            )

    @property
    def adaptive(self) -> bool:
        return SOLVERS[self.method]

    def to_dict(self) -> dict:
        return asdict(self)

    def odeint_kwargs(self, state_count: int) -> dict:
        """Return keyword arguments for ``torchdiffeq.odeint``.

        An adaptive solver's error norm covers only the first two states, ``(x, logdet)``;
        states appended after them (the training regularisers) do not shrink its steps.
        """
        if not self.adaptive:
            return {"method": self.method, "options": {"step_size": self.step_size}}

        options = {"max_num_steps": self.max_steps}
        if state_count > 2:
            options["norm"] = _norm_of_first_two
        return {"method": self.method, "atol": self.atol, "rtol": self.rtol, "options": options}


def _norm_of_first_two(states: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.maximum(_rms(states[0]), _rms(states[1]))


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.abs().pow(2).mean().sqrt()

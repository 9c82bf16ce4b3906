"""One continuous normalizing flow (CNF) block: a neural ODE with its log-density change.

The block integrates ``dx/dt = f(t, x, context)`` from ``t0 = 0`` to ``t1 = T`` and, alongside,
``d(logdet)/dt = tr(df/dx)``, so that ``log p(x) = log p(z) + logdet`` with ``z = x(T)``
(Chen et al., 2018; Grathwohl et al., "FFJORD", 2019). In training it also integrates the RNODE
regularisers (Finlay et al., 2020): the kinetic energy ``||f||^2`` and the Jacobian Frobenius
norm ``||e^T df/dx||^2``, both per dimension of x.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from mrcnf_cli.dynamics import DynamicsNet
from mrcnf_cli.errors import InputError, SolverError
from mrcnf_cli.solvers import SolverConfig

logger = logging.getLogger(__name__)

TRACE_ESTIMATORS = ("hutchinson", "exact")
PROBES = ("gaussian", "rademacher")


@dataclass(frozen=True)
class CNFConfig:
    """Settings of a CNF block.

    Attributes:
        hidden: widths of the dynamics network's hidden layers.
        time_horizon: end time T of the integration.
        trace: divergence estimator, "hutchinson" (one probe per solve) or "exact".
        probe: distribution of the Hutchinson probe, "gaussian" or "rademacher".
        train_solver: solver used in training mode.
        eval_solver: solver used in evaluation mode and for sampling.
        adjoint: compute gradients with torchdiffeq's adjoint method, whose memory does not grow
            with the number of solver steps, instead of backpropagating through the solver.
    """

    hidden: tuple[int, ...] = (64, 64, 64)
    time_horizon: float = 1.0
    trace: str = "hutchinson"
    probe: str = "gaussian"
    train_solver: SolverConfig = field(default_factory=lambda: SolverConfig("bosh3", atol=1e-3, rtol=1e-3))
    eval_solver: SolverConfig = field(default_factory=lambda: SolverConfig("dopri5", atol=1e-5, rtol=1e-5))
    adjoint: bool = False

    def __post_init__(self):
        if self.trace not in TRACE_ESTIMATORS:
            raise InputError(f"unknown trace estimator {self.trace!r}; choose one of: {', '.join(TRACE_ESTIMATORS)}")
        if self.probe not in PROBES:
            raise InputError(f"unknown Hutchinson probe {self.probe!r}; choose one of: {', '.join(PROBES)}")
        if not self.time_horizon > 0:
            raise InputError(f"time horizon must be positive, got {self.time_horizon!r}")
        if not self.hidden or any(int(width) < 1 for width in self.hidden):
            raise InputError(f"hidden widths must be positive integers, got {self.hidden!r}")

    def to_dict(self) -> dict:
        return {
            "hidden": list(self.hidden),
            "time_horizon": self.time_horizon,
            "trace": self.trace,
            "probe": self.probe,
            "train_solver": self.train_solver.to_dict(),
            "eval_solver": self.eval_solver.to_dict(),
            "adjoint": self.adjoint,
        }

    @classmethod
    def from_dict(cls, values: dict) -> CNFConfig:
        return cls(
            hidden=tuple(values["hidden"]),
            time_horizon=values["time_horizon"],
            trace=values["trace"],
            probe=values["probe"],
            train_solver=SolverConfig(**values["train_solver"]),
            eval_solver=SolverConfig(**values["eval_solver"]),
            adjoint=values.get("adjoint", False),
        )


def draw_probe(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw a Hutchinson probe shaped like x: standard normal, or +-1 with equal odds."""
    if kind == "gaussian":
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
    return (2 * signs - 1).to(x.dtype)


def hutchinson_terms(vjp: torch.Tensor, probe: torch.Tensor):
    """Estimate ``tr(J)`` per sample as ``e^T J e`` from the product ``vjp = e^T J`` with one probe e.

    Returns:
        ``(divergence, frobenius)``: the estimate (B,) and ``||e^T J||^2`` (B,), an unbiased
        estimate of the squared Frobenius norm of J for a Gaussian or Rademacher probe.
    """
    divergence = (vjp * probe).flatten(1).sum(1)
    frobenius = vjp.pow(2).flatten(1).sum(1)
    return divergence, frobenius


def exact_divergence(dx: torch.Tensor, x: torch.Tensor, create_graph: bool):
    """Compute ``tr(d dx / dx)`` and ``||d dx / dx||_F^2`` exactly, one Jacobian row at a time.

    NOTE: costs one vector-Jacobian product per dimension of x, so it suits small images only.
    Samples of a batch never interact in the dynamics network, so each row's gradient of the
    batch sum is the per-sample row.

    Returns:
        ``(divergence, frobenius)``, each (B,).
    """
    dx_flat = dx.flatten(1)
    divergence = torch.zeros(dx.shape[0], dtype=dx.dtype, device=dx.device)
    frobenius = torch.zeros_like(divergence)
    for index in range(dx_flat.shape[1]):
        row = torch.autograd.grad(dx_flat[:, index].sum(), x, create_graph=create_graph, retain_graph=True)[0]
        row = row.flatten(1)
        divergence = divergence + row[:, index]
        frobenius = frobenius + row.pow(2).sum(1)
    return divergence, frobenius


class _AugmentedDynamics(nn.Module):
    """The ODE right-hand side for ``(x, logdet[, kinetic, jacobian])``, counting evaluations."""

    def __init__(self, net: DynamicsNet):
        super().__init__()
        self.net = net
        self.nfe = 0
        self.context: torch.Tensor | None = None
        self.probe: torch.Tensor | None = None
        self.trace = "hutchinson"
        self.create_graph = False

    def forward(self, t: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        self.nfe += 1
        x = states[0]

        if self.trace == "exact":
            with torch.enable_grad():
                if not x.requires_grad:
                    x = x.detach().requires_grad_(True)
                dx = self.net(t, x, self.context)
                divergence, frobenius = exact_divergence(dx, x, self.create_graph)
        else:
            dx, vjp = self.net.forward_and_vjp(t, x, self.context, self.probe)
            divergence, frobenius = hutchinson_terms(vjp, self.probe)

        if len(states) == 2:
            return dx, divergence

        dimensions = x[0].numel()
        kinetic = dx.pow(2).flatten(1).sum(1) / dimensions
        return dx, divergence, kinetic, frobenius / dimensions


class _VelocityField(nn.Module):
    """The ODE right-hand side for x alone, used to sample; counts evaluations."""

    def __init__(self, net: DynamicsNet):
        super().__init__()
        self.net = net
        self.nfe = 0
        self.context: torch.Tensor | None = None

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.net(t, x, self.context)


class CNFBlock(nn.Module):
    """A CNF block over images of ``channels`` channels, optionally conditioned on a context.

    After each call, ``nfe`` is the number of dynamics evaluations of that solve, and in
    training mode ``regularization`` contains the integrated kinetic energy and Jacobian norm,
    (B, 2), per dimension of x.
    """

    def __init__(self, channels: int, *, context_channels: int = 0, config: CNFConfig | None = None):
        super().__init__()
        self.config = config or CNFConfig()
        self.net = DynamicsNet(channels, context_channels=context_channels, hidden=tuple(self.config.hidden))
        self.nfe = 0
        self.regularization: torch.Tensor | None = None

    @property
    def solver(self) -> SolverConfig:
        return self.config.train_solver if self.training else self.config.eval_solver

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        probe: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data to noise.

        Args:
            x: data, (B, C, H, W).
            context: conditioning image, (B, C_context, H, W), or None.
            probe: Hutchinson probe shaped like x; drawn once for the whole solve when None.
            generator: random generator for that probe.

        Returns:
            ``(z, logdet)``: z = x(T), (B, C, H, W), and ``log|det dz/dx|`` per sample, (B,) in nats.
        """
        dynamics = _AugmentedDynamics(self.net)
        dynamics.context = context
        dynamics.trace = self.config.trace
        dynamics.create_graph = torch.is_grad_enabled()
        if self.config.trace == "hutchinson":
            dynamics.probe = probe if probe is not None else draw_probe(x, self.config.probe, generator)

        zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        states = (x, zeros) if not self.training else (x, zeros, zeros, zeros)
        times = torch.tensor([0.0, self.config.time_horizon], dtype=x.dtype, device=x.device)

        kwargs = self.solver.odeint_kwargs(len(states))
        with _solver_limit(self.solver):
            if self.config.adjoint and torch.is_grad_enabled():
                # The parameters are excluded from the backward error norm ("seminorm"), which
                # saves steps without changing the gradients' accuracy in x and logdet.
                adjoint_options = {"norm": "seminorm"} if self.solver.adaptive else None
                solution = odeint_adjoint(
                    dynamics, states, times, adjoint_params=tuple(self.net.parameters()), adjoint_options=adjoint_options, **kwargs
                )
            else:
                solution = odeint(dynamics, states, times, **kwargs)

        self.nfe = dynamics.nfe
        self.regularization = torch.stack([solution[2][-1], solution[3][-1]], dim=1) if self.training else None
        return solution[0][-1], solution[1][-1]

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Map noise to data by integrating from T back to 0.

        Args:
            z: noise, (B, C, H, W).
            context: conditioning image, (B, C_context, H, W), or None.

        Returns:
            x = z(0), (B, C, H, W).
        """
        field = _VelocityField(self.net)
        field.context = context
        times = torch.tensor([self.config.time_horizon, 0.0], dtype=z.dtype, device=z.device)

        with _solver_limit(self.config.eval_solver):
            solution = odeint(field, z, times, **self.config.eval_solver.odeint_kwargs(1))

        self.nfe = field.nfe
        return solution[-1]


@contextlib.contextmanager
def _solver_limit(solver: SolverConfig) -> Iterator[None]:
    """Turn torchdiffeq's failed step-limit assertion into a SolverError that names the fix."""
    try:
        yield
    except AssertionError as error:
        if "max_num_steps" not in str(error):
            raise
        raise SolverError(
            f"the {solver.method} solver needed more than {solver.max_steps} steps at tolerance "
            f"{solver.rtol:g}; the dynamics are very stiff: lower the learning rate, raise the regulariser weights, "
            "or loosen the tolerance"
        ) from None

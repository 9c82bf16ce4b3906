"""Small helpers the tests share: random (non-identity) networks and brute-force Jacobians."""

from __future__ import annotations

import torch
from torch import nn


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
    return torch.autograd.functional.jacobian(flat_function, x.reshape(-1))

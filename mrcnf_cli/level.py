"""One level of a multi-resolution flow: preprocessing, a chain of CNF blocks, a Gaussian base.

The coarsest level models the coarsest image x_S unconditionally; every finer level models the
details y_s of x_s given the coarser image x_{s+1}. Both use the same class: a level is
conditional when it has context channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from mrcnf_cli.cnf import CNFBlock, CNFConfig
from mrcnf_cli.errors import ImageSizeError, InputError


@dataclass(frozen=True)
class LevelConfig:
    """Everything needed to rebuild a level; stored as JSON inside its level file.

    Attributes:
        size: (H, W) of the image this level completes: the coarsest image itself, or x_s for a
            detail level, whose variables are (3C, H/2, W/2).
        channels: channels C of the images.
        conditional: whether the level models details given the coarser image.
        num_blocks: CNF blocks chained in this level.
        cnf: settings shared by its blocks.
        logit: apply the logit preprocessing before the CNF.
        alpha: logit margin; values are squeezed into ``[alpha, 1 - alpha]`` first.
        value_range: (low, high) bounds of the modelled values, used to scale them into
            ``[0, 1]`` before the logit: (0, 1) for images, (-2/k, 2/k) for details.
        base_std: standard deviation of the Gaussian base distribution.
    """

    size: tuple[int, int]
    channels: int = 3
    conditional: bool = False
    num_blocks: int = 1
    cnf: CNFConfig = field(default_factory=CNFConfig)
    logit: bool = True
    alpha: float = 0.05
    value_range: tuple[float, float] = (0.0, 1.0)
    base_std: float = 1.0

    def __post_init__(self):
        height, width = self.size
        if self.conditional and (height % 2 or width % 2):
            raise ImageSizeError(f"a detail level needs an even size, got {height}x{width}")
        if self.num_blocks < 1:
            raise InputError(f"a level needs at least one CNF block, got {self.num_blocks}")
        if not 0 <= self.alpha < 0.5:
            raise InputError(f"logit alpha must be in [0, 0.5), got {self.alpha}")
        if self.logit and self.alpha == 0:
            raise InputError("logit alpha 0 maps the pixel values 0 and 1 to infinity; pass a positive alpha")
        if not self.base_std > 0:
            raise InputError(f"base standard deviation must be positive, got {self.base_std}")

    @property
    def name(self) -> str:
        return f"{self.size[0]:02d}x{self.size[1]:02d}"

    @property
    def variable_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of the variables this level models."""
        height, width = self.size
        if self.conditional:
            return (3 * self.channels, height // 2, width // 2)
        return (self.channels, height, width)

    @property
    def context_shape(self) -> tuple[int, int, int] | None:
        height, width = self.size
        return (self.channels, height // 2, width // 2) if self.conditional else None

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "channels": self.channels,
            "conditional": self.conditional,
            "num_blocks": self.num_blocks,
            "cnf": self.cnf.to_dict(),
            "logit": self.logit,
            "alpha": self.alpha,
            "value_range": list(self.value_range),
            "base_std": self.base_std,
        }

    @classmethod
    def from_dict(cls, values: dict) -> LevelConfig:
        return cls(
            size=tuple(values["size"]),
            channels=values["channels"],
            conditional=values["conditional"],
            num_blocks=values["num_blocks"],
            cnf=CNFConfig.from_dict(values["cnf"]),
            logit=values["logit"],
            alpha=values["alpha"],
            value_range=tuple(values["value_range"]),
            base_std=values["base_std"],
        )


class LogitTransform(nn.Module):
    """Map values in ``[low, high]`` to the real line: ``u = logit(alpha + (1 - 2 alpha) (v - low) / (high - low))``."""

    def __init__(self, alpha: float, value_range: tuple[float, float]):
        super().__init__()
        self.alpha = alpha
        self.low, self.high = value_range

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u, logdet)``, logdet = ``log|du/dv|`` summed per sample, (B,) in nats."""
        scale = (1 - 2 * self.alpha) / (self.high - self.low)
        s = self.alpha + scale * (v - self.low)
        u = torch.log(s) - torch.log1p(-s)
        logdet = (math.log(scale) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
        return u, logdet

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(u)
        return self.low + (s - self.alpha) * (self.high - self.low) / (1 - 2 * self.alpha)


class Level(nn.Module):
    """One level: ``v -> [logit] -> CNF blocks -> z ~ N(0, base_std^2 I)``."""

    def __init__(self, config: LevelConfig):
        super().__init__()
        self.config = config
        channels = config.variable_shape[0]
        context_channels = config.channels if config.conditional else 0
        self.blocks = nn.ModuleList(
            CNFBlock(channels, context_channels=context_channels, config=config.cnf) for _ in range(config.num_blocks)
        )
        self.logit = LogitTransform(config.alpha, config.value_range) if config.logit else None

    @property
    def nfe(self) -> int:
        """Dynamics evaluations of the last call, summed over the blocks."""
        return sum(block.nfe for block in self.blocks)

    @property
    def regularization(self) -> torch.Tensor | None:
        """Kinetic energy and Jacobian norm of the last training call summed over blocks, (B, 2)."""
        terms = [block.regularization for block in self.blocks]
        return None if any(term is None for term in terms) else sum(terms)

    def forward(
        self, v: torch.Tensor, context: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map the level's variables to base noise.

        Args:
            v: the coarsest image in ``[0, 1]`` or details, (B,) + ``variable_shape``.
            context: the coarser image x_{s+1} in ``[0, 1]``, (B,) + ``context_shape``, for a
                detail level; None for the coarsest.
            generator: random generator for the Hutchinson probes.

        Returns:
            ``(z, logdet)``: base noise (B,) + ``variable_shape`` and ``log|det dz/dv|`` per
            sample, (B,) in nats, including the logit's term once.
        """
        context = self._prepare_context(v, context)
        logdet = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)

        z = v
        if self.logit is not None:
            z, logit_logdet = self.logit(z)
            logdet = logdet + logit_logdet

        for block in self.blocks:
            z, block_logdet = block(z, context, generator=generator)
            logdet = logdet + block_logdet
        return z, logdet

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Map base noise back to the level's variables, (B,) + ``variable_shape``."""
        context = self._prepare_context(z, context)

        v = z
        for block in reversed(self.blocks):
            v = block.inverse(v, context)
        if self.logit is not None:
            v = self.logit.inverse(v)
        return v

    def log_prob(
        self, v: torch.Tensor, context: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Return ``log p(v | context)`` per sample, (B,) in nats."""
        z, logdet = self(v, context, generator=generator)
        return self.base_log_prob(z) + logdet

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Return the log-density of z under ``N(0, base_std^2 I)``, (B,) in nats."""
        std = self.config.base_std
        per_dimension = -0.5 * (z / std).pow(2) - 0.5 * math.log(2 * math.pi) - math.log(std)
        return per_dimension.flatten(1).sum(1)

    def sample_base(
        self,
        batch_size: int,
        *,
        temperature: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw base noise ``temperature * base_std * N(0, I)``, (B,) + ``variable_shape``."""
        parameter = next(self.parameters())
        noise = torch.randn(
            (batch_size, *self.config.variable_shape),
            generator=generator,
            device=device or parameter.device,
            dtype=dtype or parameter.dtype,
        )
        return noise * (temperature * self.config.base_std)

    def _prepare_context(self, v: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor | None:
        expected = self.config.context_shape
        if expected is None:
            if context is not None:
                raise InputError(f"level {self.config.name} is unconditional but was given a context")
            return None
        if context is None or tuple(context.shape[1:]) != expected or context.shape[0] != v.shape[0]:
            got = None if context is None else tuple(context.shape)
            raise InputError(f"level {self.config.name} needs a context of shape (B, {expected}), got {got}")
        # The network gets the coarser image centred on zero, which does not enter log p.
        return 2 * context - 1

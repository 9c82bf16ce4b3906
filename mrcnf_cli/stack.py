"""The multi-resolution flow: a stack of levels over an image pyramid.

For an 8-bit image the stack dequantizes once at the finest resolution, ``x = (k + u) / 256``
with ``u ~ U[0, 1)``, splits x into a pyramid with one pyramid map, and sums

    log p(x) = log p(x_S) + sum_s log p(y_s | x_{s+1}) + sum_s log|det split_s|

in nats. Bits per dimension of the 8-bit image: ``bpd = -log p(x) / (D ln 2) + 8``, with
D = C * H * W of the finest image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.errors import ImageSizeError, InputError
from mrcnf_cli.level import Level, LevelConfig
from mrcnf_cli.multires import PyramidMap, build_pyramid, get_pyramid_map

logger = logging.getLogger(__name__)

BITS_PER_PIXEL_VALUE = 8


@dataclass(frozen=True)
class StackConfig:
    """Settings shared by every level of a stack; stored in ``stack.json``.

    Attributes:
        map: pyramid map name, "mrcnf" or "haar".
        channels: channels C of the images.
    """

    map: str = "mrcnf"
    channels: int = 3

    def __post_init__(self):
        get_pyramid_map(self.map)
        if self.channels not in (1, 3):
            raise InputError(f"images must have 1 or 3 channels, got {self.channels}")


@dataclass
class StackLogProb:
    """Log-likelihood of a batch of 8-bit images and its breakdown, all per image.

    Attributes:
        logp: ``log p(x)`` of the dequantized images, (B,) in nats.
        bpd: bits per dimension of the 8-bit images, (B,).
        level_bpd: each level's share in bits per full-image dimension, (B, L), coarse to fine.
            A level's share is ``-log p_level / (D ln 2)`` plus ``8 * D_level / D`` for the 1/256
            scaling of its ``D_level`` variables.
        map_bpd: the pyramid maps' share, ``-sum log|det| / (D ln 2)``, (B,).
        nfe: dynamics evaluations of each level, coarse to fine.
        sizes: (H, W) of each level used, coarse to fine.

    ``level_bpd.sum(1) + map_bpd`` equals ``bpd`` to float64 rounding, because bpd is that sum.
    """

    logp: torch.Tensor
    bpd: torch.Tensor
    level_bpd: torch.Tensor
    map_bpd: torch.Tensor
    nfe: list[int]
    sizes: list[tuple[int, int]]


def dequantize(images: torch.Tensor, noise: torch.Tensor | None = None, *, generator=None, dtype=torch.float32):
    """Turn 8-bit images into continuous ones: ``x = (k + u) / 256``, ``u ~ U[0, 1)``.

    Args:
        images: integer pixel values 0..255, (B, C, H, W).
        noise: u, shaped like images with values in ``[0, 1)``; drawn when None.
        generator: random generator for u.
        dtype: floating dtype of the result.

    Returns:
        x in ``[0, 1)``, (B, C, H, W).
    """
    if noise is None:
        noise = torch.rand(images.shape, generator=generator, dtype=dtype, device=images.device)
    return (images.to(dtype) + noise.to(dtype)) / 256


class MultiResFlow(nn.Module):
    """A stack of levels, coarse to fine, each one resolution twice the previous.

    Args:
        config: shared settings (pyramid map, channels).
        levels: the levels, coarse to fine; the first unconditional, the others conditional.
    """

    def __init__(self, config: StackConfig, levels: Sequence[Level]):
        super().__init__()
        self.config = config
        self.pyramid_map = get_pyramid_map(config.map)
        self.levels = nn.ModuleList(levels)
        self._check_chain()

    @classmethod
    def build(
        cls,
        size: int | tuple[int, int],
        num_levels: int,
        *,
        channels: int = 3,
        map: str = "mrcnf",
        cnf: CNFConfig | None = None,
        num_blocks: int = 1,
        logit: bool = True,
        alpha: float = 0.05,
        multires_noise: bool = False,
    ) -> MultiResFlow:
        """Build a fresh stack whose finest resolution is ``size``.

        Args:
            size: finest (H, W), or one int for a square image; divisible by
                ``2 ** (num_levels - 1)``.
            num_levels: number of resolutions S.
            channels: image channels.
            map: pyramid map name.
            cnf: CNF block settings shared by every level.
            num_blocks: CNF blocks per level.
            logit: apply the logit preprocessing at every level.
            alpha: logit margin.
            multires_noise: use the multi-resolution base variances (see :func:`multires_base_std`)
                instead of unit variance.
        """
        height, width = (size, size) if isinstance(size, int) else size
        if num_levels < 1:
            raise InputError(f"a stack needs at least one level, got {num_levels}")
        factor = 2 ** (num_levels - 1)
        if height % factor or width % factor:
            raise ImageSizeError(
                f"image size {height}x{width} is not divisible by 2^{num_levels - 1} = {factor}, "
                f"which a {num_levels}-level stack requires; choose another size or fewer levels"
            )

        config = StackConfig(map=map, channels=channels)
        pyramid_map = get_pyramid_map(map)
        levels = []
        for index in range(num_levels):
            scale = 2 ** (num_levels - 1 - index)
            level_size = (height // scale, width // scale)
            conditional = index > 0
            detail_bound = 2 / pyramid_map.k
            level_config = LevelConfig(
                size=level_size,
                channels=channels,
                conditional=conditional,
                num_blocks=num_blocks,
                cnf=cnf or CNFConfig(),
                logit=logit,
                alpha=alpha,
                value_range=(-detail_bound, detail_bound) if conditional else (0.0, 1.0),
                base_std=multires_base_std(pyramid_map, scale, conditional) if multires_noise else 1.0,
            )
            levels.append(Level(level_config))
        return cls(config, levels)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every level, coarse to fine."""
        return [tuple(level.config.size) for level in self.levels]

    def level_count_for(self, size: tuple[int, int]) -> int:
        """Return how many levels, from the coarsest, model images of this (H, W).

        Raises:
            ImageSizeError: no level has this resolution.
        """
        size = tuple(size)
        if size not in self.sizes:
            accepted = ", ".join(f"{h}x{w}" for h, w in self.sizes)
            raise ImageSizeError(
                f"image size {size[0]}x{size[1]} matches no level of this stack; it accepts {accepted}"
            )
        return self.sizes.index(size) + 1

    def level_inputs(self, x: torch.Tensor, level_index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the variables and context that level ``level_index`` models for continuous images x.

        Args:
            x: continuous images at the resolution of ``level_index`` or finer, (B, C, H, W).
            level_index: 0 for the coarsest level.

        Returns:
            ``(v, context)``: the coarsest image and None for level 0, else the details of the
            level's resolution and the coarser image they are conditioned on.
        """
        target = self.sizes[level_index]
        while tuple(x.shape[-2:]) != target:
            if x.shape[-1] < target[1]:
                raise ImageSizeError(
                    f"images of size {x.shape[-2]}x{x.shape[-1]} are coarser than level {target[0]}x{target[1]}"
                )
            x, _, _ = self.pyramid_map.split(x)

        if level_index == 0:
            return x, None
        x_coarse, y, _ = self.pyramid_map.split(x)
        return y, x_coarse

    def log_prob(
        self,
        images: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> StackLogProb:
        """Compute the log-likelihood and bits per dimension of 8-bit images.

        Args:
            images: pixel values 0..255 (uint8 or integer-valued), (B, C, H, W), at one of the
                stack's resolutions; the levels up to that resolution are used.
            noise: dequantization noise u in ``[0, 1)`` shaped like images; drawn when None.
            generator: random generator for u and the Hutchinson probes.

        Returns:
            A :class:`StackLogProb`.
        """
        self._check_images(images)
        dtype = self._dtype()
        num_levels = self.level_count_for(images.shape[-2:])

        # 1. Dequantize once at the finest resolution and build the pyramid from that image.
        x = dequantize(images, noise, generator=generator, dtype=dtype)
        pyramid = build_pyramid(x, self.pyramid_map, num_levels - 1)

        # 2. Each level's log-likelihood of its own variables.
        level_logps = []
        for index in range(num_levels):
            level = self.levels[index]
            if index == 0:
                level_logps.append(level.log_prob(pyramid.images[0], generator=generator))
            else:
                level_logps.append(
                    level.log_prob(pyramid.details[index - 1], pyramid.images[index - 1], generator=generator)
                )

        # 3. Shares in bits per full-image dimension, in float64 so that they add up.
        dimensions = images[0].numel()
        nats_to_bits = 1 / (dimensions * math.log(2))
        level_bpd = self._level_bpd(level_logps, dimensions)
        map_bpd = -pyramid.logdet.double() * nats_to_bits
        bpd = level_bpd.sum(1) + map_bpd

        logp = sum(level_logps) + pyramid.logdet
        nfe = [self.levels[index].nfe for index in range(num_levels)]
        return StackLogProb(logp, bpd, level_bpd, map_bpd, nfe, self.sizes[:num_levels])

    def _level_bpd(self, level_logps: list[torch.Tensor], dimensions: int) -> torch.Tensor:
        shares = []
        for level, logp in zip(self.levels, level_logps):
            level_dimensions = math.prod(level.config.variable_shape)
            share = -logp.double() / (dimensions * math.log(2)) + BITS_PER_PIXEL_VALUE * level_dimensions / dimensions
            shares.append(share)
        return torch.stack(shares, dim=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Map continuous images to the base noise of every level.

        Args:
            x: continuous images in ``[0, 1]``, (B, C, H, W), at one of the stack's resolutions.

        Returns:
            z of every level used, coarse to fine, each (B,) + that level's variable shape.
        """
        num_levels = self.level_count_for(x.shape[-2:])
        pyramid = build_pyramid(x, self.pyramid_map, num_levels - 1)

        zs = [self.levels[0](pyramid.images[0])[0]]
        for index in range(1, num_levels):
            zs.append(self.levels[index](pyramid.details[index - 1], pyramid.images[index - 1])[0])
        return zs

    def decode(self, zs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Map base noise of levels coarse to fine back to continuous images, (B, C, H, W)."""
        if not 1 <= len(zs) <= len(self.levels):
            raise InputError(f"decode takes noise for 1 to {len(self.levels)} levels, got {len(zs)}")

        x = self.levels[0].inverse(zs[0])
        for index in range(1, len(zs)):
            y = self.levels[index].inverse(zs[index], x)
            x, _ = self.pyramid_map.merge(x, y)
        return x

    def sample(
        self,
        batch_size: int,
        *,
        temperature: float | Sequence[float] = 1.0,
        size: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Generate continuous images coarse to fine.

        Args:
            batch_size: number of images.
            temperature: scale of the base noise, one value for every level or one per level,
                coarse to fine.
            size: (H, W) of the output, one of the stack's resolutions; the finest when None.
            generator: random generator for the base noise.
            device: device of the output; the parameters' device when None.

        Returns:
            Images (B, C, H, W), nominally in ``[0, 1]``; values may fall outside when the
            model is imperfect.
        """
        num_levels = self.level_count_for(size) if size is not None else len(self.levels)
        temperatures = self._temperatures(temperature, num_levels)

        zs = [
            self.levels[index].sample_base(
                batch_size, temperature=temperatures[index], device=device, generator=generator
            )
            for index in range(num_levels)
        ]
        return self.decode(zs)

    def superres(
        self,
        x: torch.Tensor,
        *,
        size: tuple[int, int] | None = None,
        temperature: float | Sequence[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Generate finer versions of continuous images, level by level.

        Args:
            x: continuous images in ``[0, 1]`` at one of the stack's resolutions, (B, C, h, w).
            size: target (H, W); the stack's finest when None.
            temperature: base noise scale for every generated level, or one value per level
                generated, coarse to fine.
            generator: random generator for the base noise.

        Returns:
            Images (B, C, H, W) whose 2x2-block means at each coarser resolution equal the input.
        """
        start = self.level_count_for(x.shape[-2:])
        stop = self.level_count_for(size) if size is not None else len(self.levels)
        if stop < start:
            raise ImageSizeError(
                f"target size {size[0]}x{size[1]} is smaller than the input {x.shape[-2]}x{x.shape[-1]}"
            )
        temperatures = self._temperatures(temperature, stop - start)

        for offset, index in enumerate(range(start, stop)):
            level = self.levels[index]
            z = level.sample_base(x.shape[0], temperature=temperatures[offset], device=x.device, dtype=x.dtype, generator=generator)
            y = level.inverse(z, x)
            x, _ = self.pyramid_map.merge(x, y)
        return x

    def _temperatures(self, temperature: float | Sequence[float], count: int) -> list[float]:
        values = [float(temperature)] * count if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
        if len(values) != count:
            raise InputError(f"got {len(values)} temperatures for {count} levels; pass one value or one per level")
        for value in values:
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"temperature must be a number >= 0, got {value}")
        return values

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.config.channels:
            raise InputError(
                f"images must have shape (B, {self.config.channels}, H, W), got {tuple(images.shape)}"
            )
        if images.dtype.is_floating_point and not torch.equal(images, images.round()):
            raise InputError("8-bit images must hold integer pixel values 0..255, got fractional values")
        if images.numel() and (images.min() < 0 or images.max() > 255):
            raise InputError(
                f"8-bit images must hold pixel values 0..255, got {images.min().item()}..{images.max().item()}"
            )

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _check_chain(self) -> None:
        if not self.levels:
            raise InputError("a stack needs at least one level")
        for index, level in enumerate(self.levels):
            if level.config.conditional != (index > 0):
                kind = "conditional" if level.config.conditional else "unconditional"
                raise InputError(f"level {level.config.name} is {kind} but is at position {index} of the stack")
            if level.config.channels != self.config.channels:
                raise InputError(
                    f"level {level.config.name} has {level.config.channels} channels, the stack {self.config.channels}"
                )
            if index > 0:
                previous = self.levels[index - 1].config.size
                if tuple(level.config.size) != (2 * previous[0], 2 * previous[1]):
                    raise InputError(
                        f"level {level.config.name} does not double the resolution of level "
                        f"{self.levels[index - 1].config.name}"
                    )


def multires_base_std(pyramid_map: PyramidMap, scale: int, conditional: bool) -> float:
    """Return the base standard deviation that unit-variance noise at the finest level implies.

    With independent unit-variance noise at the finest pixels, an image ``scale`` times coarser
    holds block means of variance ``1 / scale^2``, and details of an image of pixel variance v
    have variance ``4 v / k^2`` (which is k for the "mrcnf" map).

    Args:
        pyramid_map: the stack's pyramid map.
        scale: how many times coarser than the finest resolution this level's image is.
        conditional: True for a detail level, whose image is at that scale.
    """
    pixel_variance = 1.0 / scale**2
    if not conditional:
        return math.sqrt(pixel_variance)
    return math.sqrt(4 * pixel_variance / pyramid_map.k**2)

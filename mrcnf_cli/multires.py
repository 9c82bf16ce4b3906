"""Pyramid maps: split an image into its 2x2-block means and three detail values per block.

For each channel and each 2x2 block with pixels ``a b / c d`` the map computes

    m  = (a + b + c + d) / 4
    y1 = (a + b - c - d) / k
    y2 = (a - b + c - d) / k
    y3 = (a - b - c + d) / k

so the coarse image holds exact block means and ``|det| = 4 / k^3`` per block. The "mrcnf" map
(Voleti et al., "Multi-Resolution Continuous Normalizing Flows", 2021) takes ``k = 2^(2/3)``,
which makes the map volume-preserving; the "haar" map takes ``k = 2`` and contributes
``log(1/2)`` nats per coarse value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mrcnf_cli.errors import ImageSizeError, UnknownNameError


_HADAMARD = torch.tensor(
    [[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], dtype=torch.float64
)


@dataclass(frozen=True)
class PyramidMap:
    """One invertible 2x2-block map, defined by ``k = 2 ** exponent``.

    Attributes:
        name: registry name.
        exponent: ``log2(k)``; stored instead of ``k`` so that ``log|det|`` is exact.
    """

    name: str
    exponent: float

    @property
    def k(self) -> float:
        return 2.0**self.exponent

    @property
    def logdet_per_block(self) -> float:
        """``log|det|`` of the forward map for one 2x2 block of one channel, in nats."""
        return (2.0 - 3.0 * self.exponent) * math.log(2.0)

    @property
    def matrix(self) -> torch.Tensor:
        """The (4, 4) float64 forward matrix, rows (m, y1, y2, y3), columns (a, b, c, d)."""
        scale = torch.tensor([0.25, 1 / self.k, 1 / self.k, 1 / self.k], dtype=torch.float64)
        return scale[:, None] * _HADAMARD

    @property
    def inverse_matrix(self) -> torch.Tensor:
        """The (4, 4) float64 inverse matrix: ``H^T diag(1, k/4, k/4, k/4)``, since ``H H^T = 4 I``."""
        scale = torch.tensor([1.0, self.k / 4, self.k / 4, self.k / 4], dtype=torch.float64)
        return _HADAMARD.T * scale[None, :]

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split a fine image into its coarse mean image and its details.

        Args:
            x: fine image x_s, (B, C, H, W) with H and W even.

        Returns:
            ``(x_coarse, y, logdet)``: the block means x_{s+1} (B, C, H/2, W/2), the details y_s
            (B, 3C, H/2, W/2) stored channel-major as ``[y1 (C), y2 (C), y3 (C)]``, and
            ``log|det|`` of the map per image, (B,) in nats.

        Raises:
            ImageSizeError: H or W is odd.
        """
        check_even_size(x.shape[-2], x.shape[-1])
        batch, channels, height, width = x.shape

        blocks = F.pixel_unshuffle(x, 2).reshape(batch, channels, 4, height // 2, width // 2)
        matrix = self.matrix.to(dtype=x.dtype, device=x.device)
        coefficients = torch.einsum("ij,bcjhw->bcihw", matrix, blocks)

        x_coarse = coefficients[:, :, 0]
        y = coefficients[:, :, 1:].transpose(1, 2).reshape(batch, 3 * channels, height // 2, width // 2)
        logdet = self._logdet(x_coarse)
        return x_coarse, y, logdet

    def merge(self, x_coarse: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert :meth:`split`: rebuild the fine image from its block means and details.

        Each pixel is ``m + (k / 4) * (±y1 ± y2 ± y3)`` with signs a (+,+,+), b (+,-,-),
        c (-,+,-), d (-,-,+).

        Args:
            x_coarse: block means, (B, C, h, w).
            y: details, (B, 3C, h, w), channel-major.

        Returns:
            ``(x, logdet)``: the fine image (B, C, 2h, 2w) and ``log|det|`` of the inverse map
            per image, (B,) in nats (the negative of the forward value).
        """
        batch, channels, height, width = x_coarse.shape
        if y.shape != (batch, 3 * channels, height, width):
            raise ImageSizeError(
                f"details of shape {tuple(y.shape)} do not match coarse image "
                f"{tuple(x_coarse.shape)}; expected {(batch, 3 * channels, height, width)}"
            )

        details = y.reshape(batch, 3, channels, height, width).transpose(1, 2)
        coefficients = torch.cat([x_coarse[:, :, None], details], dim=2)
        inverse = self.inverse_matrix.to(dtype=x_coarse.dtype, device=x_coarse.device)
        blocks = torch.einsum("ij,bcjhw->bcihw", inverse, coefficients)

        x = F.pixel_shuffle(blocks.reshape(batch, 4 * channels, height, width), 2)
        return x, -self._logdet(x_coarse)

    def _logdet(self, x_coarse: torch.Tensor) -> torch.Tensor:
        blocks_per_image = x_coarse[0].numel()
        value = self.logdet_per_block * blocks_per_image
        return torch.full((x_coarse.shape[0],), value, dtype=x_coarse.dtype, device=x_coarse.device)


PYRAMID_MAPS: dict[str, PyramidMap] = {
    "mrcnf": PyramidMap("mrcnf", exponent=2.0 / 3.0),
    "haar": PyramidMap("haar", exponent=1.0),
}


def get_pyramid_map(name: str) -> PyramidMap:
    """Look up a pyramid map by name; raise UnknownNameError listing the valid names."""
    try:
        return PYRAMID_MAPS[name]
    except KeyError:
        raise UnknownNameError("pyramid map", name, PYRAMID_MAPS) from None


def check_even_size(height: int, width: int) -> None:
    """Raise ImageSizeError unless an image of this size can be split into 2x2 blocks."""
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise ImageSizeError(
            f"image size {height}x{width} cannot be split into 2x2 blocks: "
            "height and width must be even and at least 2"
        )


@dataclass
class Pyramid:
    """The pyramid of one continuous image batch.

    Attributes:
        images: x at every level, coarse to fine; ``images[-1]`` is the finest.
        details: ``details[i]`` contains y of ``images[i + 1]`` given ``images[i]``, (B, 3C, h, w).
        logdet: summed ``log|det|`` of the splits, (B,) in nats.
    """

    images: list[torch.Tensor]
    details: list[torch.Tensor]
    logdet: torch.Tensor


def build_pyramid(x: torch.Tensor, pyramid_map: PyramidMap, num_splits: int) -> Pyramid:
    """Split the finest image ``num_splits`` times with one pyramid map.

    Args:
        x: finest image, (B, C, H, W) with H and W divisible by ``2 ** num_splits``.
        pyramid_map: the map applied at every split.
        num_splits: number of halvings.

    Raises:
        ImageSizeError: a size is not divisible by ``2 ** num_splits``.
    """
    factor = 2**num_splits
    height, width = x.shape[-2:]
    if height % factor or width % factor:
        raise ImageSizeError(
            f"image size {height}x{width} is not divisible by 2^{num_splits} = {factor}, "
            f"which a {num_splits + 1}-level stack requires; crop or resize the images"
        )

    images = [x]
    details = []
    logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(num_splits):
        x, y, split_logdet = pyramid_map.split(x)
        images.append(x)
        details.append(y)
        logdet = logdet + split_logdet

    images.reverse()
    details.reverse()
    return Pyramid(images, details, logdet)

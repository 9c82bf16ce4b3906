"""Generation with a trained stack: samples from noise, and super-resolution of real images.

Both run coarse to fine: a level's CNF maps base noise to its variables, and the pyramid map
merges the details into the finer image. Outputs are continuous images in ``[0, 1]``, quantized
to 8 bits with ``floor(256 x)`` clipped to 0..255, the inverse of the dequantization
``x = (k + u) / 256``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from mrcnf_cli.errors import ImageSizeError, InputError
from mrcnf_cli.multires import build_pyramid
from mrcnf_cli.stack import MultiResFlow, dequantize
from mrcnf_cli.store import atomic_path, format_sizes

logger = logging.getLogger(__name__)


@dataclass
class Generated:
    """Images produced by a stack.

    Attributes:
        images: continuous images (N, C, H, W), possibly with non-finite values.
        finite: (N,) bool, True where every value of the image is finite.
        nfe: dynamics evaluations of each level generated, summed over batches, coarse to fine.
        seconds: wall time.
    """

    images: torch.Tensor
    finite: torch.Tensor
    nfe: list[int]
    seconds: float

    def quantized(self) -> np.ndarray:
        """Return the finite images as uint8 (N_finite, C, H, W)."""
        return quantize(self.images[self.finite])


def quantize(x: torch.Tensor) -> np.ndarray:
    """Map continuous images in ``[0, 1]`` to 8-bit pixels: ``floor(256 x)`` clipped to 0..255."""
    return torch.clamp(torch.floor(x.double() * 256), 0, 255).to(torch.uint8).cpu().numpy()


def clip_keeping_block_means(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Clip images into the 8-bit range while keeping the mean of every ``factor`` x ``factor`` block.

    Values below 0 or at or above 1 are clipped, and the amount removed is spread evenly over the
    block's pixels that still have room, until the block mean is restored. A block whose mean lies
    in ``[0, 1)`` always has a solution. Super-resolved images keep their block means this way,
    so after quantization every block mean stays within one grey level of the input.

    Args:
        x: continuous images (N, C, H, W), H and W divisible by ``factor``.
        factor: block side in pixels.
    """
    low, high = 0.0, (256 - 1e-3) / 256
    count, channels, height, width = x.shape
    blocks = x.reshape(count, channels, height // factor, factor, width // factor, factor).transpose(3, 4)
    blocks = blocks.reshape(count, channels, height // factor, width // factor, factor * factor).double()
    target = blocks.sum(-1, keepdim=True).clamp(low * factor**2, high * factor**2)

    clipped = blocks.clamp(low, high)
    for _ in range(factor * factor):
        deficit = target - clipped.sum(-1, keepdim=True)
        if deficit.abs().max() < 1e-12:
            break
        free = torch.where(deficit > 0, clipped < high, clipped > low)
        share = deficit / free.sum(-1, keepdim=True).clamp(min=1)
        clipped = (clipped + share * free).clamp(low, high)

    clipped = clipped.reshape(count, channels, height // factor, width // factor, factor, factor).transpose(3, 4)
    return clipped.reshape(count, channels, height, width).to(x.dtype)


def parse_temperatures(text: str) -> float | list[float]:
    """Parse "0.7" or a comma-separated list "1,0.9,0.8" (coarse to fine) of temperatures >= 0."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = float("nan")
        if not (np.isfinite(value) and value >= 0):
            raise InputError(
                f"invalid temperature {part.strip()!r} in {text!r}; give numbers >= 0, one or one per level (coarse to fine)"
            )
        values.append(value)
    return values[0] if len(values) == 1 else values


@torch.no_grad()
def sample_images(
    stack: MultiResFlow,
    count: int,
    *,
    temperature: float | Sequence[float] = 1.0,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> Generated:
    """Draw ``count`` images from a stack, in batches, reproducibly from ``seed``.

    Args:
        stack: the trained stack.
        count: number of images.
        temperature: base-noise scale for every level, or one per level, coarse to fine.
        size: output resolution, one of the stack's; the finest when None.
        seed: seed of the base noise.
        batch_size: images per batch.
    """
    if count < 1:
        raise InputError(f"number of images must be positive, got {count}")
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")

    stack.eval()
    device = next(stack.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    num_levels = stack.level_count_for(size) if size is not None else len(stack.levels)
    started = time.monotonic()

    batches, nfe = [], [0] * num_levels
    for start in range(0, count, batch_size):
        batch = stack.sample(min(batch_size, count - start), temperature=temperature, size=size, generator=generator)
        batches.append(batch.cpu())
        for index in range(num_levels):
            nfe[index] += stack.levels[index].nfe
        logger.info("sampled %d of %d images, NFE per level %s", start + len(batch), count, [level.nfe for level in stack.levels[:num_levels]])

    images = torch.cat(batches)
    return Generated(images, _finite(images), nfe, time.monotonic() - started)


@torch.no_grad()
def superres_images(
    stack: MultiResFlow,
    x: torch.Tensor,
    *,
    size: tuple[int, int] | None = None,
    samples: int = 1,
    temperature: float | Sequence[float] = 1.0,
    seed: int = 0,
) -> Generated:
    """Generate ``samples`` finer versions of each continuous image.

    Args:
        stack: the trained stack.
        x: continuous low-resolution images in ``[0, 1]``, (N, C, h, w), at one of the stack's
            resolutions.
        size: target resolution; the stack's finest when None.
        samples: versions per image.
        temperature: base-noise scale, one value or one per generated level.
        seed: seed of the base noise.

    Returns:
        :class:`Generated` with images ordered image by image: (N * samples, C, H, W).
    """
    if samples < 1:
        raise InputError(f"number of samples must be positive, got {samples}")
    stack.eval()
    device = next(stack.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    start = stack.level_count_for(x.shape[-2:])
    stop = stack.level_count_for(size) if size is not None else len(stack.levels)
    started = time.monotonic()

    repeated = x.to(device=device, dtype=next(stack.parameters()).dtype).repeat_interleave(samples, dim=0)
    images = stack.superres(repeated, size=size, temperature=temperature, generator=generator).cpu()
    nfe = [stack.levels[index].nfe for index in range(start, stop)]
    return Generated(images, _finite(images), nfe, time.monotonic() - started)


def continuous_input(pixels: np.ndarray) -> torch.Tensor:
    """Turn 8-bit low-resolution inputs into continuous images at their bin centres, ``(k + 0.5) / 256``."""
    images = torch.from_numpy(np.ascontiguousarray(pixels))
    return dequantize(images, torch.full(images.shape, 0.5, dtype=torch.float64), dtype=torch.float64)


def downsample_to(stack: MultiResFlow, pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Downsample 8-bit high-resolution images to ``size`` by exact 2x2 means of their bin centres.

    Raises:
        ImageSizeError: the image size is not ``size`` times a power of two.
    """
    high = continuous_input(pixels)
    height, width = high.shape[-2:]
    factor = height // size[0]
    if (height, width) != (size[0] * factor, size[1] * factor) or factor & (factor - 1):
        raise ImageSizeError(
            f"cannot downsample {height}x{width} images to {size[0]}x{size[1]} by halving; "
            "give a resolution that divides them by a power of two"
        )
    return build_pyramid(high, stack.pyramid_map, factor.bit_length() - 1).images[0]


def check_target(stack: MultiResFlow, size: tuple[int, int] | None) -> None:
    if size is not None and tuple(size) not in stack.sizes:
        raise ImageSizeError(f"resolution {size[0]}x{size[1]} is not a level of this stack; choose one of {format_sizes(stack.sizes)}")


def save_png(path: Path, pixels: np.ndarray) -> None:
    """Write one uint8 image (C, H, W) as PNG through a temporary file and an atomic rename."""
    array = np.ascontiguousarray(pixels.transpose(1, 2, 0))
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    with atomic_path(Path(path)) as temporary:
        image.save(temporary, format="PNG")


def image_grid(pixels: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one image with torchvision's make_grid."""
    columns = columns or max(1, int(np.ceil(np.sqrt(len(pixels)))))
    grid = make_grid(torch.from_numpy(pixels), nrow=columns, padding=padding, pad_value=255)
    return grid.numpy()[: pixels.shape[1]]


def _finite(images: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(images).flatten(1).all(1)

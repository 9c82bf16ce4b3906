"""Box downsampling of uint8 images by an integer factor, in integer arithmetic."""

from __future__ import annotations

import numpy as np

from mrcnf_cli.errors import DataError


def format_size(size: tuple[int, int]) -> str:
    """Format an image size (H, W) as ``"HxW"``."""
    return f"{size[0]}x{size[1]}"


def downsample_factor(size: tuple[int, int], image_size: int, *, source: str) -> int:
    """Return the factor that box-downsamples images of `size` (H, W) to image_size x image_size.

    Raises:
        DataError: the image is smaller than `image_size`, or its height and width are not the
            same whole multiple of `image_size`.
    """
    height, width = size
    if height < image_size or width < image_size:
        raise DataError(
            f"{source} is {format_size(size)} (height x width), smaller than image_size {image_size}; "
            "pass a smaller image_size or larger images"
        )

    if height % image_size or width % image_size or height != width:
        raise DataError(
            f"{source} is {format_size(size)} (height x width), which does not box-downsample to "
            f"{image_size}x{image_size}; pass an image_size that divides both sides of a square image"
        )

    return height // image_size


def box_downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Replace each factor x factor block of uint8 pixels (..., H, W) by its mean.

    The mean is rounded half to even, like ``numpy.round``: a block mean of 0.5 becomes 0 and 1.5
    becomes 2. Sums stay in uint32 and no float copy of the pixels is made.

    Returns:
        uint8 array of shape (..., H / factor, W / factor); `pixels` itself when factor is 1.
    """
    if factor == 1:
        return pixels

    *leading, height, width = pixels.shape
    blocks = pixels.reshape(*leading, height // factor, factor, width // factor, factor)
    sums = blocks.sum(axis=(-3, -1), dtype=np.uint32)

    count = factor * factor
    quotient, remainder = np.divmod(sums, count)
    round_up = (2 * remainder > count) | ((2 * remainder == count) & (quotient % 2 == 1))
    return (quotient + round_up).astype(np.uint8)

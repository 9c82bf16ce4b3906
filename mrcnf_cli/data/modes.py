"""Conversion of decoded pixels to the model's channel count and 8 bits.

Every reader sends its pixels through `to_model_pixels`. A conversion happens without being asked
only where it loses nothing:

- grey to RGB (the grey value is copied to R, G and B);
- alpha dropped where every alpha value is 255;
- 16-bit values divided by 257 where every value is a multiple of 257;
- RGB to grey where R == G == B in every pixel.

With ``convert=True`` the lossy conversions are allowed too:

- alpha below 255: the colour is composited over black, ``round(c * a / 255)``;
- 16-bit values that are not multiples of 257: ``round(v / 257)``;
- colour RGB to grey: the ITU-R 601-2 luma rule that Pillow's ``convert("L")`` uses,
  ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``.

Pixels are laid out channel-first, ``(..., C, H, W)``, where C is 1 (grey), 2 (grey and alpha),
3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import numpy as np

from mrcnf_cli.errors import DataError

MODEL_CHANNELS = (1, 3)

# Pillow's ITU-R 601-2 luma weights in 16-bit fixed point (libImaging/Convert.c, Pillow 10 to 13);
# the sum of the three weights is 65536.
LUMA_WEIGHTS = (19595, 38470, 7471)


def to_model_pixels(
    pixels: np.ndarray, *, channels: int, convert: bool, source: str, mode: str
) -> np.ndarray:
    """Convert pixels to uint8 with `channels` channels, raising DataError where that would lose data.

    Args:
        pixels: uint8 or uint16 array of shape ``(..., C, H, W)`` with C in 1, 2, 3, 4.
        channels: the model's channel count, 1 or 3.
        convert: allow the lossy conversions listed in the module docstring.
        source: the file (or file and record) the pixels come from, named in errors.
        mode: the pixel format as read (a Pillow mode such as ``"RGBA"``), named in errors.

    Returns:
        uint8 array of shape ``(..., channels, H, W)``; the input itself when nothing changes.
    """
    pixels = _to_8_bits(pixels, convert=convert, source=source, mode=mode)

    if pixels.shape[-3] in (2, 4):
        pixels = _remove_alpha(pixels, convert=convert, source=source, mode=mode)

    return _match_channels(pixels, channels=channels, convert=convert, source=source, mode=mode)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Return the ITU-R 601-2 luma of uint8 RGB pixels ``(..., 3, H, W)`` as uint8 ``(..., 1, H, W)``.

    The integer rule is Pillow's, so the result equals ``Image.convert("L")`` bit for bit.
    """
    red, green, blue = (rgb[..., index : index + 1, :, :].astype(np.uint32) for index in range(3))
    weighted = LUMA_WEIGHTS[0] * red + LUMA_WEIGHTS[1] * green + LUMA_WEIGHTS[2] * blue
    return ((weighted + 32768) >> 16).astype(np.uint8)


def _to_8_bits(pixels: np.ndarray, *, convert: bool, source: str, mode: str) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels

    if pixels.dtype != np.uint16:
        raise DataError(
            f"{source} has pixel type {pixels.dtype} (mode {mode}); "
            "store 8-bit or 16-bit unsigned integer pixels"
        )

    quotient, remainder = np.divmod(pixels, 257)
    if not remainder.any():
        return quotient.astype(np.uint8)

    if not convert:
        raise DataError(
            f"{source} has mode {mode} with 16-bit values that are not multiples of 257, so 8 bits "
            "would lose precision; pass --convert to round them to 8 bits"
        )

    # v = 257 q + r with 0 <= r <= 256, and r = 128.5 never occurs, so round(v / 257) has no ties.
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _remove_alpha(pixels: np.ndarray, *, convert: bool, source: str, mode: str) -> np.ndarray:
    colour = pixels[..., :-1, :, :]
    alpha = pixels[..., -1:, :, :]
    if (alpha == 255).all():
        return colour

    if not convert:
        raise DataError(
            f"{source} has mode {mode} with transparent pixels (alpha below 255); pass --convert "
            "to composite them over black"
        )

    # round(c * a / 255): c * a + 127 never reaches a tie because 255 is odd.
    composited = (colour.astype(np.uint32) * alpha + 127) // 255
    return composited.astype(np.uint8)


def _match_channels(
    pixels: np.ndarray, *, channels: int, convert: bool, source: str, mode: str
) -> np.ndarray:
    present = pixels.shape[-3]
    if present == channels:
        return pixels

    if present == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-3)

    if present == 3 and channels == 1:
        red, green, blue = (pixels[..., index : index + 1, :, :] for index in range(3))
        if np.array_equal(red, green) and np.array_equal(green, blue):
            return np.ascontiguousarray(red)

        if not convert:
            raise DataError(
                f"{source} has mode {mode} with colour pixels but the model takes 1 channel; pass "
                "--convert to turn them grey by the ITU-R 601 luma rule, or use a 3-channel model"
            )
        return luma(pixels)

    raise DataError(
        f"{source} has {present} channels (mode {mode}); the model takes {channels}, "
        "so pass grey or RGB images"
    )

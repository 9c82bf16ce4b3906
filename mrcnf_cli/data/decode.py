"""Decoding of one image file into channel-first pixels, before any conversion.

Pillow decodes every format, except 16-bit colour PNG and TIFF files: Pillow (10 to 13) reduces
those to 8 bits without saying so, so imagecodecs decodes them at their full depth. Only the
first frame of an animated GIF or multi-page TIFF is read.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from mrcnf_cli.data.modes import to_model_pixels
from mrcnf_cli.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Pillow modes converted to one of the modes read directly, without loss.
_LOSSLESS_PILLOW_CONVERSIONS = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB"}

# Colour spaces whose conversion to RGB rounds values, so only convert=True allows it.
_LOSSY_PILLOW_MODES = ("CMYK", "YCbCr", "LAB", "HSV")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


def read_image(path: Path, *, channels: int, convert: bool) -> np.ndarray:
    """Read an image file as uint8 pixels of shape (channels, H, W).

    Raises:
        DataError: the file is not a readable image, or its mode needs a lossy conversion and
            `convert` is False (see `mrcnf_cli.data.modes`).
    """
    pixels, mode = read_pixels(path, convert=convert)
    return to_model_pixels(pixels, channels=channels, convert=convert, source=str(path), mode=mode)


def read_pixels(path: Path, *, convert: bool) -> tuple[np.ndarray, str]:
    """Decode an image file as it is stored.

    Returns:
        The pixels, uint8 or uint16 of shape (C, H, W) with C in 1, 2, 3, 4, and the mode read,
        a Pillow mode or a description such as ``"16-bit RGB PNG"``.
    """
    try:
        with Image.open(path) as image:
            if _is_sixteen_bit_colour(path, image):
                return _read_with_imagecodecs(path, image.format)

            return _read_with_pillow(path, image, convert=convert)

    except DataError:
        raise

    except _READ_ERRORS as error:
        raise DataError(
            f"cannot read {path} as an image ({error}); pass a PNG, JPEG, BMP, GIF, WebP or TIFF file"
        ) from None


def _read_with_pillow(path: Path, image: Image.Image, *, convert: bool) -> tuple[np.ndarray, str]:
    image.seek(0)
    image.load()
    mode = image.mode

    if mode == "P":
        converted = image.convert("RGBA" if _has_transparency(image) else "RGB")
    elif mode in _LOSSLESS_PILLOW_CONVERSIONS:
        converted = image.convert(_LOSSLESS_PILLOW_CONVERSIONS[mode])
    elif mode in _LOSSY_PILLOW_MODES:
        if not convert:
            raise DataError(
                f"{path} has mode {mode}, and converting it to RGB changes values; "
                "pass --convert to convert it"
            )
        converted = image.convert("RGB")
    else:
        converted = image

    array = np.asarray(converted)
    if converted.mode in _SIXTEEN_BIT_MODES:
        array = array.astype(np.uint16)
    elif converted.mode == "I":
        array = _int32_to_uint16(array, path)
    elif converted.mode not in ("L", "LA", "RGB", "RGBA"):
        raise DataError(
            f"{path} has mode {mode}, which mrcnf cannot read; "
            "save it as an 8-bit or 16-bit grey or RGB image"
        )

    return _channels_first(array), mode


def _has_transparency(image: Image.Image) -> bool:
    # Image.has_transparency_data exists from Pillow 10.1 on; pyproject allows Pillow 10.0.
    if hasattr(image, "has_transparency_data"):
        return image.has_transparency_data
    return "transparency" in image.info or image.palette.mode == "RGBA"


def _int32_to_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    # Some Pillow releases open 16-bit grey PNG files as 32-bit mode I, so mode I values are read as 16-bit.
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise DataError(
            f"{path} has mode I with values outside 0..65535; save it as an 8-bit or 16-bit image"
        )
    return array.astype(np.uint16)


def _is_sixteen_bit_colour(path: Path, image: Image.Image) -> bool:
    if image.format == "PNG":
        with open(path, "rb") as stream:
            header = stream.read(26)
        # IHDR: bit depth at byte 24, colour type at byte 25 (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA).
        return header.startswith(PNG_SIGNATURE) and len(header) == 26 and header[24] == 16 and header[25] != 0

    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = image.tag_v2.get(277, 1)
        return samples > 1 and max(bits) > 8

    return False


def _read_with_imagecodecs(path: Path, image_format: str) -> tuple[np.ndarray, str]:
    import imagecodecs

    data = path.read_bytes()
    try:
        if image_format == "PNG":
            array = imagecodecs.png_decode(data)
        else:
            array = imagecodecs.tiff_decode(data)
    except (imagecodecs.PngError, imagecodecs.TiffError) as error:
        raise OSError(str(error)) from None

    if array.ndim == 3 and array.shape[-1] > 4:
        raise DataError(f"{path} has {array.shape[-1]} samples per pixel; pass a grey or RGB image")

    names = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}
    channels = 1 if array.ndim == 2 else array.shape[-1]
    return _channels_first(array.astype(np.uint16)), f"16-bit {names[channels]} {image_format}"


def _channels_first(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array[np.newaxis]
    return np.ascontiguousarray(array.transpose(2, 0, 1))

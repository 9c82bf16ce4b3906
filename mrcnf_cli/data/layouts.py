"""Image array layouts found in ``.npz`` files, and reading an array's shape without loading it.

Accepted shapes of a key that stores N images:

- ``(N, K)``: planar rows. K = 3 S^2 is an S x S RGB image as the R plane, then G, then B
  (the downsampled-ImageNet release); K = S^2 is an S x S grey image. Both cannot be true at
  once, because 3 is not a square.
- ``(N, H, W)``: grey images.
- ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in 1, 3, 4. When only one of axes 1 and 3 is 1, 3 or
  4, that axis is the channel axis. When both are, the layout whose height equals its width is
  taken. When that does not decide either, DataError is raised.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrcnf_cli.errors import DataError

ARRAY_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Layout:
    """Arrangement of the images in an array.

    Attributes:
        kind: "planar", "grey", "channels_last" or "channels_first".
        count: number of images N.
        channels: channels per image.
        size: image size (H, W).
    """

    kind: str
    count: int
    channels: int
    size: tuple[int, int]


def infer_layout(shape: tuple[int, ...], *, source: str) -> Layout:
    """Work out the layout of an image array of `shape` by the rules in the module docstring.

    Raises:
        DataError: the shape fits none of the accepted layouts, or two of them equally.
    """
    if len(shape) == 2:
        return _planar_layout(shape, source=source)

    if len(shape) == 3:
        return Layout("grey", shape[0], 1, (shape[1], shape[2]))

    if len(shape) != 4:
        raise DataError(
            f"{source} has shape {shape}; store images as (N, H, W, C), (N, C, H, W) or planar rows (N, 3*S*S)"
        )

    count, axis1, axis2, axis3 = shape
    first = axis1 in ARRAY_CHANNELS
    last = axis3 in ARRAY_CHANNELS
    if first and last:
        first, last = axis2 == axis3, axis1 == axis2

    if first == last:
        raise DataError(
            f"{source} has shape {shape}, which fits neither (N, H, W, C) nor (N, C, H, W) with C in 1, 3, 4 "
            "unambiguously; store images as (N, H, W, C)"
        )

    if last:
        return Layout("channels_last", count, axis3, (axis1, axis2))
    return Layout("channels_first", count, axis1, (axis2, axis3))


def planar_layout(shape: tuple[int, ...], *, side: int, source: str) -> Layout:
    """Check that `shape` is (N, 3 * side * side) planar RGB rows and return its layout."""
    if len(shape) != 2 or shape[1] != 3 * side * side:
        raise DataError(
            f"{source} has shape {shape}; expected rows of 3*{side}*{side} = {3 * side * side} values "
            f"(R plane, then G, then B) for {side}x{side} images"
        )
    return Layout("planar", shape[0], 3, (side, side))


def to_channels_first(array: np.ndarray, layout: Layout) -> np.ndarray:
    """Return images of `array` as (N, C, H, W), a view wherever the layout allows one."""
    height, width = layout.size
    if layout.kind == "planar":
        return array.reshape(len(array), layout.channels, height, width)

    if layout.kind == "grey":
        return array[:, np.newaxis]

    if layout.kind == "channels_last":
        return array.transpose(0, 3, 1, 2)

    return array


def npz_member_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read the shape and dtype of `key` in an ``.npz`` file without loading its data.

    Raises:
        DataError: the file is not a readable npz archive or has no such key.
    """
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)

    except KeyError:
        raise DataError(f"{path} has no array {key!r}; store the images under that key") from None

    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise _unreadable_npz(path, error) from None

    return shape, dtype


def npz_keys(path: Path) -> list[str]:
    """List the array names in an ``.npz`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]

    except (OSError, zipfile.BadZipFile) as error:
        raise _unreadable_npz(path, error) from None


def load_npz_member(path: Path, key: str) -> np.ndarray:
    """Load one array of an ``.npz`` file; pickled object arrays are rejected."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]

    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise _unreadable_npz(path, error) from None


def _planar_layout(shape: tuple[int, ...], *, source: str) -> Layout:
    count, values = shape
    for channels in (3, 1):
        side = math.isqrt(values // channels)
        if values % channels == 0 and side * side * channels == values and side > 0:
            return Layout("planar", count, channels, (side, side))

    raise DataError(
        f"{source} has shape {shape}, but planar rows need 3*S*S (RGB) or S*S (grey) values for S x S "
        "images; store images as (N, H, W, C)"
    )


def _unreadable_npz(path: Path, error: Exception) -> DataError:
    return DataError(f"cannot read {path} as an npz file ({error}); pass a file written by numpy.savez")

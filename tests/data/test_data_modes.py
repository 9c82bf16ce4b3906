"""Mode conversion of decoded image files: lossless by default, lossy only with convert=True."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from mrcnf_cli.data.decode import read_image
from mrcnf_cli.data.modes import luma
from mrcnf_cli.errors import DataError

RNG = np.random.default_rng(7)


def random_pixels(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def save_palette_image(path: Path, indices: np.ndarray, palette: np.ndarray, **save_options) -> None:
    image = Image.new("P", (indices.shape[1], indices.shape[0]))
    image.putpalette(palette.astype(np.uint8).ravel().tolist())
    image.frombytes(indices.astype(np.uint8).tobytes())
    image.save(path, **save_options)


def test_grey_to_rgb_copies_value(tmp_path: Path) -> None:
    grey = random_pixels(5, 7)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)

    pixels = read_image(path, channels=3, convert=False)

    assert pixels.shape == (3, 5, 7)
    assert pixels.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(pixels[channel], grey)


def test_grey_to_grey_unchanged(tmp_path: Path) -> None:
    grey = random_pixels(4, 4)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)

    np.testing.assert_array_equal(read_image(path, channels=1, convert=False), grey[np.newaxis])


def test_bilevel_becomes_0_and_255(tmp_path: Path) -> None:
    bits = RNG.integers(0, 2, (6, 8)).astype(bool)
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)

    pixels = read_image(path, channels=1, convert=False)

    np.testing.assert_array_equal(pixels[0], np.where(bits, 255, 0))


def test_palette_to_rgb_exact(tmp_path: Path) -> None:
    palette = random_pixels(16, 3)
    indices = RNG.integers(0, 16, (6, 5))
    path = tmp_path / "palette.png"
    save_palette_image(path, indices, palette)

    pixels = read_image(path, channels=3, convert=False)

    np.testing.assert_array_equal(pixels, palette[indices].transpose(2, 0, 1))


def test_grey_palette_to_grey_exact(tmp_path: Path) -> None:
    levels = random_pixels(8)
    palette = np.stack([levels, levels, levels], axis=1)
    indices = RNG.integers(0, 8, (4, 6))
    path = tmp_path / "grey-palette.png"
    save_palette_image(path, indices, palette)

    pixels = read_image(path, channels=1, convert=False)

    np.testing.assert_array_equal(pixels[0], levels[indices])


def test_colour_palette_to_grey_needs_convert(tmp_path: Path) -> None:
    palette = np.array([[255, 0, 0], [0, 0, 255]])
    indices = np.array([[0, 1], [1, 0]])
    path = tmp_path / "colour-palette.gif"
    save_palette_image(path, indices, palette)

    with pytest.raises(DataError, match="--convert") as raised:
        read_image(path, channels=1, convert=False)
    assert str(path) in str(raised.value)
    assert "mode P" in str(raised.value)

    converted = read_image(path, channels=1, convert=True)
    red_luma = (19595 * 255 + 32768) >> 16
    blue_luma = (7471 * 255 + 32768) >> 16
    np.testing.assert_array_equal(converted[0], [[red_luma, blue_luma], [blue_luma, red_luma]])


def test_palette_transparency_needs_convert(tmp_path: Path) -> None:
    palette = np.array([[10, 20, 30], [200, 100, 50]])
    indices = np.array([[0, 1], [1, 1]])
    path = tmp_path / "transparent.png"
    save_palette_image(path, indices, palette, transparency=0)

    with pytest.raises(DataError, match="alpha below 255"):
        read_image(path, channels=3, convert=False)

    converted = read_image(path, channels=3, convert=True)
    np.testing.assert_array_equal(converted[:, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(converted[:, 1, 1], [200, 100, 50])


def test_rgba_opaque_drops_alpha(tmp_path: Path) -> None:
    rgba = random_pixels(5, 6, 4)
    rgba[..., 3] = 255
    path = tmp_path / "opaque.png"
    Image.fromarray(rgba).save(path)

    for convert in (False, True):
        pixels = read_image(path, channels=3, convert=convert)
        np.testing.assert_array_equal(pixels, rgba[..., :3].transpose(2, 0, 1))


def test_rgba_transparent_needs_convert(tmp_path: Path) -> None:
    rgba = random_pixels(5, 6, 4)
    rgba[0, 0, 3] = 0
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba).save(path)

    with pytest.raises(DataError) as raised:
        read_image(path, channels=3, convert=False)
    message = str(raised.value)
    assert str(path) in message
    assert "mode RGBA" in message
    assert "--convert" in message


def test_rgba_convert_composites_over_black(tmp_path: Path) -> None:
    rgba = random_pixels(5, 6, 4)
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba).save(path)

    pixels = read_image(path, channels=3, convert=True)

    colour = rgba[..., :3].astype(np.float64)
    alpha = rgba[..., 3:].astype(np.float64)
    expected = np.round(colour * alpha / 255).astype(np.uint8).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels, expected)


def test_grey_alpha_opaque_is_lossless(tmp_path: Path) -> None:
    grey_alpha = random_pixels(3, 4, 2)
    grey_alpha[..., 1] = 255
    path = tmp_path / "grey-alpha.png"
    Image.fromarray(grey_alpha).save(path)
    assert Image.open(path).mode == "LA"

    pixels = read_image(path, channels=3, convert=False)

    for channel in range(3):
        np.testing.assert_array_equal(pixels[channel], grey_alpha[..., 0])


def test_sixteen_bit_grey_multiples_of_257(tmp_path: Path) -> None:
    values = random_pixels(4, 5).astype(np.uint16) * 257
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)

    pixels = read_image(path, channels=1, convert=False)

    np.testing.assert_array_equal(pixels[0], values // 257)


def test_sixteen_bit_grey_needs_convert(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (4, 5)).astype(np.uint16)
    values[0, 0] = 1000
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)

    with pytest.raises(DataError, match="multiples of 257") as raised:
        read_image(path, channels=1, convert=False)
    assert str(path) in str(raised.value)

    converted = read_image(path, channels=1, convert=True)
    np.testing.assert_array_equal(converted[0], np.round(values / 257).astype(np.uint8))


def test_sixteen_bit_rgb_png_keeps_depth(tmp_path: Path) -> None:
    eight_bit = random_pixels(4, 5, 3)
    path = tmp_path / "rgb16.png"
    path.write_bytes(imagecodecs.png_encode(eight_bit.astype(np.uint16) * 257))

    pixels = read_image(path, channels=3, convert=False)

    np.testing.assert_array_equal(pixels, eight_bit.transpose(2, 0, 1))


def test_sixteen_bit_rgb_png_needs_convert(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    values[0, 0, 0] = 1000
    path = tmp_path / "rgb16.png"
    path.write_bytes(imagecodecs.png_encode(values))

    with pytest.raises(DataError, match="16-bit RGB PNG"):
        read_image(path, channels=3, convert=False)

    converted = read_image(path, channels=3, convert=True)
    np.testing.assert_array_equal(converted, np.round(values / 257).astype(np.uint8).transpose(2, 0, 1))


def test_sixteen_bit_rgb_tiff_keeps_depth(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    path.write_bytes(imagecodecs.tiff_encode(values))

    with pytest.raises(DataError, match="multiples of 257"):
        read_image(path, channels=3, convert=False)

    converted = read_image(path, channels=3, convert=True)
    np.testing.assert_array_equal(converted, np.round(values / 257).astype(np.uint8).transpose(2, 0, 1))


def test_grey_rgb_to_grey_is_lossless(tmp_path: Path) -> None:
    grey = random_pixels(4, 4)
    path = tmp_path / "grey-rgb.png"
    Image.fromarray(np.stack([grey, grey, grey], axis=-1)).save(path)

    np.testing.assert_array_equal(read_image(path, channels=1, convert=False)[0], grey)


def test_colour_rgb_to_grey_needs_convert(tmp_path: Path) -> None:
    rgb = random_pixels(8, 9, 3)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)

    with pytest.raises(DataError, match="mode RGB") as raised:
        read_image(path, channels=1, convert=False)
    assert "--convert" in str(raised.value)

    converted = read_image(path, channels=1, convert=True)
    np.testing.assert_array_equal(converted[0], np.asarray(Image.fromarray(rgb).convert("L")))


def test_luma_matches_pillow_convert() -> None:
    rgb = random_pixels(64, 64, 3)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))

    np.testing.assert_array_equal(luma(rgb.transpose(2, 0, 1))[0], expected)


def test_cmyk_needs_convert(tmp_path: Path) -> None:
    cmyk = Image.fromarray(random_pixels(4, 4, 3)).convert("CMYK")
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path)

    with pytest.raises(DataError, match="mode CMYK"):
        read_image(path, channels=3, convert=False)

    expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(read_image(path, channels=3, convert=True), expected)


def test_int32_outside_16_bits_rejected(tmp_path: Path) -> None:
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)

    with pytest.raises(DataError, match="outside 0..65535"):
        read_image(path, channels=1, convert=True)


def test_float_image_rejected(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.5, 1.0]], dtype=np.float32)).save(path)

    with pytest.raises(DataError, match="mode F"):
        read_image(path, channels=1, convert=True)


def test_text_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")

    with pytest.raises(DataError, match="cannot read .* as an image") as raised:
        read_image(path, channels=3, convert=True)
    assert str(path) in str(raised.value)


def test_truncated_png_rejected(tmp_path: Path) -> None:
    path = tmp_path / "truncated.png"
    Image.fromarray(random_pixels(64, 64, 3)).save(path)
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(DataError, match="cannot read"):
        read_image(path, channels=3, convert=False)

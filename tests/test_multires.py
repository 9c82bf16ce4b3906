import math

import numpy as np
import pytest
import torch

from mrcnf_cli.errors import ImageSizeError, UnknownNameError
from mrcnf_cli.multires import PYRAMID_MAPS, build_pyramid, get_pyramid_map

MAPS = ["mrcnf", "haar"]
EXPECTED_DET = {"mrcnf": 1.0, "haar": 0.5}


@pytest.mark.parametrize("name", MAPS)
def test_matrix_determinant(name):
    matrix = get_pyramid_map(name).matrix.numpy()
    assert abs(np.linalg.det(matrix)) == pytest.approx(EXPECTED_DET[name], abs=1e-14)
    assert math.exp(get_pyramid_map(name).logdet_per_block) == pytest.approx(EXPECTED_DET[name], abs=1e-15)


@pytest.mark.parametrize("name", MAPS)
def test_basis_columns_orthogonal(name):
    # The inverse matrix's columns are the mean pattern and the three detail patterns.
    pyramid_map = get_pyramid_map(name)
    basis = pyramid_map.inverse_matrix.numpy()
    gram = basis.T @ basis
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-15
    assert np.abs(basis @ pyramid_map.matrix.numpy() - np.eye(4)).max() < 1e-15


def test_mrcnf_map_adds_nothing_to_logp():
    assert get_pyramid_map("mrcnf").logdet_per_block == 0.0


@pytest.mark.parametrize("name", MAPS)
def test_coarse_value_is_block_mean(name):
    x = torch.rand(2, 3, 8, 6, dtype=torch.float64)
    x_coarse, _, _ = get_pyramid_map(name).split(x)

    blocks = x.numpy().reshape(2, 3, 4, 2, 3, 2)
    assert np.abs(x_coarse.numpy() - blocks.mean(axis=(3, 5))).max() < 1e-15
    assert (x_coarse.numpy() >= blocks.min(axis=(3, 5)) - 1e-15).all()
    assert (x_coarse.numpy() <= blocks.max(axis=(3, 5)) + 1e-15).all()


@pytest.mark.parametrize("name", MAPS)
def test_details_channel_major_layout(name):
    pyramid_map = get_pyramid_map(name)
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    _, y, _ = pyramid_map.split(x)

    a, b = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]
    c, d = x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
    k = pyramid_map.k
    expected = torch.cat([(a + b - c - d) / k, (a - b + c - d) / k, (a - b - c + d) / k], dim=1)
    assert y.shape == (1, 6, 2, 2)
    assert torch.allclose(y, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", MAPS)
def test_split_merge_round_trip(name):
    pyramid_map = get_pyramid_map(name)
    x = torch.rand(3, 3, 16, 8, dtype=torch.float64)
    x_coarse, y, logdet = pyramid_map.split(x)
    restored, inverse_logdet = pyramid_map.merge(x_coarse, y)
    assert (restored - x).abs().max().item() < 1e-12
    assert torch.equal(inverse_logdet, -logdet)


@pytest.mark.parametrize("name", MAPS)
def test_split_logdet_per_image(name):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    _, _, logdet = get_pyramid_map(name).split(x)
    expected = 3 * 4 * 4 * math.log(EXPECTED_DET[name])
    assert logdet.shape == (2,)
    assert logdet.tolist() == pytest.approx([expected, expected], abs=1e-12)


@pytest.mark.parametrize("shape", [(1, 3, 7, 8), (1, 3, 8, 5), (1, 1, 1, 1)])
def test_odd_size_rejected(shape):
    with pytest.raises(ImageSizeError, match=rf"{shape[2]}x{shape[3]}.*even"):
        get_pyramid_map("mrcnf").split(torch.zeros(shape))


def test_pyramid_size_not_divisible():
    with pytest.raises(ImageSizeError, match=r"12x12 is not divisible by 2\^3 = 8"):
        build_pyramid(torch.zeros(1, 3, 12, 12), get_pyramid_map("mrcnf"), 3)


def test_pyramid_orders_coarse_to_fine():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    pyramid = build_pyramid(x, get_pyramid_map("haar"), 2)
    assert [tuple(image.shape[-2:]) for image in pyramid.images] == [(2, 2), (4, 4), (8, 8)]
    assert [tuple(y.shape) for y in pyramid.details] == [(2, 3, 2, 2), (2, 3, 4, 4)]
    assert torch.equal(pyramid.images[-1], x)
    assert torch.allclose(pyramid.images[0], x.reshape(2, 1, 2, 4, 2, 4).mean(dim=(3, 5)), atol=1e-15)
    assert pyramid.logdet.tolist() == pytest.approx([20 * math.log(0.5)] * 2, abs=1e-12)


def test_unknown_map_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown pyramid map 'wavelet'; choose one of: haar, mrcnf"):
        get_pyramid_map("wavelet")
    assert set(PYRAMID_MAPS) == {"mrcnf", "haar"}

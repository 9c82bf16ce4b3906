import math

import numpy as np
import pytest
import torch

from mrcnf_cli import MultiResFlow
from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.errors import ImageSizeError, InputError
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.stack import multires_base_std

from helpers import randomize

TIGHT = SolverConfig("dopri5", atol=1e-9, rtol=1e-9)


def numpy_pyramid(x, k, splits):
    """Return the coarse-to-fine variables (coarsest image, then details) and the block count."""
    variables = []
    blocks = 0
    for _ in range(splits):
        a, b = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]
        c, d = x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
        variables.append(np.concatenate([(a + b - c - d) / k, (a - b + c - d) / k, (a - b - c + d) / k], axis=1))
        x = (a + b + c + d) / 4
        blocks += x[0].size
    variables.append(x)
    return variables[::-1], blocks


def closed_form_bpd(images, noise, *, k, logit, alpha, num_levels, stds):
    """BPD of an identity-flow stack, computed from the model's equations with numpy alone."""
    x = (images.astype(np.float64) + noise) / 256
    variables, blocks = numpy_pyramid(x, k, num_levels - 1)
    logp = np.zeros(len(images))
    for index, (v, std) in enumerate(zip(variables, stds)):
        low, high = (0.0, 1.0) if index == 0 else (-2 / k, 2 / k)
        if logit:
            s = alpha + (1 - 2 * alpha) * (v - low) / (high - low)
            u = np.log(s / (1 - s))
            logdet = (np.log((1 - 2 * alpha) / (high - low)) - np.log(s) - np.log(1 - s)).reshape(len(v), -1).sum(1)
        else:
            u, logdet = v, 0.0
        gaussian = -0.5 * (u / std) ** 2 - 0.5 * np.log(2 * np.pi) - np.log(std)
        logp += gaussian.reshape(len(v), -1).sum(1) + logdet
    logp += blocks * np.log(4 / k**3)
    dimensions = images[0].size
    return -logp / (dimensions * np.log(2)) + 8


def fixed_batch(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    noise = torch.rand(shape, generator=generator, dtype=torch.float64)
    return images, noise


@pytest.mark.parametrize("map_name,k", [("mrcnf", 2 ** (2 / 3)), ("haar", 2.0)])
@pytest.mark.parametrize("logit", [True, False])
@pytest.mark.parametrize("num_levels", [1, 2, 3])
def test_fresh_stack_matches_closed_form(map_name, k, logit, num_levels):
    stack = MultiResFlow.build(8, num_levels, map=map_name, logit=logit, cnf=CNFConfig(hidden=(4,))).double().eval()
    images, noise = fixed_batch((3, 3, 8, 8))

    with torch.no_grad():
        result = stack.log_prob(images, noise=noise)

    expected = closed_form_bpd(images.numpy(), noise.numpy(), k=k, logit=logit, alpha=0.05,
                               num_levels=num_levels, stds=[1.0] * num_levels)
    assert np.abs(result.bpd.numpy() - expected).max() < 1e-9


@pytest.mark.parametrize("map_name,k", [("mrcnf", 2 ** (2 / 3)), ("haar", 2.0)])
def test_multires_noise_matches_closed_form(map_name, k):
    stack = MultiResFlow.build(8, 3, map=map_name, multires_noise=True, cnf=CNFConfig(hidden=(4,))).double().eval()
    images, noise = fixed_batch((2, 3, 8, 8), seed=1)

    with torch.no_grad():
        result = stack.log_prob(images, noise=noise)

    # Unit variance at 8x8: 2x2 means have variance 1/16, 4x4 details 4 (1/4) / k^2, 8x8 details 4 / k^2.
    stds = [1 / 4, math.sqrt(1 / k**2), math.sqrt(4 / k**2)]
    expected = closed_form_bpd(images.numpy(), noise.numpy(), k=k, logit=True, alpha=0.05, num_levels=3, stds=stds)
    assert np.abs(result.bpd.numpy() - expected).max() < 1e-9


def test_multires_noise_changes_likelihood():
    images, noise = fixed_batch((2, 3, 8, 8), seed=2)
    unit = MultiResFlow.build(8, 3, cnf=CNFConfig(hidden=(4,))).double().eval()
    scaled = MultiResFlow.build(8, 3, multires_noise=True, cnf=CNFConfig(hidden=(4,))).double().eval()
    with torch.no_grad():
        difference = (unit.log_prob(images, noise=noise).bpd - scaled.log_prob(images, noise=noise).bpd).abs()
    assert difference.min() > 1e-3


def test_mrcnf_detail_std_is_k():
    from mrcnf_cli.multires import get_pyramid_map

    pyramid_map = get_pyramid_map("mrcnf")
    assert multires_base_std(pyramid_map, 1, conditional=True) ** 2 == pytest.approx(pyramid_map.k, rel=1e-14)


def test_shares_add_up_to_total():
    stack = randomize(MultiResFlow.build(8, 3, map="haar", cnf=CNFConfig(hidden=(4,))), std=0.1).eval()
    images, _ = fixed_batch((4, 3, 8, 8))

    with torch.no_grad():
        result = stack.log_prob(images, generator=torch.Generator().manual_seed(0))

    assert result.level_bpd.shape == (4, 3)
    assert torch.equal(result.level_bpd.sum(1) + result.map_bpd, result.bpd)
    direct = -result.logp.double() / (3 * 8 * 8 * math.log(2)) + 8
    assert (direct - result.bpd).abs().max() < 1e-5
    assert result.map_bpd.tolist() == pytest.approx([(48 + 12) * math.log2(2) / 192] * 4)
    assert len(result.nfe) == 3
    assert min(result.nfe) > 0


def small_random_stack(trace="hutchinson", solver=TIGHT, seed=0):
    config = CNFConfig(hidden=(8,), trace=trace, eval_solver=solver)
    stack = MultiResFlow.build(4, 2, channels=1, cnf=config).double()
    return randomize(stack, std=0.2, seed=seed).eval()


def test_decode_inverts_encode():
    stack = MultiResFlow.build(8, 3, cnf=CNFConfig(hidden=(8,), eval_solver=TIGHT)).double()
    randomize(stack, std=0.1, seed=1).eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        zs = stack.encode(x)
        restored = stack.decode(zs)

    assert [tuple(z.shape[1:]) for z in zs] == [(3, 2, 2), (9, 2, 2), (9, 4, 4)]
    assert (restored - x).abs().max() < 1e-5


def test_sample_then_encode_returns_noise():
    stack = small_random_stack(seed=2)
    generator = torch.Generator().manual_seed(0)
    zs = [level.sample_base(3, generator=generator) for level in stack.levels]

    with torch.no_grad():
        encoded = stack.encode(stack.decode(zs))

    for z, z_back in zip(zs, encoded):
        assert (z - z_back).abs().max() < 1e-5


@pytest.mark.parametrize("solver,tolerance", [(SolverConfig("rk4", step_size=0.1), 1e-12), (TIGHT, 1e-6)])
def test_batch_size_does_not_change_logp(solver, tolerance):
    stack = small_random_stack(trace="exact", solver=solver, seed=3)
    images, noise = fixed_batch((4, 1, 4, 4), seed=3)

    with torch.no_grad():
        together = stack.log_prob(images, noise=noise).logp
        alone = torch.cat([stack.log_prob(images[i : i + 1], noise=noise[i : i + 1]).logp for i in range(4)])

    assert (together - alone).abs().max() < tolerance


def test_coarser_resolution_uses_coarser_levels():
    stack = randomize(MultiResFlow.build(8, 3, cnf=CNFConfig(hidden=(4,))), std=0.1).eval()
    images, noise = fixed_batch((2, 3, 4, 4))
    with torch.no_grad():
        result = stack.log_prob(images, noise=noise.float())
    assert result.sizes == [(2, 2), (4, 4)]
    assert result.level_bpd.shape == (2, 2)


def test_temperature_zero_gives_identical_samples():
    stack = small_random_stack(seed=4)
    with torch.no_grad():
        samples = stack.sample(4, temperature=0.0, generator=torch.Generator().manual_seed(0))
    assert (samples - samples[0]).abs().max() == 0


def test_superres_keeps_block_means():
    stack = small_random_stack(seed=5)
    coarse = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        fine = stack.superres(coarse, generator=torch.Generator().manual_seed(0))
    assert fine.shape == (3, 1, 4, 4)
    assert (fine.reshape(3, 1, 2, 2, 2, 2).mean(dim=(3, 5)) - coarse).abs().max() < 1e-14


@pytest.mark.parametrize("shape,message", [
    ((1, 3, 6, 6), "image size 6x6 matches no level of this stack; it accepts 02x02|2x2"),
    ((1, 1, 8, 8), r"images must have shape \(B, 3, H, W\)"),
])
def test_wrong_images_rejected(shape, message):
    stack = MultiResFlow.build(8, 3, cnf=CNFConfig(hidden=(4,)))
    with pytest.raises(InputError, match=message):
        stack.log_prob(torch.zeros(shape, dtype=torch.uint8))


def test_fractional_pixels_rejected():
    stack = MultiResFlow.build(4, 1, cnf=CNFConfig(hidden=(4,)))
    with pytest.raises(InputError, match="integer pixel values"):
        stack.log_prob(torch.full((1, 3, 4, 4), 0.5))


def test_size_not_divisible_rejected():
    with pytest.raises(ImageSizeError, match=r"image size 12x12 is not divisible by 2\^3 = 8"):
        MultiResFlow.build(12, 4)


@pytest.mark.parametrize("temperature", [-1.0, float("nan")])
def test_bad_temperature_rejected(temperature):
    stack = MultiResFlow.build(4, 2, cnf=CNFConfig(hidden=(4,)))
    with pytest.raises(InputError, match="temperature must be a number >= 0"):
        stack.sample(1, temperature=temperature)

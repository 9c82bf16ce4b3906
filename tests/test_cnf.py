import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import mrcnf_cli.cnf as cnf_module
from mrcnf_cli.cnf import CNFBlock, CNFConfig, draw_probe, exact_divergence, hutchinson_terms
from mrcnf_cli.dynamics import DynamicsNet
from mrcnf_cli.errors import InputError, UnknownNameError
from mrcnf_cli.solvers import SolverConfig

from helpers import brute_force_jacobian, randomize

TIGHT = SolverConfig("dopri5", atol=1e-10, rtol=1e-10)


def random_net(channels=2, context_channels=0, seed=0):
    net = DynamicsNet(channels, context_channels=context_channels, hidden=(8, 8))
    return randomize(net.double(), seed=seed)


def reference_field(net, t, x, context=None):
    """Compute the network's field from its weights, with a plain concatenation and softplus at each layer."""
    h = x if context is None else torch.cat([x, context], dim=1)
    for index, layer in enumerate(net.layers):
        time_channel = t.to(h).expand(h.shape[0], 1, h.shape[2], h.shape[3])
        h = F.conv2d(torch.cat([time_channel, h], dim=1), layer.conv.weight, layer.conv.bias, padding=1)
        if index < len(net.layers) - 1:
            h = F.softplus(h)
    return h


def field_jacobian(net, t, x, context=None):
    return brute_force_jacobian(lambda value: net(t, value, context), x)


def test_new_network_is_zero_field():
    net = DynamicsNet(3, context_channels=3)
    x, context = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.count_nonzero(net(torch.tensor(0.3), x, context)) == 0


def test_new_block_is_identity():
    block = CNFBlock(3).double().eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    z, logdet = block(x)
    # dopri5 interpolates its output at T, which costs a few units of rounding.
    assert (z - x).abs().max() < 1e-13
    assert torch.count_nonzero(logdet) == 0


def test_exact_trace_matches_brute_force():
    net = random_net()
    x = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.4, dtype=torch.float64)

    divergence, frobenius = exact_divergence(net(t, x), x, create_graph=False)

    jacobian = field_jacobian(net, t, x.detach())
    assert divergence.item() == pytest.approx(torch.trace(jacobian).item(), abs=1e-12)
    assert frobenius.item() == pytest.approx(jacobian.pow(2).sum().item(), abs=1e-12)


@pytest.mark.parametrize("context_channels", [0, 2])
def test_field_equals_reference(context_channels):
    net = random_net(context_channels=context_channels, seed=4)
    x = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    context = torch.randn(3, context_channels, 4, 5, dtype=torch.float64) if context_channels else None
    t = torch.tensor(0.7, dtype=torch.float64)

    expected = reference_field(net, t, x, context)
    with torch.no_grad():
        assert torch.allclose(net(t, x, context), expected, rtol=0, atol=1e-13)
    assert torch.allclose(net(t, x, context), expected, rtol=0, atol=1e-13)


def test_field_gradients_equal_reference():
    """Backpropagation through the field matches the reference, also to t, which the adjoint method uses."""
    net = random_net(context_channels=1, seed=7)
    x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    context = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    t = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 2, 3, 4, dtype=torch.float64)
    inputs = (t, x, *net.parameters())

    gradients = torch.autograd.grad((net(t, x, context) * weights).sum(), inputs)
    expected = torch.autograd.grad((reference_field(net, t, x, context) * weights).sum(), inputs)

    assert max(torch.linalg.norm(a - b) / torch.linalg.norm(b) for a, b in zip(gradients, expected)) < 1e-12


@pytest.mark.parametrize("context_channels", [0, 2])
def test_written_out_vjp_equals_autograd(context_channels):
    net = random_net(context_channels=context_channels, seed=5)
    x = torch.randn(3, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    context = torch.randn(3, context_channels, 4, 5, dtype=torch.float64) if context_channels else None
    t = torch.tensor(0.7, dtype=torch.float64)
    e = torch.randn_like(x)

    dx, vjp = net.forward_and_vjp(t, x, context, e)
    expected_dx = reference_field(net, t, x, context)
    expected_vjp = torch.autograd.grad(expected_dx, x, e, create_graph=True)[0]

    assert torch.allclose(dx, expected_dx, rtol=0, atol=1e-13)
    assert torch.allclose(vjp, expected_vjp, rtol=0, atol=1e-13)


@pytest.mark.parametrize("field", ["reference", "network"])
def test_written_out_vjp_has_the_double_backward_gradients(field):
    """Training backpropagates through the written-out product; its gradients must be autograd's.

    Against the network's own field, this also checks that its activation can be differentiated
    twice, as the exact trace does.
    """
    net = random_net(context_channels=1, seed=6)
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    context = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    e = torch.randn_like(x)
    inputs = (x, *net.parameters())

    def loss(dx, vjp):
        return (vjp * e).sum() + 0.5 * vjp.pow(2).sum() + dx.pow(2).sum()

    dx, vjp = net.forward_and_vjp(t, x, context, e)
    written_out = torch.autograd.grad(loss(dx, vjp), inputs)
    dx = reference_field(net, t, x, context) if field == "reference" else net(t, x, context)
    vjp = torch.autograd.grad(dx, x, e, create_graph=True)[0]
    double_backward = torch.autograd.grad(loss(dx, vjp), inputs)

    assert max(torch.linalg.norm(a - b) / torch.linalg.norm(b) for a, b in zip(written_out, double_backward)) < 1e-12


def test_hutchinson_mean_within_three_standard_errors():
    net = random_net(seed=1)
    x = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.2, dtype=torch.float64)
    exact = torch.trace(field_jacobian(net, t, x.detach())).item()

    generator = torch.Generator().manual_seed(0)
    for kind in ("gaussian", "rademacher"):
        estimates = []
        for _ in range(4000):
            probe = draw_probe(x, kind, generator)
            _, vjp = net.forward_and_vjp(t, x, None, probe)
            estimate, _ = hutchinson_terms(vjp, probe)
            estimates.append(estimate.item())
        estimates = torch.tensor(estimates, dtype=torch.float64)
        standard_error = estimates.std().item() / math.sqrt(len(estimates))
        assert abs(estimates.mean().item() - exact) < 3 * standard_error, kind


def test_rademacher_probe_is_plus_minus_one():
    probe = draw_probe(torch.zeros(1000), "rademacher", torch.Generator().manual_seed(0))
    assert set(probe.unique().tolist()) == {-1.0, 1.0}


def test_one_solve_sees_one_probe(monkeypatch):
    seen = []
    original = cnf_module.hutchinson_terms

    def recording(vjp, probe):
        seen.append(probe)
        return original(vjp, probe)

    monkeypatch.setattr(cnf_module, "hutchinson_terms", recording)
    block = randomize(CNFBlock(2, config=CNFConfig(hidden=(8,)))).eval()
    block(torch.randn(3, 2, 4, 4))

    assert len(seen) == block.nfe > 6
    assert all(probe is seen[0] for probe in seen)


def test_integrated_divergence_equals_flow_logdet():
    """Change of variables: logdet from the ODE equals log|det| of the brute-force Jacobian of x -> z."""
    config = CNFConfig(hidden=(8, 8), trace="exact", eval_solver=TIGHT)
    block = randomize(CNFBlock(3, config=config).double(), std=0.4, seed=3).eval()
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64)

    z, logdet = block(x)
    jacobian = brute_force_jacobian(lambda value: block(value)[0], x)
    _, brute_force_logdet = torch.linalg.slogdet(jacobian)

    assert (z - x).abs().max() > 0.1
    assert logdet.item() == pytest.approx(brute_force_logdet.item(), abs=1e-7)


def test_conditional_logdet_equals_flow_logdet():
    config = CNFConfig(hidden=(8,), trace="exact", eval_solver=TIGHT)
    block = randomize(CNFBlock(3, context_channels=1, config=config).double(), std=0.4, seed=4).eval()
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    context = torch.randn(1, 1, 2, 2, dtype=torch.float64)

    _, logdet = block(x, context)
    jacobian = brute_force_jacobian(lambda value: block(value, context)[0], x)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), abs=1e-7)


def test_inverse_returns_data():
    config = CNFConfig(hidden=(8,), eval_solver=TIGHT)
    block = randomize(CNFBlock(2, context_channels=2, config=config).double(), seed=5).eval()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    context = torch.randn(2, 2, 4, 4, dtype=torch.float64)

    z, _ = block(x, context)
    assert (z - x).abs().max() > 0.1
    assert (block.inverse(z, context) - x).abs().max() < 1e-7


def test_fixed_grid_counts_evaluations():
    block = CNFBlock(1, config=CNFConfig(hidden=(4,), eval_solver=SolverConfig("rk4", step_size=0.25))).eval()
    block(torch.randn(1, 1, 2, 2))
    assert block.nfe == 4 * 4


def test_euler_step_regularisers_match_hand_computation():
    """One Euler step over [0, 1]: every state is one evaluation of the field at (0, x)."""
    solver = SolverConfig("euler", step_size=1.0)
    block = CNFBlock(2, config=CNFConfig(hidden=(8,), train_solver=solver, eval_solver=solver)).double()
    randomize(block, seed=6).train()
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    probe = torch.randn_like(x)
    t = torch.tensor(0.0, dtype=torch.float64)

    z, logdet = block(x, probe=probe)

    field = block.net(t, x)
    jacobian = field_jacobian(block.net, t, x)
    vector = probe.reshape(-1)
    dimensions = x.numel()
    assert torch.allclose(z, x + field, atol=1e-12)
    assert logdet.item() == pytest.approx((vector @ jacobian @ vector).item(), abs=1e-10)
    assert block.regularization[0, 0].item() == pytest.approx(field.pow(2).sum().item() / dimensions, abs=1e-12)
    assert block.regularization[0, 1].item() == pytest.approx(
        (vector @ jacobian).pow(2).sum().item() / dimensions, abs=1e-10
    )


def test_evaluation_integrates_no_regularisers():
    block = randomize(CNFBlock(2, config=CNFConfig(hidden=(4,)))).eval()
    block(torch.randn(1, 2, 2, 2))
    assert block.regularization is None


def test_regularisers_do_not_change_adaptive_steps():
    solver = SolverConfig("bosh3", atol=1e-4, rtol=1e-4)
    block = CNFBlock(2, config=CNFConfig(hidden=(8,), train_solver=solver, eval_solver=solver)).double()
    randomize(block, seed=7)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    probe = torch.randn_like(x)

    z_eval, logdet_eval = block.eval()(x, probe=probe)
    nfe_eval = block.nfe
    z_train, logdet_train = block.train()(x, probe=probe)

    assert block.nfe == nfe_eval
    assert torch.allclose(z_train, z_eval, atol=1e-12)
    assert torch.allclose(logdet_train, logdet_eval, atol=1e-12)


def test_fixed_grid_solver_needs_step_size():
    with pytest.raises(InputError, match="fixed-grid solver 'rk4' needs a step size"):
        SolverConfig("rk4")


def test_adaptive_solver_warns_about_step_size():
    with pytest.warns(UserWarning, match="adaptive solver 'dopri5' ignores the step size 0.1"):
        config = SolverConfig("dopri5", step_size=0.1)
    assert "step_size" not in config.odeint_kwargs(2)["options"]


@pytest.mark.parametrize("values", [{"atol": 0}, {"rtol": -1e-3}, {"atol": float("nan")}])
def test_bad_tolerance_rejected(values):
    with pytest.raises(InputError, match="must be a positive number"):
        SolverConfig("dopri5", **values)


def test_bad_step_size_rejected():
    with pytest.raises(InputError, match="step size must be a positive number, got -0.5"):
        SolverConfig("euler", step_size=-0.5)


def test_unknown_solver_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown ODE solver 'rk45'; choose one of: adaptive_heun, bosh3"):
        SolverConfig("rk45")


def test_adaptive_solver_without_step_size_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SolverConfig("bosh3", atol=1e-3, rtol=1e-3)


def test_config_round_trips_through_dict():
    config = CNFConfig(hidden=(16, 32), trace="exact", probe="rademacher", eval_solver=SolverConfig("rk4", step_size=0.1))
    assert CNFConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("solver", [SolverConfig("dopri5", atol=1e-9, rtol=1e-9), SolverConfig("rk4", step_size=0.05)])
def test_adjoint_gradients_match_backpropagation(solver):
    gradients = {}
    for adjoint in (False, True):
        config = CNFConfig(hidden=(8,), train_solver=solver, eval_solver=solver, adjoint=adjoint)
        block = randomize(CNFBlock(2, context_channels=1, config=config).double(), std=0.3, seed=8).train()
        x = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        context = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        probe = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

        z, logdet = block(x, context, probe=probe)
        loss = z.pow(2).sum() - logdet.sum() + block.regularization.sum()
        loss.backward()
        gradients[adjoint] = torch.cat([parameter.grad.flatten() for parameter in block.parameters()])

    relative = (gradients[True] - gradients[False]).norm() / gradients[False].norm()
    assert relative < 1e-4


def test_step_limit_raises_solver_error():
    from mrcnf_cli.errors import SolverError

    solver = SolverConfig("dopri5", atol=1e-12, rtol=1e-12, max_steps=3)
    block = randomize(CNFBlock(2, config=CNFConfig(hidden=(8,), eval_solver=solver)), std=1.0).eval()
    with pytest.raises(SolverError, match="dopri5 solver needed more than 3 steps"):
        block(torch.randn(1, 2, 4, 4))
    with pytest.raises(SolverError, match="more than 3 steps"):
        block.inverse(torch.randn(1, 2, 4, 4))


def test_bad_max_steps_rejected():
    with pytest.raises(InputError, match="max steps must be a positive integer, got 0"):
        SolverConfig("dopri5", max_steps=0)

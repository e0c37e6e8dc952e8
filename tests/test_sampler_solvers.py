"""Schedules and solvers on problems with known answers."""
import math

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.sampler.schedules import T_MAX, flow_sigmas, shift_sigma
from comfyui_spacetime.sampler.solvers import SOLVERS, get_solver, sample_unipc


def test_shift_maps_time_to_sigma():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert torch.equal(shift_sigma(t, 1.0), t)
    assert shift_sigma(t, 8.0).tolist() == pytest.approx([0.0, 2 / 2.75, 4 / 4.5, 1.0])
    assert (shift_sigma(t, 3.0)[1:3] > t[1:3]).all()  # shift > 1 spends more steps at high noise


def test_flow_sigmas_endpoints_and_length():
    sigmas = flow_sigmas(20, 8.0)
    assert len(sigmas) == 21 and sigmas[-1] == 0
    assert sigmas[0] == pytest.approx(8 * T_MAX / (1 + 7 * T_MAX))  # Wan starts one training step below 1
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert flow_sigmas(4, 3.0).float().tolist() == pytest.approx(
        [3 * t / (1 + 2 * t) for t in torch.linspace(T_MAX, 0, 5, dtype=torch.float64).tolist()], abs=1e-7)


def test_flow_sigmas_denoise_keeps_the_tail_of_a_longer_schedule():
    full = flow_sigmas(40, 5.0)
    partial = flow_sigmas(20, 5.0, denoise=0.5)
    assert len(partial) == 21 and torch.equal(partial, full[-21:])
    with pytest.raises(SpacetimeError, match="denoise"):
        flow_sigmas(20, 5.0, denoise=0.0)
    with pytest.raises(SpacetimeError, match="steps"):
        flow_sigmas(0, 5.0)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_each_solver_is_exact_on_a_straight_line(name):
    """A constant x0 makes the flow a straight line from noise to x0: every solver must land on it exactly."""
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)
    sigmas = torch.linspace(0.9, 0.2, 6, dtype=torch.float64)  # stop before 0, where each returns x0 by definition
    out = get_solver(name)(lambda x, sigma: x0, sigmas[0] * noise + (1 - sigmas[0]) * x0, sigmas)
    torch.testing.assert_close(out, 0.2 * noise + 0.8 * x0, rtol=0, atol=1e-12)


MU, SD = 0.7, 0.3  # data distribution N(MU, SD^2): its flow-matching denoiser and ODE solution are closed-form


def _gaussian_denoiser(x, sigma):
    a, s = 1 - float(sigma), float(sigma)
    return MU + a * SD ** 2 / (a * a * SD ** 2 + s * s) * (x - a * MU)


def _exact(z, sigma):
    a = 1 - sigma
    return a * MU + math.sqrt(a * a * SD ** 2 + sigma ** 2) * z


def _error(name, steps, z):
    sigmas = torch.linspace(0.95, 0.05, steps + 1, dtype=torch.float64)
    out = SOLVERS[name](_gaussian_denoiser, _exact(z, 0.95), sigmas)
    return (out - _exact(z, 0.05)).abs().max().item()


@pytest.mark.parametrize("name, low, high", [("euler", 1.8, 2.2), ("dpmpp_2m", 3.4, 4.6), ("unipc", 3.2, 6.0)])
def test_convergence_order(name, low, high):
    """Halving the step size divides the error by ~2 (first order) or ~4 (second order)."""
    z = torch.linspace(-2, 2, 9, dtype=torch.float64)
    ratio = _error(name, 32, z) / _error(name, 64, z)
    assert low < ratio < high


def test_unipc_matches_wan_reference_scheduler():
    """Values recorded from Wan2.1 wan/utils/fm_solvers_unipc.py (FlowUniPCMultistepScheduler, 6 steps, shift 5)."""
    w = ((torch.arange(16.0).view(4, 4) % 5 - 2) * 0.15).double()

    def denoiser(x, sigma):
        v = torch.tanh(x @ w) + 0.5 * sigma * x
        return x - sigma * v

    x = torch.tensor([[0.5, -1.0, 1.5, 0.25], [-0.75, 0.3, -0.2, 1.0]], dtype=torch.float64)
    sigmas = flow_sigmas(6, 5.0)
    reference_sigmas = [0.9997998476028442, 0.9613164067268372, 0.9088428020477295, 0.8330553770065308,
                        0.7139794230461121, 0.4996998906135559, 0.0]
    assert sigmas.tolist() == pytest.approx(reference_sigmas, abs=1e-7)
    reference = torch.tensor([[0.603575615429148, -1.266041301467782, 1.2268455050691338, 0.37015300033279164],
                              [-0.7580611510765015, 0.1214921385231295, -0.44710120794092734, 1.0376627456353102]],
                             dtype=torch.float64)
    torch.testing.assert_close(sample_unipc(denoiser, x, sigmas), reference, rtol=0, atol=1e-6)


def test_solver_callback_sees_every_step():
    seen = []
    SOLVERS["unipc"](lambda x, s: x * 0, torch.ones(3), flow_sigmas(5, 3.0), callback=lambda d: seen.append(d["i"]))
    assert seen == [0, 1, 2, 3, 4]


def test_unknown_solver_lists_choices():
    with pytest.raises(ValueError, match="dpmpp_2m.*euler.*unipc"):
        get_solver("heun")
    with pytest.raises(SpacetimeError):
        get_solver("heun")

"""ODE solvers for flow matching, k-diffusion style: `sample_x(model, x, sigmas, extra_args=None, callback=None)`.

The model contract is one line: `denoised = model(x, sigma, **extra_args)` (the x0 estimate; sigma a 0-dim tensor).
Sigmas descend in (0, 1) and end in 0. The multistep solvers work in the flow parameterisation alpha = 1 - sigma,
lambda = log(alpha / sigma); each is exact when the denoised estimate is constant (a straight-line trajectory).
"""
import torch

from ..core.errors import SpacetimeError

ORDER = 2  # UniPC and DPM++ 2M use two model evaluations per update, as Wan's reference scheduler does


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    """Half log-SNR of x_t = sigma*noise + (1-sigma)*x0."""
    return torch.log1p(-sigma) - torch.log(sigma)


def _notify(callback, x, i, sigma, denoised):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


def _evaluate(model, x, sigma, extra_args):
    return model(x, sigma.to(x.dtype), **(extra_args or {}))


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None):
    """Euler on the probability-flow ODE dx/dsigma = (x - x0) / sigma (Karras et al. 2022, Alg. 2 without churn)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _evaluate(model, x, sigma, extra_args)
        _notify(callback, x, i, sigma, denoised)
        velocity = (x - denoised) / sigma.to(x.dtype)
        x = x + velocity * (sigma_next - sigma).to(x.dtype)
    return x


def _exp_step(x, sigma, sigma_next, h, denoised):
    """First-order data-prediction exponential step (DDIM in flow form); `denoised` may be a corrected blend."""
    ratio = (sigma_next / sigma).to(x.dtype)
    return ratio * x - ((1 - sigma_next) * torch.expm1(-h)).to(x.dtype) * denoised


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None):
    """DPM-Solver++(2M) (Lu et al. 2022) with the flow-matching alpha = 1 - sigma."""
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _evaluate(model, x, sigma, extra_args)
        _notify(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised  # the exponential step's limit at sigma 0
            continue
        h = _lam(sigma_next) - _lam(sigma)
        blend = denoised
        if old_denoised is not None:
            r = (h_last / h).to(x.dtype)
            blend = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = _exp_step(x, sigma, sigma_next, h, blend)
        old_denoised, h_last = denoised, h
    return x


def _unipc_coefficients(h: torch.Tensor, rks: list[torch.Tensor], order: int):
    """UniPC's B(h) = expm1(-h) ('bh2'), the matrix R[k] = r^k and the rhs b of R rho = b (Zhao et al. 2023, Alg. 1)."""
    hh = -h
    b_h = torch.expm1(hh)
    h_phi_k = b_h / hh - 1
    factorial, b = 1, []
    for k in range(1, order + 1):
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    rows = torch.stack([torch.stack(rks) ** (k - 1) for k in range(1, order + 1)])  # (order, order)
    return b_h, rows, torch.stack(b)


def _predictor_rhos(rows: torch.Tensor, b: torch.Tensor, order: int) -> torch.Tensor:
    """UniP weights of the past differences; order 2 uses the closed form 1/2, as the reference does."""
    if order == 1:
        return b.new_zeros(0)
    if order == 2:
        return b.new_full((1,), 0.5)
    return torch.linalg.solve(rows[:-1, :-1], b[:-1])


def _unipc_update(x, sigma, sigma_next, history, model_t, order):
    """One UniP predictor (model_t None) or UniC corrector (model_t = the evaluation at sigma_next) update.

    `history` holds (sigma, denoised) of past evaluations, newest last; history[-1] is at `sigma`.
    """
    lam_s0, m0 = _lam(sigma), history[-1][1]
    h = _lam(sigma_next) - lam_s0
    rks = [(_lam(s_k) - lam_s0) / h for s_k, _ in reversed(history[-order:-1])] + [torch.ones_like(h)]
    diffs = [(m_k - m0) / r.to(x.dtype) for (_, m_k), r in zip(reversed(history[-order:-1]), rks)]
    b_h, rows, b = _unipc_coefficients(h, rks, order)
    if model_t is None:
        rhos = _predictor_rhos(rows, b, order)
    else:
        rhos = torch.full((1,), 0.5, dtype=h.dtype) if order == 1 else torch.linalg.solve(rows, b)
        diffs = diffs + [model_t - m0]
    residual = sum((rho.to(x.dtype) * d for rho, d in zip(rhos, diffs)), torch.zeros_like(x))
    base = _exp_step(x, sigma, sigma_next, h, m0)
    return base - ((1 - sigma_next) * b_h).to(x.dtype) * residual


@torch.no_grad()
def sample_unipc(model, x, sigmas, extra_args=None, callback=None):
    """UniPC-bh2, order 2, x0-prediction (Zhao et al. 2023), as Wan's FlowUniPCMultistepScheduler runs it."""
    history, x_before, last_order = [], None, 0
    steps = len(sigmas) - 1
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _evaluate(model, x, sigma, extra_args)
        _notify(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised  # the final first-order step's limit; a correction of x would be multiplied by 0
            break
        if history:
            x = _unipc_update(x_before, sigmas[i - 1], sigma, history, denoised, last_order)
        history = (history + [(sigma, denoised)])[-ORDER:]
        last_order = min(ORDER, steps - i, len(history))  # warm up, and lower the order on the final step
        x_before = x
        x = _unipc_update(x, sigma, sigma_next, history, None, last_order)
    return x


SOLVERS = {"unipc": sample_unipc, "euler": sample_euler, "dpmpp_2m": sample_dpmpp_2m}


def get_solver(name: str):
    """The solver function for `name`; unknown names raise SpacetimeError (a ValueError) listing the choices."""
    if name not in SOLVERS:
        raise SpacetimeError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[name]

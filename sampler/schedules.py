"""Sigma schedules for flow matching as Wan samples it: x_t = sigma*noise + (1-sigma)*x0, model timestep sigma*1000."""
import torch

from ..core.errors import SpacetimeError

# Wan's FlowUniPCMultistepScheduler starts one training timestep below pure noise (t = 1 - 1/1000), never at 1:
# log-SNR is -inf at sigma = 1, which the multistep solvers cannot take.
T_MAX = 1.0 - 1.0 / 1000


def shift_sigma(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan/SD3 time shift: spends more steps at high noise as `shift` grows (shift 1 is the identity)."""
    return shift * t / (1 + (shift - 1) * t)


def flow_sigmas(steps: int, shift: float, denoise: float = 1.0) -> torch.Tensor:
    """`steps + 1` descending sigmas ending in 0 (float64, CPU), as Wan's reference sampler sets its timesteps.

    `denoise` < 1 keeps the last `steps` of a `round(steps / denoise)`-step schedule (partial re-noising of an input
    latent), as ComfyUI does.
    """
    if steps < 1:
        raise SpacetimeError(f"steps is {steps}; expected 1 or more (20-50 is usual).")
    if not 0.0 < denoise <= 1.0:
        raise SpacetimeError(f"denoise is {denoise}; expected more than 0 and at most 1 (1 = from pure noise).")
    if not shift > 0:
        raise SpacetimeError(f"shift is {shift}; expected a positive number (5 or 8 for Wan).")
    total = max(steps, round(steps / denoise))
    t = torch.linspace(T_MAX, 0.0, total + 1, dtype=torch.float64)
    return shift_sigma(t, shift)[-(steps + 1):]

"""Text to video with the first frame first: several candidate first windows, and how one is chosen.

The candidates are ranked by the model itself, with no detector and no second model: a window the prompt explains
is one the DiT predicts better with the prompt than without: the diffusion model as its own classifier (Li et al.
2023, "Your diffusion model is secretly a zero-shot classifier"), the log-ratio classifier-free guidance climbs.
spacetime-mini, measured on 120 held-out prompts: docs/EMBEDDED.md, "Best of several first windows".
"""
import torch

# First windows per video by default: one, the seed's own. On spacetime-mini's 120 held-out prompts four drew the
# named colour and direction more often but the named shape and left/right less (docs/EMBEDDED.md), so it is a
# choice, not the default.
FIRST_FRAME_CANDIDATES = 1
MAX_CANDIDATES = 16  # the most first windows per video sample() and the Sampler node take

# Noise levels the agreement is measured at: where a flow-matching DiT decides colours and layout from the prompt
# (spacetime-mini's loss depends on a prompt's colour and direction most at 0.8, docs/EMBEDDED.md `--reliance`).
AGREEMENT_SIGMAS = (0.6, 0.7, 0.8, 0.9)


def stream_after_video(seed: int, video_shape) -> torch.Generator:
    """The seed's CPU noise stream past the video's own noise (`video_shape`, drawn first as sample() draws it).

    Candidates and the agreement's noise come from here, so the same seed gives the same choice, and the agreement
    never noises a candidate with the noise it was sampled from (which would favour that candidate).
    """
    generator = torch.Generator("cpu").manual_seed(seed)
    torch.randn(video_shape, generator=generator)
    return generator


def candidate_noise(generator: torch.Generator, window_shape, count: int) -> torch.Tensor:
    """[B, count, C, t, H, W] noise for `count` extra first windows per video of `window_shape` [B, C, t, H, W]."""
    batch, *window = window_shape
    return torch.randn((batch, count, *window), generator=generator)


@torch.no_grad()
def prompt_agreement(denoiser, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[N] how much better the DiT predicts each clean window x0 [N, C, t, H, W] with the prompt than without.

    The mean over `AGREEMENT_SIGMAS` of (velocity error with the negative prompt - error with the prompt), the
    errors per element. Every window is noised with the same draws from `generator`, so the differences are the
    windows' own. `denoiser`: a Denoiser over the windows' inputs (its negative prompt is the "without").
    """
    agreement = torch.zeros(x0.shape[0], device=x0.device)
    for sigma in AGREEMENT_SIGMAS:
        noise = torch.randn(x0[:1].shape, generator=generator).to(x0).expand_as(x0)
        target = noise - x0  # flow matching's velocity
        v, v_negative = denoiser.velocities(sigma * noise + (1 - sigma) * x0, sigma)
        agreement += _error(v_negative, target) - _error(v, target)
    return agreement / len(AGREEMENT_SIGMAS)


def _error(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (v.float() - target.float()).pow(2).flatten(1).mean(1)

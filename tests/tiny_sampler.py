"""Fakes with known answers for the sampler tests: an oracle DiT, a pooling VAE, and the SpacetimeModel around them."""
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from comfyui_spacetime.core.dit_config import SamplingDefaults
from comfyui_spacetime.core.loaders import SpacetimeModel
from comfyui_spacetime.sampler import TextConditioning
from tests.tiny_dit import tiny_config


class OracleDiT(nn.Module):
    """Predicts the velocity whose x0 is a constant video of value context[0, 0, 0] (the "prompt"), exactly.

    Records every call (input, timestep, prompt value, VACE context) so tests can check what the sampler fed it.
    `offset` is added to its x0 (a second expert that answers differently, or a model that drifts).
    """

    def __init__(self, config, offset: float = 0.0):
        super().__init__()
        self.config, self.offset, self.calls = config, offset, []
        self.device_anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x, timestep, context, vace_context=None, vace_strength=1.0):
        self.calls.append(SimpleNamespace(x=x.clone(), t=timestep.clone(), prompt=float(context[0, 0, 0]),
                                          vace=vace_context))
        x = x[:, :self.config.out_dim]
        per_frame = timestep.view(x.shape[0], 1, -1, 1, 1) if timestep.dim() == 2 else timestep.view(-1, 1, 1, 1, 1)
        sigma = (per_frame / 1000).clamp_min(1e-3)
        target = context[:, 0, 0].view(-1, 1, 1, 1, 1) + self.offset
        return (x - target) / sigma  # v = (x_t - x0) / sigma


def oracle_model(family: str = "t2v", window: int | None = None, boundary: float | None = None,
                 offset_low: float | None = None) -> SpacetimeModel:
    """A SpacetimeModel over OracleDiT(s); `window` pixel frames as its native length; two experts with a boundary."""
    sampling = SamplingDefaults(shift=5.0, steps=4, cfg=1.0, fps=16, frames=window or 81, width=64, height=64,
                                boundary=boundary)
    config = dataclasses.replace(tiny_config(family), sampling=sampling)
    low = OracleDiT(config, offset_low) if offset_low is not None else None
    return SpacetimeModel(OracleDiT(config), config, (Path("oracle.safetensors"),), low_noise=low)


def prompt(value: float, negative: float | None = None, dim: int = 64) -> TextConditioning:
    """A conditioning whose context makes OracleDiT target `value` (and `negative` for the negative prompt)."""
    neg = prompt(negative, dim=dim) if negative is not None else None
    return TextConditioning([(0.0, torch.full((1, 3, dim), float(value)), f"value {value}")], neg)


class PoolingVAE:
    """A VAE with a known encoding: latent frame j = mean of its pixel frames, 8x8 average-pooled, RGB + 1 channel.

    Latents have `channels` channels: the pooled R, G, B, then copies of R. Normalization is the identity.
    Records each encoded pixel video [1, 3, F, H, W].
    """

    def __init__(self, channels: int = 16):
        self.config = SimpleNamespace(compression=(4, 8, 8), latent_channels=channels, latent_mean=(0.0,) * channels,
                                      latent_std=(1.0,) * channels, latent_rgb_factors=(), latent_rgb_factors_bias=())
        self.videos = []

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.videos.append(pixels.clone())
        first, rest = pixels[:, :, :1], pixels[:, :, 1:]
        groups = rest.unflatten(2, (-1, 4)).mean(3) if rest.shape[2] else rest  # [1, 3, (F-1)/4, H, W]
        frames = torch.cat([first, groups], dim=2)  # [1, 3, T, H, W]
        pooled = F.avg_pool3d(frames, (1, 8, 8))  # [1, 3, T, H/8, W/8]
        repeat = self.config.latent_channels // 3 + 1
        return pooled.repeat(1, repeat, 1, 1, 1)[:, :self.config.latent_channels]

    def parameters(self):
        return iter([torch.zeros(())])  # where the sampler finds the VAE's device

    def normalize(self, z):
        return z

    def denormalize(self, z):
        return z

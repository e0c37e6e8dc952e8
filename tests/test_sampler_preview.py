"""Latent -> RGB previews: which map is used, and what it computes."""
from types import SimpleNamespace

import torch

from comfyui_spacetime.sampler.preview import (WAN21_RGB, WAN21_RGB_BIAS, WAN22_RGB, latent_preview,
                                               preview_factors)
from tests.tiny_sampler import PoolingVAE


def test_wan_maps_by_channel_count():
    assert preview_factors(None, 16)[0].shape == (16, 3) and torch.equal(preview_factors(None, 16)[0],
                                                                          torch.tensor(WAN21_RGB))
    assert torch.equal(preview_factors(PoolingVAE(48), 48)[0], torch.tensor(WAN22_RGB))


def test_a_vae_with_its_own_map_uses_it():
    vae = SimpleNamespace(config=SimpleNamespace(latent_rgb_factors=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
                                                 latent_rgb_factors_bias=(0.0, 0.0, 0.5)))
    factors, bias = preview_factors(vae, 2)
    latent = torch.zeros(1, 2, 3, 4, 5)
    latent[:, 0] = 1.0  # red channel at +1 -> full red
    rgb = latent_preview(latent, factors, bias)
    assert rgb.shape == (3, 4, 5, 3)
    assert rgb[0, 0, 0].tolist() == [1.0, 0.5, 0.75]  # (value + 1) / 2


def test_zero_latent_shows_the_bias():
    factors, bias = preview_factors(None, 16)
    rgb = latent_preview(torch.zeros(2, 16, 1, 2, 2), factors, bias)
    torch.testing.assert_close(rgb[0, 0, 0], (torch.tensor(WAN21_RGB_BIAS) + 1) / 2)

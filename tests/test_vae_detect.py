"""Detection of a Wan VAE's config from its keys and shapes: the real presets and tiny variants alike."""

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.vae import VAE_PRESETS, VAEConfig, WanVAE, detect_vae_config

from tests.tiny_vae import FAST_21, TINY_21, TINY_22


def _meta_state_dict(config: VAEConfig) -> dict[str, torch.Tensor]:
    """The keys and shapes a file of this config holds, without allocating its weights."""
    with torch.device("meta"):
        return WanVAE(config).state_dict()


@pytest.mark.parametrize("config", [
    VAE_PRESETS["wan2.1"],
    VAE_PRESETS["wan2.2"],
    TINY_21,
    TINY_22,
    FAST_21,
    VAEConfig("wan2.1", base_dim=8, decoder_base_dim=12, z_dim=8, dim_mult=(1, 2, 3), num_res_blocks=3,
              temporal_downsample=(True, False)),
    VAEConfig("wan2.2", base_dim=8, decoder_base_dim=8, z_dim=8, dim_mult=(1, 2, 2, 4), num_res_blocks=1,
              temporal_downsample=(True, True, False), patch_size=2),
], ids=lambda c: f"{c.variant}-{c.base_dim}-{c.decoder_base_dim}-z{c.z_dim}-{c.dim_mult}-{c.temporal_downsample}")
def test_detects_every_field(config):
    assert detect_vae_config(_meta_state_dict(config)) == config


def test_detection_table():
    table = {name: (c.variant, c.base_dim, c.decoder_base_dim, c.z_dim, c.compression, c.latent_channels)
             for name, c in VAE_PRESETS.items()}
    assert table == {"wan2.1": ("wan2.1", 96, 96, 16, (4, 8, 8), 16),
                     "wan2.2": ("wan2.2", 160, 256, 48, (4, 16, 16), 48)}
    # the reference (Wan-Video wan/modules/vae.py, vae2_2.py) builds 194 and 196 tensors for these
    assert [len(_meta_state_dict(c)) for c in VAE_PRESETS.values()] == [194, 196]


def test_without_metadata_a_nonstandard_z_gets_identity_stats():
    config = detect_vae_config(_meta_state_dict(FAST_21))
    assert config.latent_mean == (0.0,) * 4 and config.latent_std == (1.0,) * 4


def test_not_a_vae_state_dict():
    with pytest.raises(SpacetimeError, match="not a Wan VAE"):
        detect_vae_config({"decoder.conv_in.weight": torch.zeros(1)})

"""Tiny Wan VAEs with random weights, written in the real files' key layout, for the VAE tests."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from comfyui_spacetime.vae import VAEConfig, WanVAE
from comfyui_spacetime.vae.latent_format import WAN21_MEAN, WAN21_STD, WAN22_MEAN, WAN22_STD

# same block layout and latent channels as the real files, widths cut to 4-8
TINY_21 = VAEConfig("wan2.1", base_dim=4, decoder_base_dim=4, z_dim=16, dim_mult=(1, 1, 2, 2),
                    latent_mean=WAN21_MEAN, latent_std=WAN21_STD)
TINY_22 = VAEConfig("wan2.2", base_dim=4, decoder_base_dim=8, z_dim=48, dim_mult=(1, 1, 2, 2), patch_size=2,
                    latent_mean=WAN22_MEAN, latent_std=WAN22_STD)
# fewer levels and blocks (compression 4x4x4, decoder reach ~8 latent pixels): for the slower multi-frame tests
FAST_21 = VAEConfig("wan2.1", base_dim=4, decoder_base_dim=4, z_dim=4, dim_mult=(1, 1, 1), num_res_blocks=1,
                    temporal_downsample=(True, True))


def random_vae(config: VAEConfig, seed: int = 0) -> WanVAE:
    """Random weights scaled so activations stay near unit size and the decoder output is mostly unclamped."""
    generator = torch.Generator().manual_seed(seed)
    vae = WanVAE(config).eval().requires_grad_(False)
    for name, p in vae.named_parameters():
        noise = torch.randn(p.shape, generator=generator)
        if name.endswith("gamma"):
            p.copy_(1 + 0.1 * noise)
        elif p.dim() == 1:  # biases
            p.copy_(0.05 * noise)
        else:
            p.copy_(noise / p[0].numel() ** 0.5)
    return vae


def save_vae(vae: WanVAE, path: Path, dtype: torch.dtype = torch.float32, prefix: str = "",
             metadata: dict[str, str] | None = None) -> Path:
    """Write the VAE as a safetensors file with the Wan key names (optionally under a prefix)."""
    tensors = {prefix + key: value.to(dtype).contiguous() for key, value in vae.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def random_video(config: VAEConfig, frames: int = 5, latent_hw: tuple[int, int] = (2, 3), seed: int = 0) -> torch.Tensor:
    """Pixels [1, 3, frames, H, W] in -1..1 that encode to a latent of `latent_hw`."""
    scale = config.compression[1]
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, latent_hw[0] * scale, latent_hw[1] * scale, generator=generator) * 2 - 1

"""Wan 2.1 / 2.2 causal video VAEs: `load_vae(path)` -> WanVAE (encode, decode, tiled and streamed decode)."""

from pathlib import Path

import torch

from ..core.checkpoint import describe_checkpoint, read_safetensors
from ..core.errors import SpacetimeError
from .cache import CausalCache
from .config import VAE_PRESETS, WAN_VAE_KEY, VAEConfig, detect_vae_config
from .wan_vae import WanVAE

__all__ = ["CausalCache", "VAEConfig", "VAE_PRESETS", "WanVAE", "detect_vae_config", "load_vae", "vae_from_state_dict"]


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> WanVAE:
    """Load a Wan VAE safetensors file (variant and widths read from its shapes) in eval mode, frozen."""
    state_dict, metadata = read_safetensors(path, device=device, dtype=dtype)
    return vae_from_state_dict(state_dict, metadata, dtype=dtype, device=device)


def vae_from_state_dict(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                        dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> WanVAE:
    """Build a WanVAE from an in-memory state dict (any key prefix) on the meta device, then take its tensors."""
    state_dict = _strip_prefix(state_dict)
    config = detect_vae_config(state_dict, metadata)
    with torch.device("meta"):
        vae = WanVAE(config)
    weights = {key: value.to(device=device, dtype=dtype) for key, value in state_dict.items()}
    try:
        vae.load_state_dict(weights, assign=True)
    except RuntimeError as error:
        raise SpacetimeError(
            f"this {config.label} file does not match the layout its shapes imply ({error}); "
            "the file is damaged or not a Wan VAE: re-download it.") from error
    return vae.eval().requires_grad_(False)


def _strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop whatever prefix sits before the Wan VAE keys (e.g. 'first_stage_model.', 'vae.')."""
    marker = next((key for key in state_dict if key.endswith(WAN_VAE_KEY)), None)
    if marker is None:
        raise SpacetimeError(
            f"this file is {describe_checkpoint(state_dict)}. Spacetime Load VAE expects a Wan VAE "
            "(wan_2.1_vae.safetensors, wan2.2_vae.safetensors, or the bundled spacetime-mini VAE).")
    prefix = marker[: -len(WAN_VAE_KEY)]
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}

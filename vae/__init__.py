"""Wan 2.1 / 2.2 causal video VAEs: `load_vae(path)` -> WanVAE (encode, decode, tiled and streamed decode)."""

from pathlib import Path

import torch
from safetensors import safe_open

from ..core.errors import SpacetimeError
from .cache import CausalCache
from .config import VAE_PRESETS, WAN_VAE_KEY, VAEConfig, detect_vae_config
from .wan_vae import WanVAE

__all__ = ["CausalCache", "VAEConfig", "VAE_PRESETS", "WanVAE", "detect_vae_config", "load_vae", "vae_from_state_dict"]


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> WanVAE:
    """Load a Wan VAE safetensors file (variant and widths read from its shapes) in eval mode, frozen."""
    state_dict, metadata = _read_safetensors(Path(path), device)
    return vae_from_state_dict(state_dict, metadata, dtype=dtype, device=device)


def vae_from_state_dict(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                        dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> WanVAE:
    """Build a WanVAE from an in-memory state dict (any key prefix), without a full-size init."""
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


def _read_safetensors(path: Path, device) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise SpacetimeError(f"VAE file {path} does not exist; put the VAE in ComfyUI's models/vae folder.")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            return {key: f.get_tensor(key) for key in f.keys()}, f.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for every kind of bad file
        raise SpacetimeError(
            f"{path.name} could not be read as safetensors ({error}); the file is truncated or in another "
            "format: re-download it.") from error


def _strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop whatever prefix sits before the Wan VAE keys (e.g. 'first_stage_model.', 'vae.')."""
    marker = next((key for key in state_dict if key.endswith(WAN_VAE_KEY)), None)
    if marker is None:
        raise SpacetimeError(_not_a_vae_message(state_dict))
    prefix = marker[: -len(WAN_VAE_KEY)]
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _not_a_vae_message(state_dict: dict[str, torch.Tensor]) -> str:
    keys = list(state_dict)
    if any(key.endswith(("head.modulation", "patch_embedding.weight")) for key in keys):
        found = "a Wan diffusion model (DiT); load it with Spacetime Load Diffusion Model"
    elif any(key.endswith("spiece_model") or ".SelfAttention." in key for key in keys):
        found = "a UMT5 text encoder; load it with Spacetime Load Text Encoder"
    else:
        found = f"not a Wan VAE (first keys: {keys[:3]})"
    return f"this file is {found}. Spacetime Load VAE expects wan_2.1_vae.safetensors or wan2.2_vae.safetensors."

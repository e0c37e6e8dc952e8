"""VAEConfig: the shape of a Wan 2.1 / 2.2 video VAE, its presets, and detection from a state dict."""

import json
import math
import re
from dataclasses import asdict, dataclass, field

import torch

from ..core.errors import SpacetimeError
from .latent_format import WAN21_MEAN, WAN21_STD, WAN22_MEAN, WAN22_STD

VARIANTS = ("wan2.1", "wan2.2")
WAN_VAE_KEY = "decoder.middle.0.residual.0.gamma"  # any Wan VAE
WAN22_VAE_KEY = "decoder.upsamples.0.upsamples.0.residual.2.weight"  # 2.2 nests res blocks in up blocks
METADATA_KEY = "spacetime_config"


@dataclass(frozen=True)
class VAEConfig:
    """Widths and resampling of a Wan causal video VAE.

    `variant` picks the block layout: "wan2.1" (flat res blocks + resamples) or "wan2.2" (res blocks
    grouped per level with average-pool / duplicate shortcuts, 2x2 pixel patchify). An empty
    `latent_mean`/`latent_std` means unnormalized latents (mean 0, std 1).
    """

    variant: str = "wan2.1"
    base_dim: int = 96
    decoder_base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    patch_size: int = 1
    latent_mean: tuple[float, ...] = field(default=())
    latent_std: tuple[float, ...] = field(default=())
    # live-preview map of normalized latents to RGB in -1..1 ([z_dim][3] + bias), stored by the pack's own VAE
    latent_rgb_factors: tuple[tuple[float, ...], ...] = ()
    latent_rgb_factors_bias: tuple[float, ...] = ()

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise SpacetimeError(f"VAE variant {self.variant!r} is unknown; expected one of {VARIANTS}.")
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise SpacetimeError(
                f"temporal_downsample has {len(self.temporal_downsample)} entries but dim_mult has "
                f"{len(self.dim_mult)} levels; give one entry per downsampling step ({len(self.dim_mult) - 1}).")
        if self.patch_size not in (1, 2):
            raise SpacetimeError(f"patch_size {self.patch_size} is not supported; expected 1 or 2.")
        for name in ("latent_mean", "latent_std"):
            values = getattr(self, name)
            if not values:
                object.__setattr__(self, name, (0.0 if name == "latent_mean" else 1.0,) * self.z_dim)
            elif len(values) != self.z_dim:
                raise SpacetimeError(f"{name} has {len(values)} values but z_dim is {self.z_dim}; give one per channel.")

    @property
    def compression(self) -> tuple[int, int, int]:
        """(time, height, width) pixels per latent element, e.g. (4, 8, 8) for Wan 2.1."""
        space = 2 ** (len(self.dim_mult) - 1) * self.patch_size
        return (2 ** sum(self.temporal_downsample), space, space)

    @property
    def latent_channels(self) -> int:
        return self.z_dim

    @property
    def pixel_channels(self) -> int:
        """Channels the encoder sees after patchify (3 for 2.1, 12 for 2.2)."""
        return 3 * self.patch_size ** 2

    @property
    def label(self) -> str:
        return f"{self.variant} VAE ({self.z_dim}-channel latents)"

    def to_metadata(self) -> dict[str, str]:
        """safetensors metadata that makes `detect_vae_config` read this config's mean/std back."""
        return {METADATA_KEY: json.dumps({"component": "vae", **asdict(self)})}


VAE_PRESETS = {
    "wan2.1": VAEConfig("wan2.1", latent_mean=WAN21_MEAN, latent_std=WAN21_STD),
    "wan2.2": VAEConfig("wan2.2", base_dim=160, decoder_base_dim=256, z_dim=48, patch_size=2,
                        latent_mean=WAN22_MEAN, latent_std=WAN22_STD),
}


def detect_vae_config(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> VAEConfig:
    """Read a Wan VAE's variant and widths from its (prefix-free) keys and shapes; mean/std from metadata."""
    if WAN_VAE_KEY not in state_dict:
        raise SpacetimeError(
            f"this state dict has no '{WAN_VAE_KEY}', so it is not a Wan VAE; "
            "load a Wan 2.1 or 2.2 VAE file (e.g. wan_2.1_vae.safetensors).")
    variant = "wan2.2" if WAN22_VAE_KEY in state_dict else "wan2.1"
    conv_in = state_dict["encoder.conv1.weight"]  # (base_dim, 3 * patch**2, 3, 3, 3)
    base_dim = conv_in.shape[0]
    levels = _encoder_levels(state_dict, variant)
    dim_mult = tuple(width // base_dim for width, _, _ in levels)
    z_dim = state_dict["conv2.weight"].shape[0]
    mean, std = _latent_stats(variant, z_dim, metadata)
    return VAEConfig(
        variant=variant,
        base_dim=base_dim,
        decoder_base_dim=state_dict["decoder.head.2.weight"].shape[1] // dim_mult[0],
        z_dim=z_dim,
        dim_mult=dim_mult,
        num_res_blocks=levels[0][1],
        temporal_downsample=tuple(temporal for _, _, temporal in levels[:-1]),
        patch_size=math.isqrt(conv_in.shape[1] // 3),
        latent_mean=mean,
        latent_std=std,
        **_rgb_factors(metadata),
    )


def _encoder_levels(state_dict, variant) -> list[tuple[int, int, bool]]:
    """(width, res blocks, temporal downsample) per encoder level, read from the encoder's keys."""
    levels, width, blocks = [], 0, 0
    for key in _encoder_block_prefixes(state_dict, variant):
        if key + "residual.2.weight" in state_dict:
            width, blocks = state_dict[key + "residual.2.weight"].shape[0], blocks + 1
        elif key + "resample.1.weight" in state_dict:  # a resample closes every level but the last
            levels.append((width, blocks, key + "time_conv.weight" in state_dict))
            blocks = 0
    levels.append((width, blocks, False))
    return levels


def _encoder_block_prefixes(state_dict, variant) -> list[str]:
    """Key prefixes of the encoder's res blocks and resamples in order (2.2 nests them in levels)."""
    top = _indices(state_dict, r"encoder\.downsamples\.(\d+)\.")
    if variant == "wan2.1":
        return [f"encoder.downsamples.{i}." for i in top]
    return [f"encoder.downsamples.{level}.downsamples.{i}."
            for level in top
            for i in _indices(state_dict, rf"encoder\.downsamples\.{level}\.downsamples\.(\d+)\.")]


def _indices(state_dict, pattern: str) -> list[int]:
    found = (re.match(pattern, key) for key in state_dict)
    return sorted({int(m.group(1)) for m in found if m})


def _rgb_factors(metadata) -> dict:
    """The preview map our own VAE stores next to its mean/std in metadata ({} for Wan's files)."""
    if not metadata or METADATA_KEY not in metadata:
        return {}
    stored = json.loads(metadata[METADATA_KEY])
    stored = stored.get("vae", stored)
    return {key: tuple(tuple(row) if isinstance(row, list) else row for row in stored[key])
            for key in ("latent_rgb_factors", "latent_rgb_factors_bias") if key in stored}


def _latent_stats(variant, z_dim, metadata) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Our own VAEs carry their measured mean/std in metadata; Wan's own files get Wan's published ones."""
    if metadata and METADATA_KEY in metadata:
        stored = json.loads(metadata[METADATA_KEY])
        stored = stored.get("vae", stored)
        if "latent_mean" in stored:
            return tuple(stored["latent_mean"]), tuple(stored["latent_std"])
    preset = VAE_PRESETS[variant]
    if preset.z_dim == z_dim:
        return preset.latent_mean, preset.latent_std
    return (), ()

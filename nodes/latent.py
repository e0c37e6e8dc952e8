"""Empty Latent Video: a zero latent of a size and length the model can take."""
import torch

from ..core.errors import SpacetimeError

SPATIAL_PATCH = 2  # every Wan DiT cuts latents into (1, 2, 2) spacetime patches
MAX_SIZE = 4096
MAX_FRAMES = 4097


def nearest_multiples(value: int, step: int) -> str:
    """'a or b': the valid values either side of `value` (one value when `value` is below one step)."""
    below = max(step, value // step * step)
    above = below if below >= value else below + step
    return str(below) if below == above else f"{below} or {above}"


def check_video_size(width: int, height: int, frames: int, spatial_step: int, temporal_step: int = 4) -> None:
    """Raise SpacetimeError naming the nearest valid values when the model cannot take this size or length."""
    for name, value in (("width", width), ("height", height)):
        if value % spatial_step or value < spatial_step:
            raise SpacetimeError(f"{name} {value} is not a multiple of {spatial_step} (VAE compression x patch "
                                 f"size for this model); use {nearest_multiples(value, spatial_step)}")
    if frames < 1 or (frames - 1) % temporal_step:
        below = max(1, (frames - 1) // temporal_step * temporal_step + 1)
        raise SpacetimeError(f"frames {frames} is not {temporal_step}k+1 (the VAE packs {temporal_step} frames per "
                             f"latent frame after the first); use {below} or {below + temporal_step}")


class SpacetimeEmptyLatentVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SPACETIME_VAE", {"tooltip": "The VAE the video will be decoded with: it fixes the latent "
                                                 "channels and the compression (valid sizes)."}),
            "width": ("INT", {"default": 832, "min": 16, "max": MAX_SIZE, "step": 16, "tooltip":
                "Width in pixels: a multiple of 16 for Wan 2.1 models and spacetime-mini, 32 for Wan 2.2 TI2V 5B."}),
            "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16, "tooltip":
                "Height in pixels: a multiple of 16 for Wan 2.1 models and spacetime-mini, 32 for Wan 2.2 TI2V 5B."}),
            "frames": ("INT", {"default": 81, "min": 1, "max": MAX_FRAMES, "step": 4, "tooltip":
                "Length in frames, 4k+1 (17, 33, 49, 81, 121, ...). 81 frames is 5 s at 16 fps."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip":
                "Number of videos sampled together (each with its own noise)."}),
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = "Spacetime/latent"
    DESCRIPTION = ("An empty video latent [B, C, T, H, W] for the sampler. Sizes the model cannot take are "
                   "rejected with the nearest valid values rather than silently changed.")

    def generate(self, vae, width, height, frames, batch_size):
        time_step, space_step, _ = vae.config.compression
        check_video_size(width, height, frames, space_step * SPATIAL_PATCH, time_step)
        shape = (batch_size, vae.config.latent_channels, (frames - 1) // time_step + 1,
                 height // space_step, width // space_step)  # (B, C, T, H, W)
        return ({"samples": torch.zeros(shape)},)

"""VAE Encode / VAE Decode between ComfyUI IMAGE batches [T, H, W, 3] in 0..1 and LATENT {"samples": [B,C,T,H,W]}."""
import torch

from ..core.errors import SpacetimeError


def image_to_pixels(images: torch.Tensor, temporal_step: int = 4) -> torch.Tensor:
    """IMAGE [T, H, W, 3] in 0..1 -> one video [1, 3, T', H, W] in -1..1, keeping the first T' = 4k+1 frames."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise SpacetimeError(f"images have shape {tuple(images.shape)}; expected an IMAGE batch [T, H, W, 3]")
    usable = (images.shape[0] - 1) // temporal_step * temporal_step + 1
    return images[:usable].permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, T', H, W)


def pixels_to_image(pixels: torch.Tensor) -> torch.Tensor:
    """One video [3, T, H, W] in -1..1 -> IMAGE [T, H, W, 3] in 0..1 on the CPU."""
    return ((pixels.permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).float().cpu()  # (T, H, W, 3)


class SpacetimeVAEEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SPACETIME_VAE", {"tooltip": "From Spacetime Load VAE."}),
            "images": ("IMAGE", {"tooltip": "Frames of one video, 4k+1 of them (extra frames are dropped), with "
                                            "width and height multiples of the VAE's compression."}),
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "encode"
    CATEGORY = "Spacetime/latent"
    DESCRIPTION = "Encodes a video (IMAGE frames) into a latent of batch 1."

    def encode(self, vae, images):
        pixels = image_to_pixels(images, vae.config.compression[0])  # the VAE moves it to its device
        with torch.inference_mode():
            return ({"samples": vae.encode(pixels).cpu()},)


class SpacetimeVAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SPACETIME_VAE", {"tooltip": "From Spacetime Load VAE; the one the model was made for."}),
            "latent": ("LATENT", {"tooltip": "From the Spacetime Sampler."}),
            "tiled": ("BOOLEAN", {"default": False, "tooltip":
                "Decode in overlapping spatial tiles, one latent frame at a time, the temporal cache waiting on "
                "the CPU: about half the GPU memory, seams blended, but many times slower (14x on an H200 at "
                "480p). Turn on only when the plain decode runs out of memory."}),
            "tile_size": ("INT", {"default": 256, "min": 64, "max": 4096, "step": 32, "tooltip":
                "Tile width and height in pixels (tiled only)."}),
            "tile_overlap": ("INT", {"default": 64, "min": 0, "max": 1024, "step": 16, "tooltip":
                "Overlap between tiles in pixels, blended linearly (tiled only)."}),
            "batch_index": ("INT", {"default": 0, "min": 0, "max": 63, "tooltip":
                "Which video of a batched latent to decode. IMAGE holds the frames of one video; concatenating "
                "several videos along time would make one wrong video, so decode each with its own node."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "decode"
    CATEGORY = "Spacetime/latent"
    DESCRIPTION = ("Decodes one video of a latent into IMAGE frames [T, H, W, 3] in 0..1, streaming one latent "
                   "frame at a time (frames go to the CPU as they are made); optionally tiled.")

    def decode(self, vae, latent, tiled, tile_size, tile_overlap, batch_index):
        samples = latent["samples"]
        if batch_index >= samples.shape[0]:
            raise SpacetimeError(f"batch_index {batch_index} is past the latent's batch of {samples.shape[0]}; "
                                 f"expected 0..{samples.shape[0] - 1}")
        z = samples[batch_index:batch_index + 1]  # (1, C, T, H, W); the VAE moves it to its device
        scale = vae.config.compression[1]
        tile = {"tile": max(1, tile_size // scale), "overlap": tile_overlap // scale} if tiled else {}
        with torch.inference_mode():
            chunks = [pixels_to_image(chunk[0]) for chunk in vae.decode_frames(z, **tile)]
        return (torch.cat(chunks),)

"""VAE Encode / VAE Decode between ComfyUI IMAGE batches [T, H, W, 3] in 0..1 and LATENT {"samples": [B,C,T,H,W]}."""


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
        from ..vae import encode_images

        return ({"samples": encode_images(vae, images)},)


class SpacetimeVAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SPACETIME_VAE", {"tooltip": "From Spacetime Load VAE; the one the model was made for."}),
            "latent": ("LATENT", {"tooltip": "From the Spacetime Sampler."}),
            "tiled": ("BOOLEAN", {"default": False, "tooltip":
                "Decode in overlapping spatial tiles and temporal chunks: memory bounded by the tile, for large "
                "frames on small GPUs; seams are blended."}),
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
    DESCRIPTION = "Decodes one video of a latent into IMAGE frames [T, H, W, 3] in 0..1, optionally tiled."

    def decode(self, vae, latent, tiled, tile_size, tile_overlap, batch_index):
        from ..vae import decode_images

        return (decode_images(vae, latent["samples"], batch_index=batch_index, tiled=tiled, tile_size=tile_size,
                              tile_overlap=tile_overlap),)

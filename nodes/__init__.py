"""The pack's nodes, one file per feature; this module only collects them for ComfyUI."""
from . import provenance
from .conditioning import (SpacetimeExtendVideo, SpacetimeImageToVideo, SpacetimeInfillFrames,
                           SpacetimeSubjectReference)
from .download import SpacetimeDownloadModel
from .latent import SpacetimeEmptyLatentVideo
from .loaders import (SpacetimeLoadCLIPVision, SpacetimeLoadDiffusionModel, SpacetimeLoadLoRA, SpacetimeLoadTextEncoder,
                      SpacetimeLoadVAE)
from .sampling import SpacetimeSampler
from .text import SpacetimeTextEncode
from .vae_nodes import SpacetimeVAEDecode, SpacetimeVAEEncode
from .video_io import SpacetimeLoadVideo, SpacetimeSaveVideo

NODES = (
    SpacetimeLoadDiffusionModel, SpacetimeLoadLoRA, SpacetimeLoadTextEncoder, SpacetimeLoadVAE, SpacetimeLoadCLIPVision,
    SpacetimeTextEncode, SpacetimeEmptyLatentVideo, SpacetimeSampler, SpacetimeImageToVideo, SpacetimeExtendVideo,
    SpacetimeInfillFrames, SpacetimeSubjectReference, SpacetimeVAEEncode, SpacetimeVAEDecode, SpacetimeLoadVideo,
    SpacetimeSaveVideo, SpacetimeDownloadModel,
)
NODE_CLASS_MAPPINGS = {node.__name__: node for node in NODES} | provenance.NODE_CLASS_MAPPINGS
NODE_DISPLAY_NAME_MAPPINGS = {
    "SpacetimeLoadDiffusionModel": "Spacetime Load Diffusion Model",
    "SpacetimeLoadLoRA": "Spacetime Load LoRA",
    "SpacetimeLoadTextEncoder": "Spacetime Load Text Encoder",
    "SpacetimeLoadVAE": "Spacetime Load VAE",
    "SpacetimeLoadCLIPVision": "Spacetime Load CLIP Vision",
    "SpacetimeTextEncode": "Spacetime Text Encode",
    "SpacetimeEmptyLatentVideo": "Spacetime Empty Latent Video",
    "SpacetimeSampler": "Spacetime Sampler",
    "SpacetimeImageToVideo": "Spacetime Image to Video",
    "SpacetimeExtendVideo": "Spacetime Extend Video",
    "SpacetimeInfillFrames": "Spacetime Infill Frames",
    "SpacetimeSubjectReference": "Spacetime Subject Reference",
    "SpacetimeVAEEncode": "Spacetime VAE Encode",
    "SpacetimeVAEDecode": "Spacetime VAE Decode",
    "SpacetimeLoadVideo": "Spacetime Load Video",
    "SpacetimeSaveVideo": "Spacetime Save Video",
    "SpacetimeDownloadModel": "Spacetime Download Model",
} | provenance.NODE_DISPLAY_NAME_MAPPINGS

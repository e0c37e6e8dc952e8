"""Loader nodes: a Wan / spacetime-mini diffusion model and its LoRAs, a UMT5 text encoder, a Wan video VAE, and
the CLIP-vision encoder of Wan 2.1 I2V / FLF2V."""
import torch

from ..core.clip_vision import load_clip_vision
from ..core.host import get_device
from ..core.loaders import load_model
from ..core.paths import list_models, resolve_model
from ..core.text_encoder import load_text_encoder
from ..vae import load_vae

WEIGHT_DTYPES = {"default": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
                 "fp8_e4m3fn": torch.float8_e4m3fn}
ATTENTION_BACKENDS = ["sdpa", "flash_attn", "sageattention"]
NO_LOW_NOISE_MODEL = "none"


class SpacetimeLoadDiffusionModel:
    @classmethod
    def INPUT_TYPES(cls):
        models = list_models("diffusion_models")
        return {"required": {
            "model_name": (models, {"tooltip": "The diffusion model (DiT) file from models/diffusion_models; "
                                               "spacetime_mini_dit.safetensors is the pack's own small model. "
                                               "For Wan 2.2 A14B pick the high-noise expert here."}),
            "weight_dtype": (list(WEIGHT_DTYPES), {"default": "default", "tooltip":
                "Precision of the weights in memory. default keeps the file's precision on a GPU and uses fp32 on "
                "the CPU (half precision is slow there); fp8_scaled files stay fp8 and are upcast per layer; "
                "fp8_e4m3fn halves the memory of a 16-bit file."}),
            "attention": (ATTENTION_BACKENDS, {"default": "sdpa", "tooltip":
                "Attention kernel: sdpa (PyTorch, always available), flash_attn or sageattention "
                "(faster on supported GPUs; must be installed)."}),
            "block_swap": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip":
                "Number of transformer blocks kept on the CPU and moved to the GPU only for their own forward: "
                "saves memory on 8-12 GB cards at some speed. 0 keeps the whole model on the device."}),
            "low_noise_model_name": ([NO_LOW_NOISE_MODEL] + models, {"default": NO_LOW_NOISE_MODEL, "tooltip":
                "Wan 2.2 A14B only: the low-noise expert file; the sampler switches to it at the model's boundary. "
                "'none' for every other model."}),
        }}

    RETURN_TYPES = ("SPACETIME_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = ("Loads a spacetime diffusion transformer: Wan 2.1 T2V / VACE, Wan 2.2 TI2V 5B, the Wan 2.2 A14B "
                   "pair, or the bundled spacetime-mini. The variant is detected from the file's weights.")

    def load(self, model_name, weight_dtype, attention, block_swap, low_noise_model_name):
        low_noise = None
        if low_noise_model_name != NO_LOW_NOISE_MODEL:
            low_noise = resolve_model("diffusion_models", low_noise_model_name)
        device = get_device()
        model = load_model(resolve_model("diffusion_models", model_name), low_noise_path=low_noise,
                           dtype=dit_dtype(weight_dtype, device), device=device, attention=attention,
                           block_swap=block_swap)
        return (model,)


def dit_dtype(weight_dtype: str, device: torch.device) -> torch.dtype | None:
    """The dtype to load a DiT in; None keeps the file's. The CPU computes half precision slowly, so fp32 there."""
    dtype = WEIGHT_DTYPES[weight_dtype]
    return torch.float32 if dtype is None and device.type == "cpu" else dtype


class SpacetimeLoadLoRA:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("SPACETIME_MODEL", {"tooltip": "The diffusion model to apply the LoRA to (chain several "
                                                     "of these nodes for several LoRAs)."}),
            "lora_name": (list_models("loras"), {"tooltip":
                "A LoRA for Wan 2.1/2.2 from models/loras (ComfyUI, kohya, musubi-tuner, diffusers/PEFT layouts). "
                "It must be made for the loaded model's size: a 14B LoRA does not fit a 1.3B model."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip":
                "How much of the LoRA to apply: 1 as trained, 0 none, negative to push away from it."}),
            "expert": (["both", "high_noise", "low_noise"], {"default": "both", "tooltip":
                "Wan 2.2 A14B only: apply the LoRA to one of its two experts (LoRAs for A14B usually come as a "
                "high-noise and a low-noise file). both for every other model."}),
        }}

    RETURN_TYPES = ("SPACETIME_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = ("Applies a LoRA to a Spacetime diffusion model while it samples. The model's weights are not "
                   "changed: the loader's output stays as it was for any other node that uses it.")

    def load(self, model, lora_name, strength, expert):
        return (model.with_lora(resolve_model("loras", lora_name), strength, expert),)


class SpacetimeLoadTextEncoder:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder_name": (list_models("text_encoders"), {"tooltip":
                    "The UMT5 text encoder file from models/text_encoders (umt5_xxl_fp16 or umt5_xxl_fp8_e4m3fn_scaled "
                    "for Wan; spacetime_mini_umt5.safetensors for the bundled model)."}),
            },
            "optional": {
                "tokenizer_path": ("STRING", {"default": "", "tooltip":
                    "Only for a text-encoder file without its own tokenizer: the path of a SentencePiece "
                    "spiece.model. Leave empty for Comfy-Org umt5 files, which carry theirs inside."}),
            },
        }

    RETURN_TYPES = ("SPACETIME_TEXT_ENCODER",)
    RETURN_NAMES = ("text_encoder",)
    FUNCTION = "load"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = ("Loads a UMT5 text encoder with the SentencePiece tokenizer stored in the file: in fp32 on the CPU, "
                   "in bf16 on a GPU (fp8_scaled files keep their fp8 weights either way).")

    def load(self, text_encoder_name, tokenizer_path=""):
        device = get_device()
        dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
        encoder = load_text_encoder(resolve_model("text_encoders", text_encoder_name), dtype=dtype, device=device,
                                    tokenizer_path=tokenizer_path.strip() or None)
        return (encoder,)


class SpacetimeLoadVAE:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (list_models("vae"), {"tooltip":
                "The video VAE file from models/vae: wan_2.1_vae (Wan 2.1 models, also A14B), wan2.2_vae "
                "(TI2V 5B only), spacetime_mini_vae.safetensors for the bundled model."}),
        }}

    RETURN_TYPES = ("SPACETIME_VAE",)
    RETURN_NAMES = ("vae",)
    FUNCTION = "load"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = "Loads a Wan 2.1 or 2.2 causal video VAE (detected from the file)."

    def load(self, vae_name):
        return (load_vae(resolve_model("vae", vae_name), device=get_device()),)


class SpacetimeLoadCLIPVision:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_vision_name": (list_models("clip_vision"), {"tooltip":
                "The CLIP-vision image encoder from models/clip_vision: clip_vision_h.safetensors, which Wan 2.1 "
                "I2V and FLF2V 14B read their start (and last) image through. No other model needs it."}),
        }}

    RETURN_TYPES = ("SPACETIME_CLIP_VISION",)
    RETURN_NAMES = ("clip_vision",)
    FUNCTION = "load"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = ("Loads the CLIP-vision encoder (ViT-H/14) for Wan 2.1 I2V / FLF2V 14B; connect it to Image to "
                   "Video, Infill Frames or Extend Video.")

    def load(self, clip_vision_name):
        # float32, as Wan's reference runs it (clip_dtype float32): 2.5 GB for ViT-H
        return (load_clip_vision(resolve_model("clip_vision", clip_vision_name), device=get_device()),)

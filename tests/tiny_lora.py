"""Tiny LoRAs for the tiny DiTs, in the key layouts trainers write (ComfyUI, diffusers/PEFT, kohya)."""
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.dit import WanDiT
from tests.tiny_dit import DIFFUSERS_RENAMES

RANK, ALPHA = 4, 2.0
LOW_RANK = ["blocks.0.self_attn.q", "blocks.0.cross_attn.o", "blocks.1.ffn.0", "blocks.1.self_attn.v", "head.head"]
WHOLE = {"blocks.0.norm3.weight": "diff", "blocks.1.self_attn.q.bias": "diff_b", "blocks.0.modulation": "diff"}


def lora_tensors(model: WanDiT, seed: int = 3) -> dict[str, dict[str, torch.Tensor]]:
    """{module or parameter: {'up', 'down', 'alpha' | 'diff' | 'diff_b': tensor}} for the modules above."""
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    parts = {}
    for name in LOW_RANK:
        out, inp = params[f"{name}.weight"].shape
        parts[name] = {"up": torch.randn(out, RANK, generator=g) * 0.1,
                       "down": torch.randn(RANK, inp, generator=g) * 0.1, "alpha": torch.tensor(ALPHA)}
    for param, kind in WHOLE.items():
        target = param.removesuffix(".weight").removesuffix(".bias")
        parts.setdefault(target, {})[kind] = torch.randn(params[param].shape, generator=g) * 0.05
    conv = params["patch_embedding.weight"].shape  # [out, in, kt, kh, kw]: a low-rank update of a Conv3d
    parts["patch_embedding"] = {"up": torch.randn(conv[0], RANK, generator=g) * 0.1,
                                "down": torch.randn(RANK, *conv[1:], generator=g) * 0.1}
    return parts


def diffusers_name(name: str) -> str:
    for old, new in DIFFUSERS_RENAMES:
        name = name.replace(old, new)
    return name


UP_DOWN = {"up": "lora_up.weight", "down": "lora_down.weight"}
B_A = {"up": "lora_B.weight", "down": "lora_A.weight"}
LAYOUTS = {  # file layout -> the key of (target, kind)
    "comfy": lambda target, kind: f"diffusion_model.{target}.{UP_DOWN.get(kind, kind)}",
    "peft_diffusers": lambda target, kind: f"transformer.{diffusers_name(target)}.{B_A.get(kind, kind)}",
    "kohya": lambda target, kind: f"lora_unet_{target.replace('.', '_')}.{UP_DOWN.get(kind, kind)}",
}


def write_lora(path, parts, layout: str = "comfy"):
    """Write lora_tensors' parts as a .safetensors file in one of LAYOUTS and return the path."""
    key = LAYOUTS[layout]
    save_file({key(target, kind): t.contiguous() for target, found in parts.items() for kind, t in found.items()},
              str(path))
    return path

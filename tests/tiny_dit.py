"""Tiny random Wan DiTs in the exact key layout of the real files (dim 256 -> 2 heads of 128, 2 layers)."""
import dataclasses
import re

import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.dit import WanDiT
from comfyui_spacetime.core.dit_config import DiTConfig

TINY = dict(dim=256, ffn_dim=256, num_heads=2, num_layers=2, text_dim=64)

# family -> the structural markers of that Wan variant, at tiny size
TINY_FAMILIES = {
    "t2v": dict(in_dim=16, out_dim=16),
    "ti2v": dict(in_dim=48, out_dim=48, per_frame_timesteps=True),
    "i2v": dict(in_dim=36, out_dim=16),
    "vace": dict(in_dim=16, out_dim=16, vace_layers=(0,)),
    "i2v-clip": dict(in_dim=36, out_dim=16, has_image_embedding=True),
    "flf2v": dict(in_dim=36, out_dim=16, has_image_embedding=True, flf_pos_len=514),
}


def tiny_config(family: str = "t2v", **overrides) -> DiTConfig:
    return dataclasses.replace(DiTConfig(variant=f"tiny-{family}", **TINY, **TINY_FAMILIES[family]), **overrides)


def tiny_dit(family: str = "t2v", seed: int = 0, **overrides) -> WanDiT:
    """A tiny WanDiT whose every parameter (norm gains and modulation included) is random but well scaled."""
    torch.manual_seed(seed)
    model = WanDiT(tiny_config(family, **overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or ".norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "emb_pos" in name:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def tiny_inputs(model: WanDiT, frames: int = 3, height: int = 4, width: int = 6, batch: int = 1, seed: int = 1):
    """Matching random inputs: (x, timestep [B], context, clip_fea, vace_context)."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_dim, frames, height, width, generator=g)
    timestep = torch.rand(batch, generator=g) * 1000
    context = torch.randn(batch, 5, cfg.text_dim, generator=g)
    clip_tokens = 2 * batch if cfg.flf_pos_len else batch
    clip_fea = torch.randn(clip_tokens, 257, 1280, generator=g) if cfg.has_image_embedding else None
    vace = torch.randn(batch, cfg.vace_in_dim, frames, height, width, generator=g) if cfg.vace_layers else None
    return x, timestep, context, clip_fea, vace


# ---------------------------------------------------------------- files in the layouts users have

# Wan -> diffusers renames as the diffusers conversion script applies them (substring replacement, in order;
# the placeholder swaps norm2 and norm3). Kept independent of the pack's own reverse table on purpose.
DIFFUSERS_RENAMES = [
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.modulation", "scale_shift_table"), ("head.head", "proj_out"), ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"), ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"), ("norm3", "norm2"), ("norm__placeholder", "norm3"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    ("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"),
    ("self_attn.q", "attn1.to_q"), ("self_attn.k", "attn1.to_k"), ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"), ("self_attn.norm_q", "attn1.norm_q"), ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"), ("cross_attn.k", "attn2.to_k"), ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"), ("cross_attn.norm_q", "attn2.norm_q"), ("cross_attn.norm_k", "attn2.norm_k"),
    ("attn2.to_k_img", "attn2.add_k_proj"), ("attn2.to_v_img", "attn2.add_v_proj"),
    ("attn2.norm_k_img", "attn2.norm_added_k"),
    ("before_proj", "proj_in"), ("after_proj", "proj_out"),
]
# the Linear layers Comfy-Org stores in fp8 in its Wan fp8_scaled files
FP8_LINEAR = re.compile(r"(self_attn|cross_attn)\.(q|k|v|o|k_img|v_img)\.weight$|ffn\.[02]\.weight$")
FORMATS = ["fp32", "bf16", "fp16", "fp8_scaled", "fp8_plain", "diffusers", "prefixed"]


def to_diffusers(state: dict) -> dict:
    out = {}
    for key, tensor in state.items():
        for old, new in DIFFUSERS_RENAMES:
            key = key.replace(old, new)
        out[key] = tensor
    return out


def fp8_scaled(state: dict, with_scale: bool = True, conv_too: bool = False) -> dict:
    """Comfy-Org layout: fp8 e4m3fn Linear weights, a 0-dim float32 `scale_weight` each, a `scaled_fp8` marker."""
    out = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)} if with_scale else {}
    for key, tensor in state.items():
        if FP8_LINEAR.search(key) or (conv_too and key == "patch_embedding.weight"):
            scale = tensor.abs().max().float() / 448 if with_scale else torch.tensor(1.0)
            out[key] = (tensor / scale).to(torch.float8_e4m3fn)
            if with_scale:
                out[key.removesuffix("weight") + "scale_weight"] = scale
                out[key.removesuffix("weight") + "scale_input"] = torch.tensor(1.0)
        else:
            out[key] = tensor
    return out


def save_dit(path, model: WanDiT, fmt: str = "fp32", metadata: dict | None = None):
    """Write `model` as a .safetensors file in one of FORMATS and return the path."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if fmt in ("bf16", "fp16"):
        state = {k: v.to(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[fmt])) for k, v in state.items()}
    elif fmt == "fp8_scaled":
        state = fp8_scaled(state, conv_too=True)
    elif fmt == "fp8_plain":
        state = fp8_scaled(state, with_scale=False)
    elif fmt == "diffusers":
        state = to_diffusers(state)
    elif fmt == "prefixed":
        state = {f"model.diffusion_model.{k}": v for k, v in state.items()}
    save_file(state, str(path), metadata=metadata)
    return path

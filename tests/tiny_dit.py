"""Tiny random Wan DiTs in the exact key layout of the real files (dim 256 -> 2 heads of 128, 2 layers)."""
import dataclasses

import torch

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

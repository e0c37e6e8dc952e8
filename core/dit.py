"""WanDiT: the Wan 2.1 / 2.2 spacetime-patch diffusion transformer.

Follows Wan-Video/Wan2.1 `wan/modules/model.py` + `vace_model.py` and Wan2.2's per-frame timesteps; module names
equal the checkpoint keys so a state dict loads as-is.

Shapes: B batch, C channels, T latent frames, H/W latent height/width; the patch grid is (t, h, w) =
(T/pt, H/ph, W/pw) and L = t*h*w tokens. F frames carry their own timestep embedding (F = 1 for a shared
timestep, F = t per latent frame) and S = L/F tokens belong to each. D width, N heads, E head dim,
Lc context tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attention, check_backend
from .dit_config import DiTConfig
from .errors import SpacetimeError
from .fp8 import Linear

CLIP_DIM = 1280  # width of the open-clip ViT-H tokens the 2.1 I2V/FLF2V models take


# ---------------------------------------------------------------- embeddings and the small maths

def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Timesteps [M] -> [M, dim] float32: cos then sin at frequencies 10000^(-i/half), in float64 as the reference."""
    half = dim // 2
    freqs = torch.pow(10000, -torch.arange(half, dtype=torch.float64, device=t.device).div(half))
    angles = torch.outer(t.to(torch.float64), freqs)  # [M, half]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()


def rope_angles(grid: tuple[int, int, int], rope_dims: tuple[int, int, int], device, theta: float = 10000.0):
    """3-axis RoPE (Su et al. 2021) on the (t, h, w) grid -> (cos, sin), each [L, 1, E/2] float64.

    Each axis rotates its own slice of the head's channel pairs by integer position x theta^(-2i/d_axis).
    """
    parts = []
    for axis, (size, d) in enumerate(zip(grid, rope_dims)):
        inv_freq = 1.0 / torch.pow(theta, torch.arange(0, d, 2, dtype=torch.float64, device=device).div(d))
        angle = torch.outer(torch.arange(size, dtype=torch.float64, device=device), inv_freq)  # [size, d/2]
        view = [1, 1, 1, d // 2]
        view[axis] = size
        parts.append(angle.view(view).expand(*grid, d // 2))  # [t, h, w, d/2]
    angles = torch.cat(parts, dim=-1).flatten(0, 2).unsqueeze(1)  # [t, h, w, E/2] -> [L, 1, E/2]
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate adjacent channel pairs of x [B, L, N, E] by the RoPE angles; computed in float64, returns float32."""
    cos, sin = rope
    a, b = x.to(torch.float64).unflatten(-1, (-1, 2)).unbind(-1)  # [B, L, N, E] -> 2 x [B, L, N, E/2]
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)  # [B, L, N, E/2, 2]
    return rotated.flatten(-2).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x [B, F, S, D] normalized, shift/scale [B, F, 1, D] from the timestep embedding."""
    return x * (1 + scale) + shift


def _modulation_parameter(count: int, dim: int) -> nn.Parameter:
    """The reference's randn / sqrt(dim) start; skipped on the meta device (a load fills it, and random ops on
    meta cost seconds of one-time setup)."""
    p = nn.Parameter(torch.empty(1, count, dim))
    if not p.is_meta:
        nn.init.normal_(p, std=dim**-0.5)
    return p


class RMSNorm(nn.Module):
    """RMS normalization in float32 with a learned gain (used on q and k over the full width)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the dtype of its input and weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)


# ---------------------------------------------------------------- attention

class Attention(nn.Module):
    """q/k/v/o projections with RMSNorm on q and k over the full width, before the split into heads."""

    def __init__(self, dim: int, num_heads: int, eps: float, backend: str):
        super().__init__()
        self.num_heads = num_heads
        self.backend = backend
        self.q, self.k, self.v, self.o = (Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1))  # [B, L, D] -> [B, L, N, E]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(q.to(v.dtype), k.to(v.dtype), v, self.backend).flatten(2)  # [B, L, N, E] -> [B, L, D]


class SelfAttention(Attention):
    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        """x [B, L, D] -> [B, L, D]; RoPE on q and k only."""
        q = apply_rope(self.heads(self.norm_q(self.q(x))), rope)
        k = apply_rope(self.heads(self.norm_k(self.k(x))), rope)
        return self.o(self.attend(q, k, self.heads(self.v(x))))


class CrossAttention(Attention):
    """Video tokens attend to the text; the 2.1 I2V/FLF2V models also attend, separately, to CLIP-image tokens."""

    def __init__(self, dim: int, num_heads: int, eps: float, backend: str, image_kv: bool):
        super().__init__(dim, num_heads, eps, backend)
        if image_kv:
            self.k_img = Linear(dim, dim)
            self.v_img = Linear(dim, dim)
            self.norm_k_img = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_img: torch.Tensor | None) -> torch.Tensor:
        """x [B, L, D], context [B, Lc, D], context_img [B, Li, D] or None -> [B, L, D]; no RoPE here."""
        q = self.heads(self.norm_q(self.q(x)))
        out = self.attend(q, self.heads(self.norm_k(self.k(context))), self.heads(self.v(context)))
        if context_img is not None:
            k_img = self.heads(self.norm_k_img(self.k_img(context_img)))
            out = out + self.attend(q, k_img, self.heads(self.v_img(context_img)))
        return self.o(out)


# ---------------------------------------------------------------- blocks

class WanBlock(nn.Module):
    """Self-attention and FFN under adaLN modulation (shift/scale/gate from the timestep), cross-attention between."""

    def __init__(self, config: DiTConfig, backend: str):
        super().__init__()
        dim, eps = config.dim, config.eps
        self.norm1 = LayerNorm(dim, eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, config.num_heads, eps, backend)
        self.norm3 = LayerNorm(dim, eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(dim, config.num_heads, eps, backend, config.has_image_embedding)
        self.norm2 = LayerNorm(dim, eps, elementwise_affine=False)
        self.ffn = nn.Sequential(Linear(dim, config.ffn_dim), nn.GELU(approximate="tanh"), Linear(config.ffn_dim, dim))
        self.modulation = _modulation_parameter(6, dim)

    def forward(self, x, e, rope, context, context_img):
        """x [B, F, S, D] float32 residual stream, e [B, F, 6, D] time projection -> [B, F, S, D]."""
        mod = (self.modulation.float() + e).unsqueeze(2)  # [B, F, 1, 6, D]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(3)  # 6 x [B, F, 1, D]
        y = self.self_attn(modulate(self.norm1(x), shift1, scale1).flatten(1, 2), rope)  # [B, L, D]
        x = x + y.view_as(x) * gate1
        x = x + self.cross_attn(self.norm3(x).flatten(1, 2), context, context_img).view_as(x)
        y = self.ffn(modulate(self.norm2(x), shift2, scale2))
        return x + y * gate2


class VaceBlock(WanBlock):
    """A Wan block over the VACE control stream; `after_proj` turns its output into a hint for a main block.

    The first VACE block also mixes the control tokens into the video tokens (`before_proj(c) + x`).
    """

    def __init__(self, config: DiTConfig, backend: str, first: bool):
        super().__init__(config, backend)
        self.before_proj = Linear(config.dim, config.dim) if first else None
        self.after_proj = Linear(config.dim, config.dim)

    def forward(self, c, x, e, rope, context, context_img):
        """c, x [B, F, S, D] -> (next control stream, hint), both [B, F, S, D]."""
        if self.before_proj is not None:
            c = self.before_proj(c) + x
        c = super().forward(c, e, rope, context, context_img)
        return c, self.after_proj(c)


class Head(nn.Module):
    """Final adaLN (shift/scale only) and projection of each token to its patch of output channels."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.norm = LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.head = Linear(config.dim, math.prod(config.patch_size) * config.out_dim)
        self.modulation = _modulation_parameter(2, config.dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x [B, F, S, D], e [B, F, D] -> [B, F, S, pt*ph*pw*C_out]."""
        mod = (self.modulation.float() + e.unsqueeze(2)).unsqueeze(2)  # [B, F, 1, 2, D]
        shift, scale = mod.unbind(3)  # 2 x [B, F, 1, D]
        return self.head(modulate(self.norm(x), shift, scale))


class ImageEmbedding(nn.Module):
    """CLIP-vision tokens [B, 257, 1280] -> [B, 257, D] (2.1 I2V); FLF2V adds a position embedding over 2 x 257."""

    def __init__(self, dim: int, flf_pos_len: int):
        super().__init__()
        self.proj = nn.Sequential(
            LayerNorm(CLIP_DIM, eps=1e-5), Linear(CLIP_DIM, CLIP_DIM), nn.GELU(),
            Linear(CLIP_DIM, dim), LayerNorm(dim, eps=1e-5))
        self.emb_pos = nn.Parameter(torch.zeros(1, flf_pos_len, CLIP_DIM)) if flf_pos_len else None

    def forward(self, clip_fea: torch.Tensor) -> torch.Tensor:
        if self.emb_pos is not None:
            # [2B, 257, 1280] (first and last frame) -> [B, 514, 1280]
            clip_fea = clip_fea.reshape(-1, self.emb_pos.shape[1], CLIP_DIM) + self.emb_pos.float()
        return self.proj(clip_fea)


# ---------------------------------------------------------------- the model

class WanDiT(nn.Module):
    """The Wan diffusion transformer: predicts the flow-matching velocity of a normalized video latent."""

    def __init__(self, config: DiTConfig, attention: str = "sdpa"):
        super().__init__()
        check_backend(attention)
        self.config = config
        dim, patch = config.dim, config.patch_size
        self.patch_embedding = nn.Conv3d(config.in_dim, dim, kernel_size=patch, stride=patch)
        self.text_embedding = nn.Sequential(Linear(config.text_dim, dim), nn.GELU(approximate="tanh"), Linear(dim, dim))
        self.time_embedding = nn.Sequential(Linear(config.freq_dim, dim), nn.SiLU(), Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(WanBlock(config, attention) for _ in range(config.num_layers))
        self.head = Head(config)
        if config.has_image_embedding:
            self.img_emb = ImageEmbedding(dim, config.flf_pos_len)
        if config.vace_layers:
            self.vace_patch_embedding = nn.Conv3d(config.vace_in_dim, dim, kernel_size=patch, stride=patch)
            self.vace_blocks = nn.ModuleList(
                VaceBlock(config, attention, first=j == 0) for j in range(len(config.vace_layers)))
        self.block_swap = 0

    # ------------------------------------------------ forward

    def forward(self, x, timestep, context, clip_fea=None, vace_context=None, vace_strength: float = 1.0):
        """x [B, C_in, T, H, W], timestep [B], [B, T] or per token [B, T*H*W/4] in 0..1000, context [B, Lc, text_dim]
        -> [B, C_out, T, H, W].

        clip_fea [B, 257, 1280] (2.1 I2V) or [2B, 257, 1280] (FLF2V); vace_context [B, vace_in_dim, T, H, W].
        Returns float32.
        """
        timestep = self._frame_timesteps(timestep, x)
        self._check_inputs(x, timestep, context, clip_fea, vace_context)
        grid = self._grid(x.shape[2:])
        e = self._time_embedding(timestep)  # [B, F, D]
        e6 = self.time_projection(e).unflatten(-1, (6, self.config.dim))  # [B, F, 6, D]
        frames = e.shape[1]
        tokens = self._patchify(self.patch_embedding, x).float().unflatten(1, (frames, -1))  # [B, F, S, D]
        context = self.text_embedding(self._pad_context(context))  # [B, max(Lc, text_len), D]
        context_img = self.img_emb(clip_fea) if clip_fea is not None else None  # [B, Li, D]
        rope = rope_angles(grid, self.config.rope_dims, x.device)
        args = (e6, rope, context, context_img)
        hints = self._vace_hints(vace_context, tokens, frames, args) if vace_context is not None else {}
        for i, block in enumerate(self.blocks):
            tokens = self._run_block(i, block, tokens, args)
            if i in hints:
                tokens = tokens + hints[i] * vace_strength
        return self.unpatchify(self.head(tokens, e).flatten(1, 2), grid).float()

    def _frame_timesteps(self, timestep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-token timesteps [B, L] (one per patch, as Wan 2.2's reference and ComfyUI pass them) -> [B, T], which
        is all this model can take: each latent frame's tokens must share one. Other shapes are left to the checks."""
        frames, height, width = (s // p for s, p in zip(x.shape[2:], self.config.patch_size))
        if timestep.ndim != 2 or timestep.shape[1] != frames * height * width:
            return timestep
        per_frame = timestep.unflatten(1, (frames, height * width))  # [B, T, S]
        if not torch.all(per_frame == per_frame[..., :1]):
            raise SpacetimeError("the per-token timesteps differ within a latent frame; this DiT takes one timestep "
                                 "per latent frame ([B, T]), as Wan 2.2 TI2V's known-frame mask gives.")
        return per_frame[..., 0]

    def _pad_context(self, context: torch.Tensor) -> torch.Tensor:
        """[B, Lc, text_dim] -> [B, max(Lc, text_len), text_dim]: zero rows appended."""
        return F.pad(context, (0, 0, 0, max(0, self.config.text_len - context.shape[1])))

    def _time_embedding(self, timestep: torch.Tensor) -> torch.Tensor:
        """timestep [B] or [B, T] -> e [B, F, D] (float32 when the time layers are, as the loader keeps them)."""
        t = timestep.reshape(timestep.shape[0], -1)  # [B, F]
        e = self.time_embedding(sinusoidal_embedding(t.flatten(), self.config.freq_dim))  # [B*F, D]
        return e.unflatten(0, t.shape)

    def _patchify(self, embedding: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
        out = embedding(x.to(embedding.weight.dtype))  # [B, D, t, h, w]
        return out.flatten(2).transpose(1, 2)  # [B, L, D]

    def _vace_hints(self, vace_context, tokens, frames, args) -> dict[int, torch.Tensor]:
        """Run the VACE blocks once over the control stream -> {main block index: hint added after it}."""
        c = self._patchify(self.vace_patch_embedding, vace_context).unflatten(1, (frames, -1))  # [B, F, S, D]
        hints = {}
        for layer, block in zip(self.config.vace_layers, self.vace_blocks):
            c, hints[layer] = block(c, tokens, *args)
        return hints

    def _run_block(self, i: int, block: WanBlock, tokens: torch.Tensor, args) -> torch.Tensor:
        """Swapped blocks live on the CPU and visit the compute device only for their own forward."""
        if i >= self.block_swap or tokens.device.type == "cpu":
            return block(tokens, *args)
        block.to(tokens.device)
        out = block(tokens, *args)
        block.to("cpu")
        return out

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """x [B, L, pt*ph*pw*C_out] -> [B, C_out, t*pt, h*ph, w*pw]."""
        (t, h, w), (pt, ph, pw) = grid, self.config.patch_size
        x = x.reshape(x.shape[0], t, h, w, pt, ph, pw, self.config.out_dim)  # [B, t, h, w, pt, ph, pw, C]
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # [B, C, t, pt, h, ph, w, pw]
        return x.reshape(x.shape[0], self.config.out_dim, t * pt, h * ph, w * pw)

    def _grid(self, size) -> tuple[int, int, int]:
        return tuple(s // p for s, p in zip(size, self.config.patch_size))

    # ------------------------------------------------ input checks (where bad values enter)

    def _check_inputs(self, x, timestep, context, clip_fea, vace_context) -> None:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_dim:
            hint = _channel_hint(x.shape[1] if x.ndim == 5 else None, cfg)
            raise SpacetimeError(f"the latent has shape {tuple(x.shape)} but this {cfg.variant} DiT takes "
                                 f"[B, {cfg.in_dim}, T, H, W]; {hint}")
        if any(s % p for s, p in zip(x.shape[2:], cfg.patch_size)):
            raise SpacetimeError(f"latent size T,H,W = {tuple(x.shape[2:])} is not divisible by the patch "
                                 f"{cfg.patch_size}; use a frame count of 4k+1 and a width/height divisible by 16.")
        if tuple(timestep.shape) not in ((x.shape[0],), (x.shape[0], x.shape[2] // cfg.patch_size[0])):
            raise SpacetimeError(f"timestep has shape {tuple(timestep.shape)}; expected [B]={x.shape[0]} or "
                                 f"[B, T]=({x.shape[0]}, {x.shape[2]}) (one per latent frame).")
        if context.shape[-1] != cfg.text_dim:
            raise SpacetimeError(f"the text embedding is {context.shape[-1]} wide but this DiT takes {cfg.text_dim}; "
                                 "connect the text encoder that belongs to this model (umt5-xxl: 4096).")
        self._check_clip(clip_fea)
        if vace_context is not None:
            self._check_vace(x, vace_context)

    def _check_clip(self, clip_fea) -> None:
        if self.config.has_image_embedding and clip_fea is None:
            raise SpacetimeError(f"{self.config.variant} needs CLIP-vision image tokens (clip_fea) in every call: "
                                 "encode the start image with load_clip_vision(...).encode (node: Spacetime Load "
                                 "CLIP Vision into Image to Video).")
        if clip_fea is not None and not self.config.has_image_embedding:
            raise SpacetimeError(f"clip_fea was given but {self.config.variant} has no image embedding; "
                                 "only the Wan 2.1 I2V/FLF2V 14B models take CLIP-vision tokens. Leave it empty.")

    def _check_vace(self, x, vace_context) -> None:
        cfg = self.config
        if not cfg.vace_layers:
            raise SpacetimeError(f"vace_context was given but {cfg.variant} has no VACE blocks; "
                                 "load a Wan 2.1 VACE model or leave it empty.")
        expected = (x.shape[0], cfg.vace_in_dim, *x.shape[2:])
        if tuple(vace_context.shape) != expected:
            raise SpacetimeError(f"vace_context has shape {tuple(vace_context.shape)}; expected {expected} "
                                 "(16 inactive + 16 reactive latent channels + 64 mask channels, same T/H/W as x).")

    # ------------------------------------------------ placement and initialization

    def place(self, device, block_swap: int = 0) -> "WanDiT":
        """Move to `device`, keeping the first `block_swap` blocks on the CPU (each visits `device` for its forward)."""
        if not 0 <= block_swap <= len(self.blocks):
            raise SpacetimeError(f"block_swap={block_swap} but the model has {len(self.blocks)} blocks; "
                                 f"choose 0..{len(self.blocks)}.")
        self.block_swap = block_swap
        for i, module in enumerate(self.blocks):
            module.to("cpu" if i < block_swap else device)
        for name, module in self.named_children():
            if name != "blocks":
                module.to(device)
        return self

    def set_attention(self, backend: str) -> None:
        check_backend(backend)
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = backend

    @torch.no_grad()
    def init_weights(self) -> "WanDiT":
        """The reference initialization for training from scratch: xavier Linears, small embeddings, zero head."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        for layer in (*self.text_embedding, *self.time_embedding):
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        return self


def _channel_hint(channels: int | None, cfg: DiTConfig) -> str:
    """Name the usual wiring mistake behind a channel mismatch."""
    vae = {16: "Wan 2.1 VAE (16 channels)", 48: "Wan 2.2 VAE (48 channels)"}
    if channels in vae and cfg.out_dim in vae and channels != cfg.out_dim:
        return (f"the latent comes from the {vae[channels]} but this model needs the {vae[cfg.out_dim]}; "
                "connect that VAE.")
    if cfg.mechanism == "concat":
        return (f"this model takes noise ({cfg.out_dim}) + mask (4) + image latent ({cfg.out_dim}) channels; "
                "use the pack's image-to-video conditioning.")
    return f"use a latent from the VAE of this model ({cfg.out_dim} channels)."

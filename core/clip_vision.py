"""CLIP-vision image encoder: an image -> the tokens Wan 2.1 I2V / FLF2V 14B cross-attend to.

Wan conditions those models on a ViT-H/14 CLIP image encoder (Comfy-Org's `clip_vision_h.safetensors`, in the
Hugging Face CLIPVisionModel key layout: `vision_model.embeddings.*`, `vision_model.encoder.layers.N.*`). The DiT
reads the tokens after the penultimate block, [257, 1280] per image (a class token and 16x16 patches), without the
final norm or projection, so the last block, `post_layernorm` and `visual_projection` are not loaded.

Preprocessing follows Wan's reference: the whole image resized to 224x224 (bicubic, no crop), then CLIP's mean/std.
"""
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import describe_checkpoint, read_safetensors
from .errors import SpacetimeError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PREFIX = "vision_model."
_UNUSED = ("vision_model.post_layernorm.", "visual_projection.")  # after the tokens Wan reads


@dataclass(frozen=True)
class ClipVisionConfig:
    width: int  # 1280 for ViT-H
    layers: int  # blocks in the file (32); the encoder runs all but the last
    heads: int
    mlp: int  # 5120
    patch: int  # 14
    image_size: int  # 224
    eps: float = 1e-5

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch) ** 2 + 1


def detect_clip_vision_config(state_dict: dict) -> ClipVisionConfig:
    """The config from the weights' shapes; heads by CLIP's rule (80-wide heads for ViT-H, 64 otherwise)."""
    width, _, patch, _ = state_dict[f"{_PREFIX}embeddings.patch_embedding.weight"].shape
    positions = state_dict[f"{_PREFIX}embeddings.position_embedding.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[3]) for k in state_dict if k.startswith(f"{_PREFIX}encoder.layers."))
    mlp = state_dict[f"{_PREFIX}encoder.layers.0.mlp.fc1.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    return ClipVisionConfig(width, layers, width // (80 if width % 80 == 0 else 64), mlp, patch, grid * patch)


class Attention(nn.Module):
    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.heads = config.heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(config.width, config.width) for _ in range(4))

    def forward(self, x):
        """x [N, L, D] -> [N, L, D]."""
        n, length, _ = x.shape
        q, k, v = (proj(x).view(n, length, self.heads, -1).transpose(1, 2)  # [N, heads, L, D / heads]
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, -1))


class MLP(nn.Module):
    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(config.width, config.mlp), nn.Linear(config.mlp, config.width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # ViT-H uses the exact GELU


class Layer(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.layer_norm1, self.layer_norm2 = (nn.LayerNorm(config.width, eps=config.eps) for _ in range(2))
        self.self_attn, self.mlp = Attention(config), MLP(config)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Embeddings(nn.Module):
    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(config.width))
        self.patch_embedding = nn.Conv2d(3, config.width, config.patch, stride=config.patch, bias=False)
        self.position_embedding = nn.Embedding(config.tokens, config.width)

    def forward(self, pixels):
        """pixels [N, 3, S, S] (normalized) -> [N, 1 + (S/patch)^2, D]: the class token, then the patches."""
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight.to(patches.dtype)


class Encoder(nn.Module):
    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers - 1))


class VisionModel(nn.Module):
    """`vision_model.*` of the file, up to the penultimate block."""

    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.width, eps=config.eps)  # sic: the Hugging Face key name
        self.encoder = Encoder(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, S, S] normalized by CLIP's mean/std -> the penultimate block's tokens [N, L, D]."""
        x = self.pre_layrnorm(self.embeddings(pixels.to(self.pre_layrnorm.weight.dtype)))
        for layer in self.encoder.layers:
            x = layer(x)
        return x


class ClipVisionEncoder:
    """A loaded CLIP-vision encoder (the SPACETIME_CLIP_VISION node type): IMAGE batches -> image tokens."""

    def __init__(self, model: VisionModel, name: str):
        self.model, self.name = model, name

    @property
    def config(self) -> ClipVisionConfig:
        return self.model.config

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE [N, H, W, 3] in 0..1 -> [N, 3, S, S]: resized whole (bicubic, no crop), normalized, as Wan does."""
        size = self.config.image_size
        pixels = F.interpolate(images.movedim(-1, 1).float(), size=(size, size), mode="bicubic", align_corners=False)
        mean, std = (torch.tensor(v, device=pixels.device).view(1, 3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
        return (pixels - mean) / std

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE [N, H, W, 3] in 0..1 -> tokens [N, L, D] (float32 on the CPU); [N, 257, 1280] for ViT-H/14."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise SpacetimeError(f"the CLIP-vision encoder takes an IMAGE batch [N, H, W, 3]; got "
                                 f"{tuple(images.shape)} (drop an alpha channel first).")
        device = self.model.pre_layrnorm.weight.device
        return self.model(self.preprocess(images.to(device))).float().cpu()


def load_clip_vision(path, dtype: torch.dtype = torch.float32, device="cpu") -> ClipVisionEncoder:
    """Load a CLIP-vision file in the Hugging Face layout (Comfy-Org clip_vision_h.safetensors)."""
    path = Path(path)
    state_dict, _ = read_safetensors(path, dtype=dtype)
    if f"{_PREFIX}embeddings.patch_embedding.weight" not in state_dict:
        raise SpacetimeError(f"{path.name} is {describe_checkpoint(state_dict)}, not a CLIP-vision "
                             "encoder in the Hugging Face layout (vision_model.encoder.layers.N...); expected "
                             "clip_vision_h.safetensors from models/clip_vision.")
    try:
        config = detect_clip_vision_config(state_dict)
    except KeyError as missing:
        raise SpacetimeError(f"{path.name} has no {missing} tensor; the CLIP-vision file is incomplete, download "
                             "clip_vision_h.safetensors again.") from None
    last = f"{_PREFIX}encoder.layers.{config.layers - 1}."
    used = {k.removeprefix(_PREFIX): v for k, v in state_dict.items()
            if not k.startswith(_UNUSED) and not k.startswith(last)}
    with torch.device("meta"):
        model = VisionModel(config)
    expected = set(model.state_dict())
    missing, unknown = sorted(expected - used.keys()), sorted(used.keys() - expected)
    if missing or unknown:
        raise SpacetimeError(f"{path.name} does not match the CLIP-vision layout: missing "
                             f"{missing[:4]}, unknown {unknown[:4]}; expected a complete clip_vision_h.safetensors, "
                             "download it again.")
    model.load_state_dict(used, assign=True)
    return ClipVisionEncoder(model.requires_grad_(False).eval().to(device), path.name)

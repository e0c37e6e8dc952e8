"""Tiny CLIP-vision encoders with random weights in the key layout of Comfy-Org's clip_vision_h.safetensors."""
import torch
from safetensors.torch import save_file


def clip_state(width: int = 160, layers: int = 3, mlp: int = 320, patch: int = 14, image_size: int = 28,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key of a Hugging Face CLIPVisionModelWithProjection (the last block, final norm and projection too)."""
    g = torch.Generator().manual_seed(seed)

    def weight(*shape):
        return torch.randn(*shape, generator=g) * shape[-1] ** -0.5 if len(shape) > 1 else 0.05 * torch.randn(
            *shape, generator=g)

    def norm(prefix):
        return {f"{prefix}.weight": 1 + 0.1 * torch.randn(width, generator=g), f"{prefix}.bias": weight(width)}

    tokens = (image_size // patch) ** 2 + 1
    state = {"vision_model.embeddings.class_embedding": torch.randn(width, generator=g),
             "vision_model.embeddings.patch_embedding.weight": torch.randn(width, 3, patch, patch, generator=g) * 0.05,
             "vision_model.embeddings.position_embedding.weight": 0.1 * torch.randn(tokens, width, generator=g),
             **norm("vision_model.pre_layrnorm"), **norm("vision_model.post_layernorm"),
             "visual_projection.weight": weight(width // 2, width)}
    for i in range(layers):
        layer = f"vision_model.encoder.layers.{i}"
        state |= norm(f"{layer}.layer_norm1") | norm(f"{layer}.layer_norm2")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            state[f"{layer}.self_attn.{proj}.weight"], state[f"{layer}.self_attn.{proj}.bias"] = (
                weight(width, width), weight(width))
        state[f"{layer}.mlp.fc1.weight"], state[f"{layer}.mlp.fc1.bias"] = weight(mlp, width), weight(mlp)
        state[f"{layer}.mlp.fc2.weight"], state[f"{layer}.mlp.fc2.bias"] = weight(width, mlp), weight(width)
    return state


def save_clip(path, **config):
    """Write a tiny CLIP-vision file; Wan's DiT needs width 1280 (CLIP_DIM), so `save_clip(path, width=1280)`."""
    save_file(clip_state(**config), str(path))
    return path

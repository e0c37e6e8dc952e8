"""Tiny UMT5 text encoders with random weights, written in the exact key layout of the Comfy-Org umt5_xxl files."""
import functools

import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.text_encoder import TextEncoderConfig, UMT5Encoder, config_metadata
from comfyui_spacetime.core.tokenizer import SPIECE_KEY, spiece_tensor, train_spiece_model

SENTENCES = [
    "a red ball bounces across a green floor",
    "the camera pans slowly over a calm blue sea",
    "two white squares drift apart in the dark",
    "a small yellow circle grows and then shrinks",
    "rain falls on a quiet street at night",
    "a bird flies from left to right above the trees",
]


@functools.cache
def spiece_model() -> bytes:
    """A SentencePiece model trained on a few sentences, with umT5's special ids (pad 0, eos 1, unk 2)."""
    return train_spiece_model(SENTENCES * 4, vocab_size=64)


def tiny_config(vocab_size: int = 64, min_length: int = 32) -> TextEncoderConfig:
    return TextEncoderConfig(vocab_size=vocab_size, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2,
                             min_length=min_length)


def random_state_dict(config: TextEncoderConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """fp32 weights with fan-in scaling, so activations stay O(1) and low-precision errors stay comparable."""
    generator = torch.Generator().manual_seed(seed)
    names = UMT5Encoder(config).state_dict()
    state = {k: torch.randn(v.shape, generator=generator) * v.shape[-1] ** -0.5 for k, v in names.items()}
    for key in state:
        if key.endswith("layer_norm.weight"):
            state[key] = 1.0 + 0.1 * torch.randn(state[key].shape, generator=generator)
    return state


def quantize_fp8_scaled(state: dict[str, torch.Tensor], fp8_embedding: bool = False) -> dict[str, torch.Tensor]:
    """The Comfy-Org fp8_scaled layout: fp8 e4m3fn Linear weights, a 0-dim fp32 `scale_weight` each, a marker.

    `fp8_embedding` also quantizes the token table (`shared.weight`), which the loader must handle either way.
    """
    quantized = {"q", "k", "v", "o", "wi_0", "wi_1", "wo"} | ({"shared"} if fp8_embedding else set())
    out = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in state.items():
        if not (key.endswith(".weight") and key.split(".")[-2] in quantized):
            out[key] = value
            continue
        scale = value.abs().max() / torch.finfo(torch.float8_e4m3fn).max
        out[key] = (value / scale).to(torch.float8_e4m3fn)
        out[key.removesuffix("weight") + "scale_weight"] = scale.float().reshape(())
    return out


def write_te(path, config: TextEncoderConfig, state: dict, dtype=torch.float32, with_spiece: bool = True,
             fp8_scaled: bool = False, fp8_embedding: bool = False, metadata: dict | None = None):
    """Save a text-encoder file like the Comfy-Org ones (bare keys, `spiece_model` uint8 tensor)."""
    tensors = {k: v.to(dtype) for k, v in state.items()}
    if fp8_scaled:
        tensors = quantize_fp8_scaled(state, fp8_embedding)
    if with_spiece:
        tensors[SPIECE_KEY] = spiece_tensor(spiece_model())
    save_file(tensors, str(path), metadata=metadata if metadata is not None else config_metadata(config))
    return path

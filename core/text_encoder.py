"""UMT5 encoder (umT5, Chung et al. 2023) as Wan uses it, with the key names of the Comfy-Org `umt5_xxl_*` files.

Reference: Wan-Video/Wan2.1 `wan/modules/t5.py`, ComfyUI `comfy/text_encoders/t5.py`. T5 differs from a textbook
transformer in three places kept here: RMS layer norm without mean and with fp32 variance, no 1/sqrt(K) scaling of
the attention logits, and a learned relative-position bias, which umT5 gives every layer (T5 only the first).
Shapes: B batch, L tokens, D d_model, H heads, K d_kv (per-head width), F d_ff.
"""
import json
import math
import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SpacetimeError
from .fp8 import Linear, dequantize, is_fp8
from .tokenizer import SPIECE_KEY, Tokenizer

# ---------------------------------------------------------------------------------------------------------------------
# Config, presets, detection
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextEncoderConfig:
    vocab_size: int
    d_model: int
    d_ff: int
    num_heads: int
    d_kv: int
    num_layers: int
    num_buckets: int = 32
    max_distance: int = 128
    min_length: int = 512  # prompts are padded to at least this many tokens, as Wan's DiT was trained on
    eps: float = 1e-6


TEXT_ENCODER_PRESETS = {
    "umt5-xxl": TextEncoderConfig(vocab_size=256384, d_model=4096, d_ff=10240, num_heads=64, d_kv=64, num_layers=24),
}

METADATA_KEY = "spacetime_config"
# Metadata naming the caption language a text encoder was trained on, when it is a small world's rather than
# English at large ("spacetime-mini": prompts are recaptioned into it, embedded/recaption.py).
CAPTION_LANGUAGE_KEY = "spacetime_caption_language"
_BLOCK_KEY = re.compile(r"^encoder\.block\.(\d+)\.")
_SETTINGS = ("max_distance", "min_length", "eps")  # not readable from shapes


def config_metadata(config: TextEncoderConfig) -> dict[str, str]:
    """safetensors metadata that lets detect_text_encoder_config recover settings shapes do not show."""
    return {METADATA_KEY: json.dumps(asdict(config))}


def detect_text_encoder_config(state_dict, metadata: dict | None = None) -> TextEncoderConfig:
    """The config of a UMT5 state dict (bare Comfy-Org keys), from tensor shapes; settings from metadata if any."""
    try:
        return _detect(state_dict, metadata)
    except KeyError as error:
        raise SpacetimeError(f"the text-encoder state dict has no {error} tensor; expected the UMT5 layout of the "
                             "Comfy-Org umt5_xxl files (per-layer relative_attention_bias, gated wi_0/wi_1 FFN)")


def _detect(state_dict, metadata: dict | None) -> TextEncoderConfig:
    vocab_size, d_model = state_dict["shared.weight"].shape
    num_buckets, num_heads = state_dict["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    inner = state_dict["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]  # H * K
    d_ff = state_dict["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    num_layers = 1 + max(int(m.group(1)) for m in map(_BLOCK_KEY.match, state_dict) if m)
    return TextEncoderConfig(vocab_size, d_model, d_ff, num_heads, inner // num_heads, num_layers, num_buckets,
                             **_metadata_settings(metadata))


def _metadata_settings(metadata: dict | None) -> dict:
    if not metadata or METADATA_KEY not in metadata:
        return {}
    try:
        stored = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise SpacetimeError(f"the file's `{METADATA_KEY}` metadata is not valid JSON ({error}); "
                             "re-save the text encoder") from error
    return {k: stored[k] for k in _SETTINGS if k in stored}


def check_text_width(config: TextEncoderConfig, dit_config) -> None:
    """Raise when the encoder's embedding width differs from the DiT's text input (`dit_config.text_dim`)."""
    if config.d_model != dit_config.text_dim:
        raise SpacetimeError(
            f"text encoder gives {config.d_model}-wide embeddings but this DiT expects {dit_config.text_dim}; "
            "load the text encoder that belongs to this model (umt5_xxl for Wan, the bundled one for spacetime-mini)")


# ---------------------------------------------------------------------------------------------------------------------
# Maths
# ---------------------------------------------------------------------------------------------------------------------


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32, max_distance: int = 128):
    """Bidirectional T5 bucketing (Mesh TensorFlow): exact buckets near 0, log-spaced up to max_distance.

    `relative_position` = key position - query position. Half the buckets hold keys after the query; in each half,
    the first half of the buckets are exact offsets and the rest log-spaced, saturating at max_distance.
    """
    half = num_buckets // 2
    offset = (relative_position > 0).long() * half
    distance = relative_position.abs()
    max_exact = half // 2
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    far = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return offset + torch.where(distance < max_exact, distance, far)


def position_buckets(length: int, config: TextEncoderConfig, device) -> torch.Tensor:
    """Bucket index of every (query, key) pair: (L, L)."""
    position = torch.arange(length, device=device)
    relative = position[None, :] - position[:, None]  # (L, L): key - query
    return relative_position_bucket(relative, config.num_buckets, config.max_distance)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """T5 layer norm: scale by the root mean square (no mean subtraction, no bias); variance in fp32."""
    x = x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(weight.dtype)


def fp16_clamp(x: torch.Tensor) -> torch.Tensor:
    """T5 activations can overflow fp16; pull infinities back into range as the reference does."""
    if x.dtype == torch.float16 and torch.isinf(x).any():
        limit = torch.finfo(torch.float16).max - 1000
        x = x.clamp(-limit, limit)
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Modules (attribute names = checkpoint key names)
# ---------------------------------------------------------------------------------------------------------------------


class Embedding(nn.Module):
    """Token embedding whose table may stay in fp8 (like fp8.Linear); only the looked-up rows are upcast."""

    compute_dtype: torch.dtype = torch.float32  # used only when the table is fp8; set by the loader

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(vocab_size, d_model))  # T5 initializes the table at std 1
        self.register_buffer("scale_weight", None)

    def forward(self, input_ids):
        rows = self.weight[input_ids]  # (B, L, D)
        return dequantize(rows, self.scale_weight, self.compute_dtype) if is_fp8(rows) else rows

    def attach_scale(self, scale: torch.Tensor | None, compute_dtype: torch.dtype) -> None:
        if scale is not None:
            self.scale_weight = scale.to(torch.float32)
        self.compute_dtype = compute_dtype


class LayerNorm(nn.Module):
    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class SelfAttention(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        inner = config.num_heads * config.d_kv
        self.num_heads = config.num_heads
        self.q, self.k, self.v = (Linear(config.d_model, inner, bias=False) for _ in range(3))
        self.o = Linear(inner, config.d_model, bias=False)
        self.relative_attention_bias = nn.Embedding(config.num_buckets, config.num_heads)

    def forward(self, x, buckets, key_mask):
        """x (B, L, D), buckets (L, L), key_mask (B, 1, 1, L) bool -> (B, L, D)."""
        B, L, _ = x.shape
        q, k, v = (p(x).view(B, L, self.num_heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))  # (B, H, L, K)
        bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0).to(x.dtype)  # (1, H, L, L)
        bias = bias.masked_fill(~key_mask, torch.finfo(x.dtype).min)  # (B, H, L, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)  # (B, H, L, K): T5 does not scale
        return self.o(out.transpose(1, 2).reshape(B, L, -1))  # (B, L, H*K) -> (B, L, D)


class GatedFeedForward(nn.Module):
    """Gated-GELU FFN of T5 v1.1: wo(gelu_tanh(wi_0 x) * wi_1 x)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.wi_0 = Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = Linear(config.d_model, config.d_ff, bias=False)
        self.wo = Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x):
        return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))


class AttentionLayer(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.SelfAttention = SelfAttention(config)
        self.layer_norm = LayerNorm(config.d_model, config.eps)

    def forward(self, x, buckets, key_mask):
        return fp16_clamp(x + self.SelfAttention(self.layer_norm(x), buckets, key_mask))


class FeedForwardLayer(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.DenseReluDense = GatedFeedForward(config)
        self.layer_norm = LayerNorm(config.d_model, config.eps)

    def forward(self, x):
        return fp16_clamp(x + self.DenseReluDense(self.layer_norm(x)))


class Block(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.layer = nn.ModuleList([AttentionLayer(config), FeedForwardLayer(config)])

    def forward(self, x, buckets, key_mask):
        return self.layer[1](self.layer[0](x, buckets, key_mask))


class Stack(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.block = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.final_layer_norm = LayerNorm(config.d_model, config.eps)

    def forward(self, x, buckets, key_mask):
        for block in self.block:
            x = block(x, buckets, key_mask)
        return self.final_layer_norm(x)


class UMT5Encoder(nn.Module):
    """input_ids (B, L), attention_mask (B, L) -> hidden states (B, L, D) with pad rows set to zero."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.shared = Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask.bool()  # (B, L)
        x = self.shared(input_ids)  # (B, L, D)
        buckets = position_buckets(input_ids.shape[1], self.config, input_ids.device)  # (L, L), shared by layers
        x = self.encoder(x, buckets, keep[:, None, None, :])  # key mask (B, 1, 1, L)
        return x * keep[..., None].to(x.dtype)  # zero pad rows, as ComfyUI's zero_out_masked does


# ---------------------------------------------------------------------------------------------------------------------
# Public object and loading
# ---------------------------------------------------------------------------------------------------------------------


class TextEncoder:
    """A loaded UMT5 encoder and its tokenizer: prompts -> embeddings (B, max(L, min_length), D).

    `caption_language`: the file's CAPTION_LANGUAGE_KEY, None for encoders of English at large (Wan's UMT5-XXL).
    """

    def __init__(self, model: UMT5Encoder, tokenizer: Tokenizer | None, caption_language: str | None = None):
        if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
            raise SpacetimeError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the text encoder embeds only "
                f"{model.config.vocab_size}; use the tokenizer that belongs to this text encoder")
        self.model = model
        self.tokenizer = tokenizer
        self.caption_language = caption_language

    @property
    def config(self) -> TextEncoderConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.encoder.final_layer_norm.weight.device

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (B, L), attention_mask (B, L)) on the encoder's device, L = max(longest, min_length)."""
        if self.tokenizer is None:
            raise SpacetimeError(
                "this text-encoder file has no `spiece_model` tensor, so it cannot turn text into tokens; "
                "pass tokenizer_path= to load_text_encoder (the tokenizer_path input of Spacetime Load Text Encoder) "
                "with a SentencePiece spiece.model file, or a umt5_xxl_*.safetensors that embeds one")
        input_ids, attention_mask = self.tokenizer(prompts, self.config.min_length)
        return input_ids.to(self.device), attention_mask.to(self.device)

    @torch.no_grad()
    def encode_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and mask -> (B, L, D) hidden states, pad rows zero.

        Only the columns up to the batch's last real token run through the encoder: pad keys are masked out, so
        real tokens do not see them, and pad rows come out zero either way. Wan's prompts are padded to 512
        tokens, so this skips most of UMT5-XXL's work on a short prompt.
        """
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        used = int(attention_mask.any(0).nonzero().max()) + 1 if attention_mask.any() else input_ids.shape[1]
        hidden = self.model(input_ids[:, :used], attention_mask[:, :used])  # (B, used, D)
        return F.pad(hidden, (0, 0, 0, input_ids.shape[1] - used))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return self.encode_ids(*self.tokenize(prompts))


def load_text_encoder(path, dtype: torch.dtype = torch.float32, device="cpu", tokenizer_path=None) -> TextEncoder:
    """Load a UMT5 text encoder (fp32/fp16/bf16 or fp8_scaled safetensors); fp8 weights stay fp8 in memory."""
    tensors, metadata = _read_checkpoint(path, dtype, device)
    spiece = tensors.pop(SPIECE_KEY, None)
    model = _build(detect_text_encoder_config(tensors, metadata), tensors, dtype, path)
    return TextEncoder(model, _pick_tokenizer(spiece, tokenizer_path), metadata.get(CAPTION_LANGUAGE_KEY))


_UNUSED = re.compile(r"^(scaled_fp8|.*\.scale_input|decoder\..*|lm_head\..*|encoder\.embed_tokens\.weight)$")
_FULL_PRECISION = re.compile(r".*(layer_norm|relative_attention_bias)\.weight$")  # tiny, used as they are


def _read_checkpoint(path, dtype: torch.dtype, device) -> tuple[dict, dict]:
    """Bare-key tensors of a text-encoder file, each converted as it is read so peak memory stays near the file.

    Dropped: the fp8 marker, fp8 input scales (weights are upcast, the input never quantized), the decoder and head
    of a full encoder-decoder checkpoint, and the tied copy of the embedding.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            prefix = _key_prefix(list(f.keys()), path)
            bare = {k.removeprefix(prefix): k for k in f.keys() if k.startswith(prefix) and k != SPIECE_KEY}
            tensors = {k: _stored(k, f.get_tensor(key), dtype) for k, key in bare.items() if not _UNUSED.match(k)}
            if SPIECE_KEY in f.keys():
                tensors[SPIECE_KEY] = f.get_tensor(SPIECE_KEY)
            return tensors, f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise SpacetimeError(f"cannot read {path} as safetensors ({error}); expected a complete .safetensors "
                             "text-encoder file such as umt5_xxl_fp16.safetensors: download it again") from error


def _stored(key: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp8 Linear/embedding weights stay fp8 (upcast per layer); scales stay fp32; the rest goes to `dtype`."""
    if key.endswith(".scale_weight"):
        return tensor.float()
    if is_fp8(tensor) and not _FULL_PRECISION.match(key):
        return tensor
    return tensor.to(dtype)


def _key_prefix(keys: list[str], path) -> str:
    """Comfy-Org keys are bare; files saved from a larger graph carry a prefix before `shared.weight`."""
    prefix = next((k.removesuffix("shared.weight") for k in keys if k.endswith("shared.weight")), None)
    if prefix is None or f"{prefix}encoder.block.0.layer.0.SelfAttention.q.weight" not in keys:
        raise SpacetimeError(f"{path} is {_describe_other(keys)}, not a UMT5 text encoder "
                             "(no shared.weight / encoder.block.N keys)")
    return prefix


def _describe_other(keys: list[str]) -> str:
    keys = [k.removeprefix("model.diffusion_model.") for k in keys]
    if "head.modulation" in keys or "patch_embedding.weight" in keys:
        return "a Wan diffusion model: load it with load_dit (node: Spacetime Load Diffusion Model)"
    if "decoder.middle.0.residual.0.gamma" in keys:
        return "a Wan video VAE: load it with load_vae (node: Spacetime Load VAE)"
    if any("lora" in k for k in keys):
        return "a LoRA: apply it to a model instead"
    return f"an unrecognised file (first keys: {sorted(keys)[:4]})"


def _build(config: TextEncoderConfig, state_dict: dict, dtype: torch.dtype, path) -> UMT5Encoder:
    """Create on the meta device, adopt the file's tensors as they are (no second copy), then attach fp8 scales."""
    scales = {k.removesuffix(".scale_weight"): state_dict.pop(k) for k in list(state_dict) if k.endswith(".scale_weight")}
    with torch.device("meta"):
        model = UMT5Encoder(config)
    expected = set(model.state_dict())
    missing, unknown = sorted(expected - state_dict.keys()), sorted(state_dict.keys() - expected)
    if missing or unknown:
        raise SpacetimeError(f"{path} does not match the UMT5 layout: missing keys {missing[:4]}, unknown keys "
                             f"{unknown[:4]}; expected a Comfy-Org umt5_xxl_*.safetensors file")
    model.load_state_dict(state_dict, assign=True)
    for name, module in model.named_modules():
        if isinstance(module, (Linear, Embedding)):
            module.attach_scale(scales.pop(name, None), dtype)
    if scales:
        raise SpacetimeError(f"{path} has scale_weight for layers UMT5 does not have: {sorted(scales)[:4]}")
    return model.requires_grad_(False).eval()


def _pick_tokenizer(spiece: torch.Tensor | None, tokenizer_path) -> Tokenizer | None:
    """An explicit tokenizer file wins over the one embedded in the checkpoint."""
    from .tokenizer import read_tokenizer_file

    if tokenizer_path is not None:
        return read_tokenizer_file(tokenizer_path)
    return None if spiece is None else Tokenizer(spiece.cpu().numpy().tobytes())

"""Reading model files: streamed safetensors, prefix stripping, file-kind classification, diffusers Wan key layout.

Tensors are read one at a time with plain file reads and converted as they arrive, so peak memory stays near
the size of the result. (Memory-mapped reads keep every touched page of the file resident until the file is
closed, which doubles the peak whenever tensors are converted to another dtype.)
"""
import hashlib
import json
import re
from pathlib import Path

import torch

from .errors import SpacetimeError
from .fp8 import FP8_DTYPES

# safetensors dtype names -> torch dtypes
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 * 2**20  # the format caps the JSON header at 100 MB
# wrappers some tools put around the model's own keys (ComfyUI full checkpoints, diffusers pipelines)
KNOWN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "transformer.", "first_stage_model.", "vae.")
# top-level markers that stay bare when the weights carry a prefix
MARKER_KEYS = ("scaled_fp8", "spiece_model")


# ---------------------------------------------------------------- streaming read

def read_safetensors(path, device="cpu", dtype: torch.dtype | None = None, keep_float32=None):
    """Read a .safetensors file -> (state_dict with any known prefix stripped, metadata dict).

    Floating tensors are converted to `dtype` as they are read (None keeps the file's); fp8 tensors stay fp8
    and integer tensors stay as they are. `keep_float32(key)` names small tensors to hold in float32 instead.
    """
    path = Path(path)
    header, data_start = _read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    prefix = _common_prefix(header)
    state_dict = {}
    with open(path, "rb") as f:
        reader = _TensorReader(f, data_start)
        for key, info in header.items():
            name = key.removeprefix(prefix)
            target = torch.float32 if keep_float32 is not None and keep_float32(name) else dtype
            state_dict[name] = reader.read(info, target).to(device)
    return state_dict, metadata


def read_safetensors_keys(path) -> tuple[dict[str, tuple[list[int], str]], dict]:
    """Only the header: {prefix-stripped key: (shape, safetensors dtype name)} and the metadata; reads no weights."""
    header, _ = _read_header(Path(path))
    metadata = header.pop("__metadata__", None) or {}
    prefix = _common_prefix(header)
    return {k.removeprefix(prefix): (v["shape"], v["dtype"]) for k, v in header.items()}, metadata


def _not_safetensors(path: Path, found: str) -> SpacetimeError:
    return SpacetimeError(f"{path.name} is not a complete safetensors file ({found}); expected a .safetensors "
                          "model file. Download it again (an interrupted download leaves a truncated file), or "
                          "convert .ckpt/.pt/.bin files to .safetensors.")


def _read_header(path: Path) -> tuple[dict, int]:
    """Parse and validate the header; a truncated or foreign file fails here, before any weight is read."""
    if not path.is_file():
        raise SpacetimeError(f"model file {path} does not exist; expected a .safetensors file "
                             "(put it in ComfyUI/models/<folder>/ or pass the full path).")
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        length = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if not 2 <= length <= min(_MAX_HEADER, size - 8):
            raise _not_safetensors(path, f"{size} bytes, header length field {length}")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _not_safetensors(path, f"the header is not JSON: {e}") from e
    if not isinstance(header, dict) or not all(isinstance(v, dict) for v in header.values()):
        raise _not_safetensors(path, "the header is not a table of tensors")
    data_start = 8 + length
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if data_start + end > size:
        raise _not_safetensors(path, f"truncated: {size} bytes on disk, the header describes {data_start + end}")
    return header, data_start


class _TensorReader:
    """Reads tensors from an open file. One that changes dtype goes through a single reused scratch buffer,
    so converting leaves no per-tensor temporaries behind to fragment the heap."""

    def __init__(self, f, data_start: int):
        self.f, self.data_start = f, data_start
        self.scratch = torch.empty(0, dtype=torch.uint8)

    def read(self, info: dict, dtype: torch.dtype | None) -> torch.Tensor:
        if info["dtype"] not in _DTYPES:
            raise SpacetimeError(f"tensor dtype {info['dtype']} is not supported; expected one of {sorted(_DTYPES)}.")
        stored = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        convert = dtype is not None and stored.is_floating_point and stored not in FP8_DTYPES and stored != dtype
        if not convert:
            raw = self._bytes(begin, end, torch.empty(end - begin, dtype=torch.uint8))
            return raw.view(stored).reshape(info["shape"])
        if self.scratch.numel() < end - begin:
            self.scratch = torch.empty(end - begin, dtype=torch.uint8)
        raw = self._bytes(begin, end, self.scratch[:end - begin])
        return raw.view(stored).reshape(info["shape"]).to(dtype)

    def _bytes(self, begin: int, end: int, out: torch.Tensor) -> torch.Tensor:
        self.f.seek(self.data_start + begin)
        self.f.readinto(memoryview(out.numpy()))
        return out


def _common_prefix(header: dict) -> str:
    """The known wrapper prefix every weight key shares ('' if none)."""
    keys = [k for k in header if k != "__metadata__" and k not in MARKER_KEYS]
    return next((p for p in KNOWN_PREFIXES if keys and all(k.startswith(p) for k in keys)), "")


# ---------------------------------------------------------------- what kind of file is this

_KIND_MARKERS = (  # (kind, a key that only that kind of file has, or a regex over keys)
    ("dit", re.compile(r"^(head\.modulation|blocks\.0\.self_attn\.q\.weight|condition_embedder\.time_embedder\.)")),
    ("vae", re.compile(r"^(decoder\.middle\.0\.residual\.0\.gamma|decoder\.conv_in\.|decoder\.up_blocks\.|"
                       r"decoder\.upsamples\.)")),
    ("text_encoder", re.compile(r"^(shared\.weight|encoder\.block\.0\.layer\.0\.SelfAttention\.)")),
    ("lora", re.compile(r"(lora_[AB]|lora_(up|down)|\.lora\.|\.diff_b$|\.alpha$)")),
    ("clip_vision", re.compile(r"^(visual\.transformer\.resblocks\.|vision_model\.encoder\.layers\.|"
                               r"log_scale$|visual\.proj$)")),
)
KIND_NAMES = {
    "dit": ("a Wan diffusion model (DiT)", "Spacetime Load Diffusion Model"),
    "vae": ("a video VAE", "Spacetime Load VAE"),
    "text_encoder": ("a UMT5 text encoder", "Spacetime Load Text Encoder"),
    "lora": ("a LoRA", None),
    "clip_vision": ("a CLIP-vision image encoder", "Spacetime Load CLIP Vision"),
}


def classify_checkpoint(keys) -> str:
    """'dit' | 'vae' | 'text_encoder' | 'lora' | 'clip_vision' | 'unknown', from prefix-stripped key names."""
    keys = list(keys)
    for kind, marker in _KIND_MARKERS:
        if any(marker.search(k) for k in keys):
            return kind
    return "unknown"


def describe_checkpoint(keys) -> str:
    """A sentence naming the file's kind and where it belongs, for wrong-file errors."""
    keys = list(keys)
    kind = classify_checkpoint(keys)
    if kind == "unknown":
        return f"an unrecognised file (first keys: {sorted(keys)[:4]})"
    what, node = KIND_NAMES[kind]
    if kind == "vae" and "decoder.middle.0.residual.0.gamma" in keys:
        what = "a Wan 2.2 VAE" if "decoder.upsamples.0.upsamples.0.residual.2.weight" in keys else "a Wan 2.1 VAE"
    return f"{what}; connect it to {node}" if node else f"{what}, which the pack does not load here"


# ---------------------------------------------------------------- diffusers layout of Wan

# diffusers `WanTransformer3DModel` / `WanVACETransformer3DModel` names -> the Wan/Comfy names this pack uses
_DIFFUSERS_TOP = {
    "condition_embedder.time_embedder.linear_1.": "time_embedding.0.",
    "condition_embedder.time_embedder.linear_2.": "time_embedding.2.",
    "condition_embedder.text_embedder.linear_1.": "text_embedding.0.",
    "condition_embedder.text_embedder.linear_2.": "text_embedding.2.",
    "condition_embedder.time_proj.": "time_projection.1.",
    "condition_embedder.image_embedder.norm1.": "img_emb.proj.0.",
    "condition_embedder.image_embedder.ff.net.0.proj.": "img_emb.proj.1.",
    "condition_embedder.image_embedder.ff.net.2.": "img_emb.proj.3.",
    "condition_embedder.image_embedder.norm2.": "img_emb.proj.4.",
    "condition_embedder.image_embedder.pos_embed": "img_emb.emb_pos",
    "scale_shift_table": "head.modulation",
    "proj_out.": "head.head.",
}
_DIFFUSERS_BLOCK = {
    "attn1.to_q.": "self_attn.q.", "attn1.to_k.": "self_attn.k.", "attn1.to_v.": "self_attn.v.",
    "attn1.to_out.0.": "self_attn.o.", "attn1.norm_q.": "self_attn.norm_q.", "attn1.norm_k.": "self_attn.norm_k.",
    "attn2.to_q.": "cross_attn.q.", "attn2.to_k.": "cross_attn.k.", "attn2.to_v.": "cross_attn.v.",
    "attn2.to_out.0.": "cross_attn.o.", "attn2.norm_q.": "cross_attn.norm_q.", "attn2.norm_k.": "cross_attn.norm_k.",
    "attn2.add_k_proj.": "cross_attn.k_img.", "attn2.add_v_proj.": "cross_attn.v_img.",
    "attn2.norm_added_k.": "cross_attn.norm_k_img.",
    "norm2.": "norm3.",  # diffusers orders the norms 1, 2 (cross-attn, affine), 3; Wan calls the affine one norm3
    "ffn.net.0.proj.": "ffn.0.", "ffn.net.2.": "ffn.2.",
    "scale_shift_table": "modulation",
    "proj_in.": "before_proj.", "proj_out.": "after_proj.",  # VACE blocks
}
_BLOCK_KEY = re.compile(r"^((?:vace_)?blocks\.\d+\.)(.*)$")


def is_diffusers_layout(keys) -> bool:
    return any(k.startswith("condition_embedder.") for k in keys)


def _rename(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name.startswith(old):
            return new + name[len(old):]
    return name  # left as is: an unknown key is reported by the loader's key check


def diffusers_to_wan_key(key: str) -> str:
    block = _BLOCK_KEY.match(key)
    return block.group(1) + _rename(block.group(2), _DIFFUSERS_BLOCK) if block else _rename(key, _DIFFUSERS_TOP)


def from_diffusers(state_dict: dict) -> dict:
    """Rename a diffusers-layout Wan state dict to the Wan/Comfy key names (tensors untouched)."""
    out = {diffusers_to_wan_key(key): tensor for key, tensor in state_dict.items()}
    if len(out) != len(state_dict):
        raise SpacetimeError(f"the diffusers key map folded {len(state_dict)} keys into {len(out)}; "
                             "this file is not a diffusers Wan transformer.")
    return out


def file_sha256(path, chunk: int = 2**24) -> str:
    """Hex sha256 of a file, read in 16 MB chunks (for provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()

"""load_dit / load_model: a Wan DiT file -> WanDiT, and SpacetimeModel, the SPACETIME_MODEL the nodes pass around."""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .checkpoint import (classify_checkpoint, describe_checkpoint, diffusers_to_wan_key, file_sha256,
                         from_diffusers, is_diffusers_layout, read_safetensors, read_safetensors_keys)
from .dit import WanDiT
from .dit_config import DiTConfig, SamplingDefaults, detect_dit_config, expert_pair_config
from .errors import SpacetimeError
from .fp8 import FP8_DTYPES, Linear, dequantize, is_fp8
from .lora import Lora, LoraDiT, read_lora

# small tensors on the timestep path, kept in float32 as the reference computes them (autocast float32)
_FLOAT32_KEYS = re.compile(r"(^|\.)modulation$|^time_embedding\.|^time_projection\.")
_FP8_MARKERS = ("scaled_fp8",)


# ---------------------------------------------------------------- one DiT file

def load_dit(path, dtype: torch.dtype | None = torch.float32, device="cpu", attention: str = "sdpa",
             block_swap: int = 0) -> WanDiT:
    """Load a Wan DiT (Comfy, prefixed or diffusers keys; fp32/bf16/fp16/fp8/fp8_scaled); `dit.config` says what it is.

    dtype None keeps the file's precision; an fp8 dtype stores Linear weights in fp8 (per-tensor scale) and
    computes in bf16. fp8 weights from the file stay fp8 in memory and are upcast one layer at a time.
    """
    path = Path(path)
    diffusers = _check_is_dit(path)
    compute = torch.bfloat16 if dtype in FP8_DTYPES else dtype
    to_wan = diffusers_to_wan_key if diffusers else str
    state_dict, metadata = read_safetensors(path, dtype=compute, keep_float32=lambda k: bool(
        _FLOAT32_KEYS.search(to_wan(k))))
    if diffusers:
        state_dict = from_diffusers(state_dict)
    scales = _pop_fp8_scales(state_dict)
    config = detect_dit_config(state_dict, metadata)
    with torch.device("meta"):
        model = WanDiT(config, attention)
    _check_keys(model, state_dict, path)
    compute = compute or _file_compute_dtype(state_dict)
    _prepare_fp8(model, state_dict, scales, compute, quantize=dtype in FP8_DTYPES)
    model.load_state_dict(state_dict, strict=True, assign=True)
    for name, module in model.named_modules():
        if isinstance(module, Linear):
            module.attach_scale(scales.get(name), compute)
    return model.requires_grad_(False).eval().place(device, block_swap)


def _check_is_dit(path: Path) -> bool:
    """Fail before reading any weight if the file is another kind of model; True for the diffusers layout."""
    keys, _ = read_safetensors_keys(path)
    if classify_checkpoint(keys) != "dit":
        raise SpacetimeError(f"{path.name} is {describe_checkpoint(keys)}; expected a Wan diffusion model "
                             "(models/diffusion_models) for Spacetime Load Diffusion Model.")
    return is_diffusers_layout(keys)


def _pop_fp8_scales(state_dict: dict) -> dict[str, torch.Tensor]:
    """Remove Comfy-Org fp8_scaled extras; return {module name: scale_weight}.

    `scale_input` is dropped: it only matters for fp8 x fp8 matmuls, and weights here are upcast instead.
    """
    for marker in _FP8_MARKERS:
        state_dict.pop(marker, None)
    for key in [k for k in state_dict if k.endswith(".scale_input")]:
        del state_dict[key]
    return {k.removesuffix(".scale_weight"): state_dict.pop(k).float()
            for k in [k for k in state_dict if k.endswith(".scale_weight")]}


def _check_keys(model: WanDiT, state_dict: dict, path: Path) -> None:
    """Every expected key present with its expected shape, nothing unknown (the nanoGPT-style load check)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(expected.keys() - state_dict.keys())
    unknown = sorted(state_dict.keys() - expected.keys())
    wrong = [f"{k} {tuple(state_dict[k].shape)} (expected {expected[k]})"
             for k in expected.keys() & state_dict.keys() if tuple(state_dict[k].shape) != expected[k]]
    if missing or unknown or wrong:
        raise SpacetimeError(
            f"{path.name} does not match the {model.config.variant} layout it was detected as: "
            f"{len(missing)} missing {missing[:5]}, {len(unknown)} unknown {unknown[:5]}, {len(wrong)} wrong shape "
            f"{wrong[:3]}. Expected a complete Wan 2.1/2.2 diffusion model file; re-download it, or report the "
            "file if it is a Wan variant the pack does not know.")


def _file_compute_dtype(state_dict: dict) -> torch.dtype:
    """With dtype None: compute in the precision of the file's (non-fp8) floating weights."""
    dtypes = {t.dtype for k, t in state_dict.items()
              if t.is_floating_point() and not is_fp8(t) and not _FLOAT32_KEYS.search(k)}
    return next(iter(dtypes)) if len(dtypes) == 1 else torch.float32


def _prepare_fp8(model: WanDiT, state_dict: dict, scales: dict, compute: torch.dtype, quantize: bool) -> None:
    """fp8 stays only on Linear weights (upcast per call); any other fp8 tensor is dequantized now."""
    linear_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, Linear)}
    for key, tensor in state_dict.items():
        module = key.rsplit(".", 1)[0]
        if is_fp8(tensor) and key not in linear_weights:
            state_dict[key] = dequantize(tensor, scales.pop(module, None), compute)
        elif quantize and key in linear_weights and not is_fp8(tensor):
            state_dict[key], scales[module] = _quantize(tensor)


def _quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float weight -> (fp8 e4m3fn, per-tensor scale) with the largest magnitude mapped to the fp8 maximum."""
    scale = weight.abs().amax().float().clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
    return (weight.float() / scale).to(torch.float8_e4m3fn), scale


# ---------------------------------------------------------------- the SPACETIME_MODEL object

@dataclass
class SpacetimeModel:
    """One DiT, or the two Wan 2.2 A14B experts (high-noise `dit`, `low_noise`) with the sigma to switch at."""
    dit: WanDiT
    config: DiTConfig
    paths: tuple[Path, ...]
    low_noise: WanDiT | None = None
    loras: tuple[tuple[Lora, float, str], ...] = ()  # (LoRA, strength, expert: "both" | "high_noise" | "low_noise")
    _sha256: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def mechanism(self) -> str:
        return self.config.mechanism

    @property
    def sampling(self) -> SamplingDefaults | None:
        return self.config.sampling

    @property
    def boundary(self) -> float | None:
        """Sigma at and above which the high-noise expert runs (A14B only)."""
        return self.sampling.boundary if self.low_noise is not None else None

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.paths)

    @property
    def sha256(self) -> tuple[str, ...]:
        """sha256 of each file, computed on first use (for provenance manifests)."""
        if self._sha256 is None:
            self._sha256 = tuple(file_sha256(p) for p in self.paths)
        return self._sha256

    def expert(self, sigma: float) -> WanDiT | LoraDiT:
        """The DiT to run at noise level sigma (A14B: its high-noise expert while sigma >= boundary), with the
        LoRAs meant for it applied during each call."""
        high = self.low_noise is None or sigma >= self.boundary
        dit = self.dit if high else self.low_noise
        loras = [(lora, strength) for lora, strength, expert in self.loras
                 if expert == "both" or expert == ("high_noise" if high else "low_noise")]
        return LoraDiT(dit, loras) if loras else dit

    def with_lora(self, path, strength: float = 1.0, expert: str = "both") -> "SpacetimeModel":
        """A new SpacetimeModel on the same weights with one more LoRA (this one is left as it is)."""
        if expert not in ("both", "high_noise", "low_noise"):
            raise SpacetimeError(f"expert '{expert}'; expected both, high_noise or low_noise")
        if expert != "both" and self.low_noise is None:
            raise SpacetimeError(f"expert '{expert}' names one of Wan 2.2 A14B's two experts, but this model has "
                                 "one DiT; choose both.")
        lora = read_lora(path, self.dit, device=self.dit.patch_embedding.weight.device)  # block swap keeps it there
        return replace(self, loras=self.loras + ((lora, strength, expert),))


def load_model(path, low_noise_path=None, dtype: torch.dtype | None = torch.float32, device="cpu",
               attention: str = "sdpa", block_swap: int = 0) -> SpacetimeModel:
    """Load a DiT file, or a Wan 2.2 A14B high-noise + low-noise pair, as a SpacetimeModel."""
    dit = load_dit(path, dtype, device, attention, block_swap)
    if low_noise_path is None:
        return SpacetimeModel(dit, dit.config, (Path(path),))
    low = load_dit(low_noise_path, dtype, device, attention, block_swap)
    if low.config != dit.config:
        raise SpacetimeError(f"the two experts differ: {Path(path).name} is {dit.config.variant} "
                             f"(dim {dit.config.dim}, in {dit.config.in_dim}) but {Path(low_noise_path).name} is "
                             f"{low.config.variant} (dim {low.config.dim}, in {low.config.in_dim}); expected the "
                             "high-noise and low-noise files of the same Wan 2.2 A14B model.")
    return SpacetimeModel(dit, expert_pair_config(dit.config), (Path(path), Path(low_noise_path)), low_noise=low)

"""Wan LoRAs: read a LoRA file in the key layouts trainers write, and apply it while the DiT runs.

A LoRA changes a Linear layer's weight W by `strength * alpha / rank * up @ down` (up [out, rank], down
[rank, in]); some files also carry whole differences (`.diff` for a weight, `.diff_b` for a bias), e.g. for the
norms. The DiT's weights are never rewritten: the low-rank update is added to the Linear's output by a forward
hook (so fp8 weights stay fp8 and no second copy of a 14B model is made), and the few whole differences swap in
a patched copy of their (small) parameter for the duration of the call. A model with LoRAs is therefore a view:
the loader's model, shared with other nodes, is unchanged once the call returns.

Key layouts read (each with or without a `diffusion_model.` / `transformer.` prefix): ComfyUI and kohya
(`lora_up` / `lora_down` / `alpha`), PEFT and diffusers (`lora_B` / `lora_A`, diffusers module names such as
`blocks.0.attn1.to_q`), kohya and musubi-tuner's flattened names (`lora_unet_blocks_0_self_attn_q`).
"""
import contextlib
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import describe_checkpoint, diffusers_to_wan_key, file_sha256, read_safetensors
from .errors import SpacetimeError
from .fp8 import is_fp8

# (up, down) suffixes of a low-rank pair, as the trainers write them
_PAIRS = ((".lora_up.weight", ".lora_down.weight"), (".lora_B.weight", ".lora_A.weight"),
          (".lora.up.weight", ".lora.down.weight"), ("_lora.up.weight", "_lora.down.weight"),
          (".lora_B.default.weight", ".lora_A.default.weight"))
_SINGLE = {".alpha": "alpha", ".diff": "diff", ".diff_b": "diff_b"}
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.", "lora_unet__",
             "lora_unet_", "lora_transformer_", "lycoris_")
# module names only diffusers' Wan layout has (its norm2 is Wan's norm3, so the whole file is read one way)
_DIFFUSERS_NAMES = re.compile(r"(^|\.)(attn[12]\.|ffn\.net\.|condition_embedder\.|proj_out|scale_shift_table)")
_UNSUPPORTED = re.compile(r"(hada_w[12]_[ab]|lokr_w[12]|\.dora_scale$|\.lora_mid\.)")


@dataclass
class ModulePatch:
    """What a LoRA changes in one DiT module (or bare parameter, e.g. a block's `modulation`)."""
    up: torch.Tensor | None = None  # [out, rank]
    down: torch.Tensor | None = None  # [rank, in] (or [rank, in, *kernel] for a convolution)
    alpha: float | None = None  # the update is scaled by alpha / rank; no alpha means 1
    diffs: dict[str, torch.Tensor] = field(default_factory=dict)  # DiT parameter name -> difference

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.down.shape[0]

    def full_update(self) -> torch.Tensor:
        """scale * up @ down as one weight-shaped difference [out, in, *kernel] (float32)."""
        down = self.down.float()
        return self.scale * (self.up.float().flatten(1) @ down.flatten(1)).reshape(self.up.shape[0], *down.shape[1:])


@dataclass(frozen=True)
class Lora:
    """A LoRA file read against one DiT's module names: {module name: patch}; `skipped`: the file's layers the
    DiT does not have (e.g. a Wan 2.1 I2V LoRA's image cross-attention on a Wan 2.2 I2V expert)."""
    path: Path
    patches: dict[str, ModulePatch]
    skipped: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @functools.cached_property
    def sha256(self) -> str:
        """Of the file, computed on first use (for provenance manifests)."""
        return file_sha256(self.path)

    def describe(self) -> str:
        low_rank = sum(p.up is not None for p in self.patches.values())
        diffs = sum(len(p.diffs) for p in self.patches.values())
        text = f"{self.name}: {low_rank} low-rank layers" + (f", {diffs} whole differences" if diffs else "")
        if self.skipped:
            names = ", ".join(self.skipped[:3])
            text += f"; {len(self.skipped)} layers this model does not have skipped ({names}, ...)"
        return text


def read_lora(path, dit: nn.Module, device="cpu") -> Lora:
    """Read a LoRA file onto `device` (where the DiT computes: the LoRA is small, and each call then finds it
    there) and resolve its keys to `dit`'s modules; a clear error for anything it cannot place."""
    path = Path(path)
    tensors, _ = read_safetensors(path, device=device)  # prefix-stripped, the file's dtypes
    unsupported = sorted(k for k in tensors if _UNSUPPORTED.search(k))
    if unsupported:
        raise SpacetimeError(f"{path.name} is a LyCORIS / DoRA file ({unsupported[0]}, ...); the pack applies plain "
                             "LoRAs (lora_up/lora_down or lora_A/lora_B, with alpha, diff and diff_b); convert it "
                             "to a plain LoRA or use ComfyUI's own LoRA loader with ComfyUI's Wan nodes.")
    parts, stray = _split_keys(tensors)
    if not parts:
        raise SpacetimeError(f"{path.name} is {describe_checkpoint(tensors)}, not a LoRA; expected a LoRA file "
                             "from the loras folder (keys ending in lora_up/lora_down, lora_A/lora_B, diff or diff_b).")
    names = _DiTNames(dit)
    diffusers = any(_DIFFUSERS_NAMES.search(target) for target in parts)
    patches, unplaced = {}, []
    for target, found in parts.items():
        module = names.resolve(diffusers_to_wan_key(target + ".weight").removesuffix(".weight") if diffusers
                               else target)
        if module is None:
            unplaced.append(target)
            continue
        patches[module] = _patch(module, found, names, path)
    if not patches or stray:  # some absent layers are normal across Wan variants (ComfyUI skips them too)
        raise SpacetimeError(
            f"{path.name} does not fit this {dit.config.variant} model: {len(unplaced)} of the {len(parts)} layers "
            f"it changes are not in the model ({unplaced[:3]}) and {len(stray)} keys are not LoRA weights "
            f"({stray[:3]}); expected a LoRA trained for Wan 2.1/2.2 (the same family as the loaded model).")
    return Lora(path, patches, tuple(sorted(unplaced)))


def _split_keys(tensors: dict) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """{target name: {'up'|'down'|'alpha'|'diff'|'diff_b': tensor}} and the keys that fit no pattern."""
    parts, stray = {}, []
    for key, tensor in tensors.items():
        target, kind = _parse_key(key)
        if target is None:
            stray.append(key)
            continue
        parts.setdefault(_strip_prefix(target), {})[kind] = tensor
    return parts, sorted(stray)


def _parse_key(key: str) -> tuple[str | None, str | None]:
    for up, down in _PAIRS:
        for suffix, kind in ((up, "up"), (down, "down")):
            if key.endswith(suffix):
                return key[:-len(suffix)], kind
    for suffix, kind in _SINGLE.items():
        if key.endswith(suffix):
            return key[:-len(suffix)], kind
    return None, None


def _strip_prefix(target: str) -> str:
    return next((target[len(p):] for p in _PREFIXES if target.startswith(p)), target)


class _DiTNames:
    """A DiT's module and parameter names, and the other spellings LoRA files use for them."""

    def __init__(self, dit: nn.Module):
        self.modules = dict(dit.named_modules())
        self.parameters = dict(dit.named_parameters())
        self.flattened = {name.replace(".", "_"): name for name in [*self.modules, *self.parameters] if name}

    def resolve(self, target: str) -> str | None:
        """The DiT name a LoRA target means: as is, or flattened (kohya's `blocks_0_self_attn_q`)."""
        for name in (target, self.flattened.get(target)):
            if name and (name in self.modules or name in self.parameters):
                return name
        return None


def _patch(module_name: str, found: dict, names: _DiTNames, path: Path) -> ModulePatch:
    """One target's tensors as a ModulePatch, checked against the DiT's shapes."""
    patch = ModulePatch(alpha=float(found["alpha"]) if "alpha" in found else None)
    if ("up" in found) != ("down" in found):
        raise SpacetimeError(f"{path.name}: {module_name} has only one half of its low-rank pair; the file is "
                             "incomplete, download it again.")
    weight_name = f"{module_name}.weight" if module_name in names.modules else module_name
    weight = names.parameters.get(weight_name)
    if "up" in found:
        patch.up, patch.down = found["up"], found["down"]
        _check_shape(path, module_name, (patch.up.shape[0], *patch.down.shape[1:]), weight)
        if not isinstance(names.modules.get(module_name), nn.Linear):  # e.g. the patch embedding's Conv3d
            patch.diffs[weight_name] = patch.full_update()
            patch.up = patch.down = None
    if "diff" in found:
        _check_shape(path, module_name, found["diff"].shape, weight)
        patch.diffs[weight_name] = patch.diffs.get(weight_name, 0) + found["diff"].float()
    if "diff_b" in found:
        bias = names.parameters.get(f"{module_name}.bias")
        _check_shape(path, f"{module_name} (bias)", found["diff_b"].shape, bias)
        patch.diffs[f"{module_name}.bias"] = found["diff_b"].float()
    return patch


def _check_shape(path: Path, name: str, shape, parameter: torch.Tensor | None) -> None:
    if parameter is None or tuple(shape) != tuple(parameter.shape):
        expected = "no such parameter" if parameter is None else f"the model's {tuple(parameter.shape)}"
        raise SpacetimeError(f"{path.name} changes {name} with shape {tuple(shape)}, but the loaded model has "
                             f"{expected}: the LoRA was trained for another Wan model (another size or variant); "
                             "use a LoRA made for the loaded model.")


# ---------------------------------------------------------------- applying LoRAs for one call

@contextlib.contextmanager
def applied(dit: nn.Module, loras: list[tuple[Lora, float]]):
    """While inside: `dit` computes as if each LoRA were merged at its strength. Restores everything on exit."""
    hooks, swapped = [], {}  # looked up by name, not by listing the whole model: this runs for every DiT call
    try:
        diffs: dict[str, list[tuple[torch.Tensor, float]]] = {}
        for lora, strength in loras:
            for name, patch in lora.patches.items():
                if patch.up is not None:
                    hooks.append(dit.get_submodule(name).register_forward_hook(_low_rank_hook(patch, strength)))
                for parameter, diff in patch.diffs.items():
                    diffs.setdefault(parameter, []).append((diff, strength))
        for name, changes in diffs.items():
            parameter = dit.get_parameter(name)
            swapped[name] = parameter.data
            parameter.data = _patched(name, swapped[name], changes)
        yield dit
    finally:
        for hook in hooks:
            hook.remove()
        for name, original in swapped.items():
            dit.get_parameter(name).data = original


def _low_rank_hook(patch: ModulePatch, strength: float):
    factor = strength * patch.scale

    def add_update(module, args, out):
        x = args[0].to(out.dtype)
        down, up = (t.to(device=out.device, dtype=out.dtype) for t in (patch.down, patch.up))
        return out + factor * F.linear(F.linear(x, down), up)

    return add_update


def _patched(name: str, original: torch.Tensor, changes) -> torch.Tensor:
    if is_fp8(original):
        raise SpacetimeError(f"a LoRA changes the whole weight {name}, which is stored in fp8; load the model with "
                             "weight_dtype bf16 or fp16 to use this LoRA.")
    total = original.float()
    for diff, strength in changes:
        total = total + strength * diff.to(original.device)
    return total.to(original.dtype)


class LoraDiT:
    """A DiT to call with LoRAs applied for the call (what SpacetimeModel.expert returns when it has LoRAs)."""

    def __init__(self, dit: nn.Module, loras: list[tuple[Lora, float]]):
        self.dit, self.loras = dit, loras

    def __call__(self, *args, **kwargs):
        with applied(self.dit, self.loras):
            return self.dit(*args, **kwargs)

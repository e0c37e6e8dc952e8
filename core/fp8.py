"""fp8 weights kept fp8 in memory and upcast one layer at a time (Comfy-Org `fp8_scaled` and plain fp8 files).

A `fp8_scaled` file stores each Linear weight as float8_e4m3fn with a per-layer `scale_weight`;
the real weight is `w.float() * scale_weight`. Plain fp8 files have no scale (scale 1).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def is_fp8(t: torch.Tensor) -> bool:
    return t.dtype in FP8_DTYPES


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """fp8 weight (x scale) -> `dtype`, through float32 so the scale is applied at full precision."""
    w = weight.to(torch.float32)
    if scale is not None:
        w = w * scale.to(device=w.device, dtype=torch.float32)
    return w.to(dtype)


class Linear(nn.Linear):
    """nn.Linear that casts its input to the weight's compute dtype, as autocast would.

    That lets a float32 residual stream feed bf16/fp16 layers, and lets fp8 weights stay fp8: they are upcast
    (times `scale_weight` when the file has one) to `compute_dtype` for each call only.
    """
    compute_dtype: torch.dtype = torch.float32  # used only when the weight is fp8; set by the loader

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("scale_weight", None)  # a tensor only for fp8_scaled files (see attach_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if is_fp8(w):
            w = dequantize(w, self.scale_weight, self.compute_dtype)
        bias = None if self.bias is None else self.bias.to(w.dtype)
        return F.linear(x.to(w.dtype), w, bias)

    def attach_scale(self, scale: torch.Tensor | None, compute_dtype: torch.dtype) -> None:
        if scale is not None:
            self.scale_weight = scale.to(torch.float32)
        self.compute_dtype = compute_dtype

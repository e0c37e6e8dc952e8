"""One attention function over [B, L, N, E] tensors with interchangeable kernels.

B batch, L tokens (queries Lq, keys Lk), N heads, E head dim. Every backend computes plain softmax attention
without masking; the backends differ only in speed and in the packages they need.
"""
import importlib.util

import torch
import torch.nn.functional as F

from .errors import SpacetimeError

# backend name -> pip package that provides it (None: built into torch)
BACKENDS = {"sdpa": None, "flash_attn": "flash-attn", "sageattention": "sageattention"}


def check_backend(backend: str) -> str:
    """Fail early, where the option is chosen, if the backend is unknown or its package is missing."""
    if backend not in BACKENDS:
        raise SpacetimeError(f"attention backend {backend!r} is unknown; expected one of {sorted(BACKENDS)}.")
    package = BACKENDS[backend]
    if package is not None and importlib.util.find_spec(backend) is None:
        raise SpacetimeError(
            f"attention backend {backend!r} was asked for but its package is not installed; "
            f"run `pip install {package}` or choose attention='sdpa'.")
    return backend


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "sdpa") -> torch.Tensor:
    """softmax(q k^T / sqrt(E)) v for q [B, Lq, N, E], k/v [B, Lk, N, E] -> [B, Lq, N, E]."""
    if backend == "sdpa":
        # SDPA wants heads before tokens: [B, N, L, E]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    check_backend(backend)
    if backend == "flash_attn":
        from flash_attn import flash_attn_func
        return _half_precision(flash_attn_func, q, k, v)
    from sageattention import sageattn
    return _half_precision(lambda q, k, v: sageattn(q, k, v, tensor_layout="NHD"), q, k, v)


def _half_precision(kernel, q, k, v):
    """Run a fp16/bf16-only kernel: cast in, cast the result back to v's dtype."""
    dtype = v.dtype if v.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    return kernel(q.to(dtype), k.to(dtype), v.to(dtype)).to(v.dtype)

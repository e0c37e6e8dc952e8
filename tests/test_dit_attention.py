"""The attention function: sdpa equals the textbook formula; asking for a missing kernel names its package."""
import importlib.util

import pytest
import torch

from comfyui_spacetime.core.attention import attention, check_backend
from comfyui_spacetime.core.errors import SpacetimeError
from tests.tiny_dit import tiny_dit


def test_sdpa_is_softmax_attention_over_blhe():
    q, k, v = torch.randn(3, 2, 7, 4, 16, dtype=torch.float64).unbind(0)
    k, v = k[:, :5], v[:, :5]  # 5 keys for 7 queries
    scores = torch.einsum("bqnd,bknd->bnqk", q, k) / 4.0
    expected = torch.einsum("bnqk,bknd->bqnd", scores.softmax(-1), v)
    torch.testing.assert_close(attention(q, k, v), expected)


@pytest.mark.parametrize("backend, package", [("flash_attn", "flash-attn"), ("sageattention", "sageattention")])
def test_missing_backend_names_the_pip_package(backend, package):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(SpacetimeError, match=f"pip install {package}"):
        check_backend(backend)
    with pytest.raises(SpacetimeError, match=f"pip install {package}"):
        tiny_dit("t2v").set_attention(backend)


def test_unknown_backend_lists_the_choices():
    with pytest.raises(SpacetimeError, match="flash_attn.*sageattention.*sdpa"):
        check_backend("xformers")

"""The maths of WanDiT: RoPE, time embedding, modulation, per-frame timesteps, unpatchify, input errors."""
import math

import pytest
import torch

from comfyui_spacetime.core.dit import apply_rope, modulate, rope_angles, sinusoidal_embedding
from comfyui_spacetime.core.errors import SpacetimeError
from tests.tiny_dit import tiny_dit, tiny_inputs

ROPE_DIMS = (44, 42, 42)


def test_sinusoidal_embedding_cos_then_sin():
    e = sinusoidal_embedding(torch.tensor([0.0, 1000.0]), 256)
    assert e.shape == (2, 256) and e.dtype == torch.float32
    assert torch.equal(e[0, :128], torch.ones(128)) and torch.equal(e[0, 128:], torch.zeros(128))
    freq = 10000 ** (-3 / 128)
    assert e[1, 3].item() == pytest.approx(math.cos(1000 * freq), abs=1e-6)
    assert e[1, 128 + 3].item() == pytest.approx(math.sin(1000 * freq), abs=1e-6)


def test_rope_preserves_norm_and_is_relative():
    grid = (3, 4, 5)
    cos, sin = rope_angles(grid, ROPE_DIMS, "cpu")
    assert cos.shape == (60, 1, 64)
    q, k = torch.randn(2, 1, 60, 2, 128, dtype=torch.float64).unbind(0)
    rq, rk = apply_rope(q, (cos, sin)), apply_rope(k, (cos, sin))
    torch.testing.assert_close(rq.norm(dim=-1), q.float().norm(dim=-1), rtol=1e-5, atol=1e-5)
    # same query/key contents at two pairs of positions with the same (dt, dh, dw) offset -> same score
    index = lambda t, h, w: (t * 4 + h) * 5 + w
    q_same = q[:, [index(0, 1, 1)]].expand(1, 60, 2, 128)
    k_same = k[:, [index(0, 0, 0)]].expand(1, 60, 2, 128)
    rq, rk = apply_rope(q_same, (cos, sin)), apply_rope(k_same, (cos, sin))
    score = lambda i, j: (rq[0, i] * rk[0, j]).sum(-1)
    torch.testing.assert_close(score(index(0, 1, 1), index(0, 0, 0)), score(index(2, 3, 4), index(2, 2, 3)))
    assert not torch.allclose(score(index(0, 1, 1), index(0, 0, 0)), score(index(0, 1, 1), index(1, 0, 0)))


def test_rope_axes_own_their_channel_slices():
    cos, sin = rope_angles((2, 3, 4), ROPE_DIMS, "cpu")
    angles = torch.atan2(sin, cos).view(2, 3, 4, 64)
    # frame index only moves the first 22 pairs, row the next 21, column the last 21
    assert torch.equal(angles[1, 0, 0, 22:], torch.zeros(42, dtype=torch.float64))
    assert torch.all(angles[1, 0, 0, 1:22] > 0)
    assert torch.equal(angles[0, 1, 0, :22], torch.zeros(22, dtype=torch.float64))
    assert torch.equal(angles[0, 0, 1, :43], torch.zeros(43, dtype=torch.float64))
    assert angles[0, 0, 1, 43].item() == pytest.approx(1.0)


def test_modulate_is_scale_then_shift():
    x = torch.ones(1, 2, 3, 4)
    out = modulate(x, torch.full((1, 2, 1, 4), 0.5), torch.full((1, 2, 1, 4), 1.0))
    assert torch.equal(out, torch.full((1, 2, 3, 4), 2.5))


@pytest.mark.parametrize("family", ["t2v", "ti2v"])
def test_per_frame_timesteps_equal_scalar_when_shared(family):
    model = tiny_dit(family)
    x, t, context, _, _ = tiny_inputs(model)
    with torch.no_grad():
        scalar = model(x, t, context)
        per_frame = model(x, t[:, None].expand(1, 3), context)
    assert scalar.shape == (1, model.config.out_dim, 3, 4, 6)
    torch.testing.assert_close(per_frame, scalar, rtol=0, atol=1e-5)


def test_per_frame_timesteps_act_per_frame():
    model = tiny_dit("ti2v")
    x, _, context, _, _ = tiny_inputs(model)
    with torch.no_grad():
        base = model(x, torch.tensor([[0.0, 500.0, 500.0]]), context)
        moved = model(x, torch.tensor([[999.0, 500.0, 500.0]]), context)
    assert (base - moved).abs().amax(dim=(0, 1, 3, 4))[0] > 1e-3  # the frame whose timestep changed moves


def test_unpatchify_inverts_patch_order():
    model = tiny_dit("t2v")
    tokens = torch.arange(1 * 6 * 4 * 16, dtype=torch.float32).view(1, 6, 64)  # grid (1, 2, 3), 4 * 16 per token
    out = model.unpatchify(tokens, (1, 2, 3))
    assert out.shape == (1, 16, 1, 4, 6)
    # token (h=1, w=2), sub-patch (ph=1, pw=0), channel 5 -> pixel (2*1+1, 2*2+0)
    assert out[0, 5, 0, 3, 4].item() == tokens[0, 1 * 3 + 2, (1 * 2 + 0) * 16 + 5].item()


def test_a_short_prompt_is_padded_with_zero_rows_as_wans_reference_does():
    model = tiny_dit("t2v")
    x, t, context, _, _ = tiny_inputs(model)  # 5 prompt tokens
    padded = torch.cat([context, torch.zeros(1, model.config.text_len - 5, context.shape[-1])], dim=1)
    with torch.no_grad():
        assert torch.equal(model(x, t, context), model(x, t, padded))
        as_given = tiny_dit("t2v", text_len=0)
        assert not torch.allclose(as_given(x, t, context), as_given(x, t, padded), atol=1e-3)


def test_per_token_timesteps_shared_within_each_frame_are_per_frame_ones():
    model = tiny_dit("ti2v")
    x, _, context, _, _ = tiny_inputs(model)  # 3 latent frames of 2x3 patches
    per_frame = torch.tensor([[0.0, 400.0, 700.0]])
    per_token = per_frame[:, :, None].expand(-1, -1, 6).flatten(1)  # [1, 18]
    with torch.no_grad():
        assert torch.equal(model(x, per_token, context), model(x, per_frame, context))
    per_token[0, 7] = 1.0
    with pytest.raises(SpacetimeError, match="differ within a latent frame"):
        model(x, per_token, context)


def test_bad_inputs_name_the_fix():
    model = tiny_dit("ti2v")
    x, t, context, _, _ = tiny_inputs(model)
    with pytest.raises(SpacetimeError, match="Wan 2.1 VAE"):
        model(x[:, :16], t, context)
    with pytest.raises(SpacetimeError, match="text embedding is 32 wide"):
        model(x, t, context[..., :32])
    with pytest.raises(SpacetimeError, match="timestep has shape"):
        model(x, torch.zeros(1, 2), context)
    with pytest.raises(SpacetimeError, match="not divisible"):
        model(x[..., :5], t, context)

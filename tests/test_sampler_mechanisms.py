"""What the denoiser feeds the DiT for each conditioning mechanism, at every frame position, and CFG / experts."""
import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.sampler.denoise import Denoiser, WindowInputs, resolve_mechanism
from tests.tiny_sampler import oracle_model

B, C, T, H, W = 2, 16, 4, 2, 2


def inputs(mechanism, strength=(1.0, 0.0, 0.0, 0.5), cfg=1.0):
    g = torch.Generator().manual_seed(0)
    return WindowInputs(
        mechanism=mechanism,
        strength=torch.tensor(strength),
        known=torch.randn(1, C, T, H, W, generator=g),
        noise=torch.randn(B, C, T, H, W, generator=g),
        gray=torch.randn(1, C, T, H, W, generator=g) if mechanism in ("concat", "vace") else None,
        slots=torch.tensor(strength).expand(4, -1) if mechanism == "concat" else None,
        context=torch.full((1, 3, 64), 1.0),
        negative=None if cfg == 1 else torch.full((1, 5, 64), -1.0),
    )


def run(family, mechanism, sigma, **kw):
    model = oracle_model(family)
    window = inputs(mechanism, **kw)
    x = torch.randn(B, C, T, H, W, generator=torch.Generator().manual_seed(1))
    denoised = Denoiser(model, window, kw.get("cfg", 1.0))(x, torch.tensor(sigma))
    return model.dit.calls, window, x, denoised


def frames(t, mask):
    return t[:, :, mask]


@pytest.mark.parametrize("sigma, active", [(0.8, [1, 0, 0, 1]), (0.3, [1, 0, 0, 0])])
def test_per_token_known_frames_are_clean_with_timestep_zero(sigma, active):
    """Strength 0.5 pins its frame only while sigma > 0.5; strength 1 always; strength 0 never."""
    (call,), window, x, denoised = run("ti2v", "per_token", sigma)
    active = torch.tensor(active, dtype=torch.bool)
    assert call.t.shape == (B, T)
    assert call.t[0].tolist() == pytest.approx([0 if a else sigma * 1000 for a in active.tolist()])
    assert torch.equal(frames(call.x, active), frames(window.known.expand(B, -1, -1, -1, -1), active))
    assert torch.equal(frames(call.x, ~active), frames(x, ~active))
    assert torch.equal(frames(denoised, active), frames(window.known.expand(B, -1, -1, -1, -1), active))
    assert torch.allclose(frames(denoised, ~active), torch.ones(()))  # the oracle's x0 for prompt value 1


def test_renoise_known_frames_follow_the_noise_level():
    sigma = 0.6
    (call,), window, x, denoised = run("t2v", "renoise", sigma)
    active = torch.tensor([True, False, False, True])
    renoised = sigma * window.noise + (1 - sigma) * window.known
    assert call.t.tolist() == [sigma * 1000] * B
    torch.testing.assert_close(frames(call.x, active), frames(renoised, active))
    assert torch.equal(frames(call.x, ~active), frames(x, ~active))
    assert torch.equal(frames(denoised, active), frames(window.known.expand(B, -1, -1, -1, -1), active))


def test_concat_channels_are_noise_mask_image():
    (call,), window, x, denoised = run("i2v", "concat", 0.8)
    assert call.x.shape == (B, 16 + 4 + 16, T, H, W)
    assert torch.equal(call.x[:, :16], x)
    mask = call.x[:, 16:20]
    assert mask[:, :, :, 0, 0].tolist() == [[[1, 0, 0, 1]] * 4] * B  # 4 channels = the pixel frames of each
    image = call.x[:, 20:]
    assert torch.equal(image[:, :, 0], window.known[:, :, 0].expand(B, -1, -1, -1))
    assert torch.equal(image[:, :, 1], window.gray[:, :, 1].expand(B, -1, -1, -1))
    assert torch.allclose(denoised, torch.ones(()))  # the model generates every frame, known ones included


def test_vace_context_is_inactive_reactive_mask():
    (call,), window, x, _ = run("vace", "vace", 0.3)  # only the strength-1 frame is active at 0.3
    assert torch.equal(call.x, x) and call.vace.shape == (B, 16 + 16 + 64, T, H, W)
    inactive, reactive, mask = call.vace[:, :16], call.vace[:, 16:32], call.vace[:, 32:]
    assert torch.equal(inactive[:, :, 0], window.known[:, :, 0].expand(B, -1, -1, -1))
    assert torch.equal(inactive[:, :, 3], window.gray[:, :, 3].expand(B, -1, -1, -1))
    assert torch.equal(reactive, window.gray.expand(B, -1, -1, -1, -1))
    assert mask[0, :, :, 0, 0].unique(dim=0).tolist() == [[0, 1, 1, 1]]  # 0 = known, as the reference


def test_cfg_runs_two_passes_and_extrapolates():
    calls, _, _, denoised = run("t2v", "renoise", 0.7, cfg=3.0, strength=(0, 0, 0, 0))
    assert [c.prompt for c in calls] == [1.0, -1.0]
    assert all(c.x.shape == (B, C, T, H, W) for c in calls)
    torch.testing.assert_close(denoised, torch.full_like(denoised, -1 + 3 * (1 - -1)))  # neg + cfg (pos - neg)


def test_cfg_one_skips_the_negative_pass():
    calls, _, _, _ = run("t2v", "renoise", 0.7, cfg=1.0)
    assert len(calls) == 1


def test_a14b_switches_expert_at_the_boundary():
    model = oracle_model("t2v", boundary=0.875, offset_low=10.0)
    window = inputs("renoise", strength=(0, 0, 0, 0))
    x = torch.zeros(B, C, T, H, W)
    high = Denoiser(model, window, 1.0)(x, torch.tensor(0.875))
    low = Denoiser(model, window, 1.0)(x, torch.tensor(0.874))
    assert torch.allclose(high, torch.ones(())) and torch.allclose(low, torch.full((), 11.0))
    assert len(model.dit.calls) == 1 and len(model.low_noise.calls) == 1


@pytest.mark.parametrize("family, native", [("t2v", "renoise"), ("ti2v", "per_token"), ("i2v", "concat"),
                                            ("vace", "vace")])
def test_each_model_uses_its_native_mechanism(family, native):
    assert resolve_mechanism(oracle_model(family)) == native


@pytest.mark.parametrize("family, requested, message", [
    ("t2v", "concat", "can't take 'concat' conditioning: it takes 16 input channels, not 36"),
    ("t2v", "vace", "can't take 'vace'.*no VACE blocks"),
    ("t2v", "per_token", "can't take 'per_token'.*per-frame timesteps"),
    ("i2v", "renoise", "can't take 'renoise'.*It can take: concat"),
    ("t2v", "inpaint", "unknown"),
])
def test_a_mechanism_the_model_cannot_take_is_named(family, requested, message):
    with pytest.raises(SpacetimeError, match=message):
        resolve_mechanism(oracle_model(family), requested)


def test_per_token_model_can_fall_back_to_renoise():
    assert resolve_mechanism(oracle_model("ti2v"), "renoise") == "renoise"

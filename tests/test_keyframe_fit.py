"""Keyframe fit (sampler/keyframe_fit.py) on a tiny random VAE: the fitted latent frames decode closer to their images,
nothing else is touched, and it runs the way ComfyUI calls nodes (inference mode, inference-tensor weights)."""
import pytest
import torch

from comfyui_spacetime.sampler import Keyframe, Keyframes, sample
from comfyui_spacetime.sampler import keyframe_fit
from comfyui_spacetime.sampler.keyframe_fit import fit_keyframes
from tests.tiny_sampler import oracle_model, prompt
from tests.tiny_vae import FAST_21, TINY_21, random_vae

LATENT_SHAPE = (1, FAST_21.z_dim, 3, 2, 3)  # 9 pixel frames of 8x12 (compression 4x4x4)


def setup(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    vae = random_vae(FAST_21, seed)
    latent, other = torch.randn(LATENT_SHAPE, generator=generator), torch.randn(LATENT_SHAPE, generator=generator)
    images = decoded(vae, other)[[0, 8]]  # keyframes at pixel frames 0 and 8 that this decoder can show
    return vae, latent, images


def decoded(vae, latent: torch.Tensor) -> torch.Tensor:
    """[F, H, W, 3] in 0..1."""
    with torch.no_grad():
        return ((vae.decode(latent)[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)


def test_fitted_frames_decode_closer_to_their_keyframes_and_nothing_else_moves():
    vae, latent, images = setup()
    fitted, note = fit_keyframes(latent, Keyframes.from_images(vae, images, [0, 8]))
    before, after = decoded(vae, latent), decoded(vae, fitted)
    for pixel, image in zip((0, 8), images):  # measured: 0.75x and 0.57x (10 steps on a random decoder)
        assert (after[pixel] - image).pow(2).mean() < 0.85 * (before[pixel] - image).pow(2).mean()
    assert torch.equal(fitted[:, :, 1], latent[:, :, 1])  # no keyframe in latent frame 1
    assert not torch.equal(fitted[:, :, 0], latent[:, :, 0]) and not torch.equal(fitted[:, :, 2], latent[:, :, 2])
    assert note.startswith("keyframe fit: 2 latent frame(s)")


def test_the_other_frames_of_a_keyframes_latent_frame_are_held(monkeypatch):
    """Frames 5-7 share latent frame 2 with a keyframe at frame 8: the fit moves them less than an unheld fit does."""
    vae, latent, images = setup()
    keyframes = Keyframes.from_images(vae, images[1:], [8])
    before = decoded(vae, latent)
    held = decoded(vae, fit_keyframes(latent, keyframes)[0])
    monkeypatch.setattr(keyframe_fit, "HOLD_WEIGHT", 0.0)
    free = decoded(vae, fit_keyframes(latent, keyframes)[0])
    assert (held[5:8] - before[5:8]).abs().mean() < 0.7 * (free[5:8] - before[5:8]).abs().mean()


def test_fit_runs_as_comfyui_calls_it():
    """ComfyUI loads models and runs nodes in inference mode: the weights are inference tensors."""
    _, latent, images = setup()
    with torch.inference_mode():
        vae = random_vae(FAST_21, 0)
        keyframes = Keyframes.from_images(vae, images, [0, 8])
        fitted, _ = fit_keyframes(latent, keyframes)
    expected, _ = fit_keyframes(latent, Keyframes.from_images(random_vae(FAST_21, 0), images, [0, 8]))
    torch.testing.assert_close(fitted, expected)


def test_clips_and_partial_keyframes_are_left_as_sampled():
    vae, latent, images = setup()
    clip = torch.rand(5, 8, 16, 3)
    _, extension = Keyframes.extension(vae, clip, "forward", add_seconds=0.5, fps=8)
    partial = Keyframes([Keyframe(images[:1], 0, strength=0.5)], vae)
    for keyframes in (extension, partial):
        fitted, note = fit_keyframes(latent, keyframes)
        assert fitted is latent and note == ""


def test_progress_counts_every_step_and_can_stop_the_fit():
    vae, latent, images = setup()
    keyframes = Keyframes.from_images(vae, images, [0, 8])
    calls = []
    fit_keyframes(latent, keyframes, steps=3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(step, 6) for step in range(1, 7)]

    def cancel(done, total):
        raise KeyboardInterrupt  # what ComfyUI's Cancel raises through the progress bar, in spirit

    with pytest.raises(KeyboardInterrupt):
        fit_keyframes(latent, keyframes, progress=cancel)


def test_the_samplers_progress_goes_on_through_the_fit():
    vae = random_vae(TINY_21)
    keyframes = Keyframes.from_images(vae, torch.rand(1, 16, 16, 3), [0])
    seen = []
    result = sample(oracle_model(), torch.zeros(1, 16, 3, 2, 2), prompt(0.2), keyframes=keyframes, steps=3, cfg=1,
                    keyframe_fit=True, callback=lambda step, total, preview: seen.append((step, total, preview)))
    total = 3 + keyframe_fit.FIT_STEPS
    assert [step for step, _, _ in seen] == list(range(1, total + 1)) and seen[-1][1] == total
    assert all(preview is None for _, _, preview in seen[3:]) and "keyframe fit: 1 latent frame(s)" in result.info

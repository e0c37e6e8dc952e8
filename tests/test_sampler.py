"""sample() end to end on tiny models: seeds, keyframes kept, arguments checked, progress and interruption."""
import math
from pathlib import Path

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.loaders import SpacetimeModel
from comfyui_spacetime.sampler import Keyframes, sample
from comfyui_spacetime.sampler.denoise import Denoiser, WindowInputs
from comfyui_spacetime.sampler.first_frame import candidate_noise, prompt_agreement, stream_after_video
from comfyui_spacetime.sampler.schedules import flow_sigmas
from tests.tiny_dit import tiny_dit
from tests.tiny_sampler import PoolingVAE, oracle_model, prompt

LATENT = (1, 16, 3, 2, 2)  # [B, C, T, H, W]: 9 pixel frames of 16x16


def tiny_wan(family="t2v"):
    dit = tiny_dit(family)
    return SpacetimeModel(dit, dit.config, (Path("tiny.safetensors"),))


def test_seed_determinism_on_a_tiny_dit():
    model, vae, cond = tiny_wan(), PoolingVAE(), prompt(0.3, negative=-0.3)
    run = lambda seed: sample(model, torch.zeros(LATENT), cond, seed=seed, steps=2, cfg=2.0, vae=vae).latent
    first = run(7)
    assert first.shape == LATENT and torch.isfinite(first).all()
    assert torch.equal(first, run(7))
    assert not torch.allclose(first, run(8))


def test_noise_is_drawn_from_the_seed_on_the_cpu():
    model = oracle_model()
    sample(model, torch.zeros(2, *LATENT[1:]), prompt(0.0), seed=123, steps=2, cfg=1, vae=PoolingVAE())
    expected = torch.randn((2, *LATENT[1:]), generator=torch.Generator("cpu").manual_seed(123))
    assert torch.equal(model.dit.calls[0].x, expected)
    assert not torch.equal(model.dit.calls[0].x[0], model.dit.calls[0].x[1])  # each video of a batch its own noise


def test_text_to_video_reaches_the_model_answer():
    out = sample(oracle_model(), torch.zeros(LATENT), prompt(0.25), steps=3, cfg=1, vae=PoolingVAE())
    torch.testing.assert_close(out.latent, torch.full(LATENT, 0.25))
    assert out.info.startswith("renoise")


@pytest.mark.parametrize("family", ["t2v", "ti2v"])
@pytest.mark.parametrize("index", [0, 4, -1])
def test_keyframes_come_out_exactly_for_pinning_mechanisms(family, index):
    vae = PoolingVAE(channels=48 if family == "ti2v" else 16)
    keyframe = Keyframes.from_images(vae, torch.full((1, 16, 16, 3), 0.9), [index])
    latent = torch.zeros(1, vae.config.latent_channels, 3, 2, 2)
    out = sample(oracle_model(family), latent, prompt(-0.5), keyframes=keyframe, steps=3, cfg=1).latent
    pinned = {0: 0, 4: 1, -1: 2}[index]
    others = [j for j in range(3) if j != pinned]
    torch.testing.assert_close(out[:, :, pinned], torch.full_like(out[:, :, pinned], 0.8))  # 0.9 -> 0.8 in -1..1
    torch.testing.assert_close(out[:, :, others], torch.full_like(out[:, :, others], -0.5))


def test_denoise_below_one_starts_from_the_partially_noised_input():
    model, source = oracle_model(), torch.full(LATENT, 2.0)
    sample(model, source, prompt(0.0), seed=1, steps=4, cfg=1, denoise=0.5, vae=PoolingVAE())
    sigma0 = float(flow_sigmas(4, 5.0, 0.5)[0])
    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.dit.calls[0].x, sigma0 * noise + (1 - sigma0) * source)


def test_progress_callback_once_per_step_with_a_preview():
    seen = []
    sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), steps=3, cfg=1, vae=PoolingVAE(),
           callback=lambda step, total, preview: seen.append((step, total, tuple(preview.shape))))
    assert seen == [(1, 3, (3, 2, 2, 3)), (2, 3, (3, 2, 2, 3)), (3, 3, (3, 2, 2, 3))]


def test_an_interrupt_raised_by_the_callback_stops_between_steps():
    model = oracle_model()

    def interrupt(step, total, preview):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(model, torch.zeros(LATENT), prompt(0.1), steps=5, cfg=1, vae=PoolingVAE(), callback=interrupt)
    assert len(model.dit.calls) == 2
    assert sample(model, torch.zeros(LATENT), prompt(0.1), steps=2, cfg=1, vae=PoolingVAE()).latent.shape == LATENT


def test_first_frame_first_samples_the_clip_then_again_from_its_first_frame():
    """Pass 1 samples the whole window; pass 2 starts from fresh noise elsewhere with frame 0 pinned clean."""
    model, steps = oracle_model("ti2v"), 3
    out = sample(model, torch.zeros(1, 48, 3, 2, 2), prompt(0.25), steps=steps, cfg=1, vae=PoolingVAE(48),
                 first_frame_first=True)
    assert len(model.dit.calls) == 2 * steps
    first, second = model.dit.calls[0], model.dit.calls[steps]
    assert (first.t > 0).all()  # nothing known in the first pass
    assert (second.t[:, 0] == 0).all() and (second.t[:, 1:] > 0).all()
    torch.testing.assert_close(second.x[:, :, 0], torch.full_like(second.x[:, :, 0], 0.25))  # pass 1's frame 0
    torch.testing.assert_close(second.x[:, :, 1:], first.x[:, :, 1:])  # the same seed's noise again
    torch.testing.assert_close(out.latent, torch.full_like(out.latent, 0.25))
    assert out.info.endswith("first frame sampled first")


def test_first_frame_candidates_are_sampled_together_from_the_seeds_own_stream():
    """Pass 1 samples the seed's own first window and two more, drawn after the video's noise, in one batch."""
    model, steps, latent = oracle_model("ti2v"), 2, torch.zeros(1, 48, 3, 2, 2)
    out = sample(model, latent, prompt(0.25, negative=0.0), seed=5, steps=steps, cfg=2.0, vae=PoolingVAE(48),
                 first_frame_first=True, first_frame_candidates=3)
    first = model.dit.calls[0].x  # [3, C, t, H, W]: the seed's own noise, then the candidates'
    own = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5))
    extra = candidate_noise(stream_after_video(5, latent.shape), latent.shape, 2)[0]
    torch.testing.assert_close(first, torch.cat([own, extra]))
    assert not torch.equal(first[1], first[2])
    assert out.info.endswith("first frame sampled first (best of 3 first windows)")
    torch.testing.assert_close(out.latent, torch.full_like(out.latent, 0.5))  # guided: 0 + 2 * (0.25 - 0)


def test_first_frame_candidates_need_a_negative_prompt_to_be_ranked():
    model = oracle_model("ti2v")
    out = sample(model, torch.zeros(1, 48, 3, 2, 2), prompt(0.25), steps=2, cfg=1, vae=PoolingVAE(48),
                 first_frame_first=True, first_frame_candidates=4)
    assert model.dit.calls[0].x.shape[0] == 1 and out.info.endswith("first frame sampled first")


@pytest.mark.parametrize("candidates", [0, 17, 2.5])
def test_first_frame_candidates_must_be_a_count_from_1_to_16(candidates):
    with pytest.raises(SpacetimeError, match="first_frame_candidates"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=1, vae=PoolingVAE(),
               first_frame_candidates=candidates)


def test_prompt_agreement_ranks_the_window_the_prompt_explains_first():
    """The oracle predicts a constant 0.5 with the prompt and -0.5 with the negative one: of three constant
    windows, 0.5 agrees most, -0.5 least (the negative prompt explains it perfectly)."""
    model, windows = oracle_model(), torch.stack([torch.full(LATENT[1:], v) for v in (0.0, 0.5, -0.5)])
    inputs = WindowInputs("renoise", torch.zeros(3), torch.zeros(LATENT), torch.zeros_like(windows), None,
                          torch.full((1, 3, 64), 0.5), torch.full((1, 3, 64), -0.5))
    agreement = prompt_agreement(Denoiser(model, inputs, cfg=4.0), windows, torch.Generator().manual_seed(0))
    assert agreement.argsort(descending=True).tolist() == [1, 0, 2]
    again = prompt_agreement(Denoiser(model, inputs, cfg=4.0), windows, torch.Generator().manual_seed(0))
    assert torch.equal(agreement, again)


@pytest.mark.parametrize("known", ["keyframe", "denoise"])
def test_first_frame_first_is_for_text_to_video_from_noise_only(known):
    model, vae, steps = oracle_model("ti2v"), PoolingVAE(48), 2
    keyframes = Keyframes.from_images(vae, torch.rand(1, 16, 16, 3), [-1]) if known == "keyframe" else None
    out = sample(model, torch.zeros(1, 48, 3, 2, 2), prompt(0.25), steps=steps, cfg=1, vae=vae, keyframes=keyframes,
                 denoise=0.5 if known == "denoise" else 1.0, first_frame_first=True)
    assert len(model.dit.calls) == steps and "first frame" not in out.info


@pytest.mark.parametrize("cfg", [math.nan, math.inf])
def test_cfg_must_be_finite(cfg):
    with pytest.raises(SpacetimeError, match="finite"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1, negative=0.0), cfg=cfg, vae=PoolingVAE())


def test_cfg_needs_a_negative_prompt():
    with pytest.raises(SpacetimeError, match="negative prompt"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=4.0, vae=PoolingVAE())


def test_bad_inputs_are_named():
    with pytest.raises(SpacetimeError, match=r"\[B, C, T, H, W\]"):
        sample(oracle_model(), torch.zeros(16, 3, 2, 2), prompt(0.1), cfg=1, vae=PoolingVAE())
    with pytest.raises(SpacetimeError, match="pass the VAE"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=1)
    with pytest.raises(SpacetimeError, match="choose one of"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=1, vae=PoolingVAE(), solver="ddim")
    with pytest.raises(SpacetimeError, match="can't take 'vace'"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=1, vae=PoolingVAE(), mechanism="vace")
    keyframe = Keyframes.from_images(PoolingVAE(), torch.rand(1, 16, 16, 3), [9])
    with pytest.raises(SpacetimeError, match="outside the video"):
        sample(oracle_model(), torch.zeros(LATENT), prompt(0.1), cfg=1, keyframes=keyframe)


@pytest.mark.parametrize("family", ["i2v", "vace"])
def test_concat_and_vace_models_sample_with_keyframes(family):
    """Shapes through a real tiny DiT of each kind; the gray latent comes from the VAE."""
    vae = PoolingVAE()
    keyframe = Keyframes.from_images(vae, torch.rand(1, 16, 16, 3), [0])
    out = sample(tiny_wan(family), torch.zeros(LATENT), prompt(0.1, negative=0.0), keyframes=keyframe, steps=2,
                 cfg=2.0)
    assert out.latent.shape == LATENT and torch.isfinite(out.latent).all()
    assert out.info.startswith(family.replace("i2v", "concat"))
    assert (vae.videos[-1] == 0).all()  # the last encode was the all-gray video (0 in -1..1)


def test_image_to_video_through_a_real_wan_vae():
    """A tiny random Wan 2.1 VAE: latent frame 0 of the result is exactly the image's own encoding."""
    from comfyui_spacetime.vae import VAEConfig, WanVAE

    torch.manual_seed(0)
    vae = WanVAE(VAEConfig("wan2.1", base_dim=8, decoder_base_dim=8, z_dim=16)).eval()
    dit = tiny_dit("t2v", per_frame_timesteps=True)
    model = SpacetimeModel(dit, dit.config, (Path("tiny.safetensors"),))
    image = torch.rand(1, 16, 16, 3)
    keyframes = Keyframes.from_images(vae, image, [0])
    out = sample(model, torch.zeros(LATENT), prompt(0.1), keyframes=keyframes, steps=2, cfg=1).latent
    expected = vae.encode(image.permute(3, 0, 1, 2)[None] * 2 - 1)  # [1, 16, 1, 2, 2]
    torch.testing.assert_close(out[:, :, :1], expected, rtol=1e-5, atol=1e-5)


def test_channel_concat_takes_a_last_frame_as_wans_reference_does():
    """First and last frame on a concat model (Wan 2.1 FLF2V, Wan 2.2 I2V): the last latent frame's image video is
    [gray, gray, gray, last] with mask 0 0 0 1, and it is generated, not kept as given."""
    vae, model = PoolingVAE(), oracle_model("i2v")
    images = torch.rand(2, 16, 16, 3)
    keyframes = Keyframes.from_images(vae, images, [0, -1])
    assert keyframes.pixel_strengths(3).tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]]
    out = sample(model, torch.zeros(LATENT), prompt(0.3), keyframes=keyframes, steps=2, cfg=1).latent
    video = next(v for v in vae.videos if v.shape[2] == 9 and v.abs().sum() > 0)  # the keyframes' image video
    assert torch.equal(video[0, :, 8], images[1].permute(2, 0, 1) * 2 - 1) and (video[0, :, 1:8] == 0).all()
    call = model.dit.calls[-1]
    assert call.x[0, 16:20, :, 0, 0].T.tolist() == [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert torch.allclose(out[:, :, 2], torch.full_like(out[:, :, 2], 0.3))  # generated (the oracle's answer)
    assert torch.equal(out[:, :, 0], vae.encode(images[:1].permute(3, 0, 1, 2)[None] * 2 - 1)[:, :, 0])


def test_vace_sees_a_subject_reference_in_front_of_every_window():
    """As Wan's VACE pipeline: the reference is a latent frame of its own before the video's, in x and in the
    control [reference | zeros | mask 0]; it is dropped from the result, window after window."""
    vae, model = PoolingVAE(), oracle_model("vace", window=5)
    subject = torch.rand(1, 16, 16, 3)
    keyframes = Keyframes((), vae).with_references(subject)
    out = sample(model, torch.zeros(1, 16, 4, 2, 2), prompt(0.3), keyframes=keyframes, steps=2, cfg=1)
    assert out.latent.shape == (1, 16, 4, 2, 2) and "1 subject reference(s) beside every window" in out.info
    reference = vae.encode(subject.permute(3, 0, 1, 2)[None] * 2 - 1)  # [1, C, 1, 2, 2], identity normalization
    calls = model.dit.calls
    assert "3 windows of 2 latent frames" in out.info and len(calls) == 3 * 2  # 2 steps a window
    for call in calls:
        assert call.x.shape == (1, 16, 1 + 2, 2, 2) and call.vace.shape == (1, 16 + 16 + 64, 1 + 2, 2, 2)
        assert torch.equal(call.vace[:, :16, 0], reference[:, :, 0].expand(1, -1, -1, -1))
        assert (call.vace[:, 16:, 0] == 0).all()  # zeros, then mask 0: known
    assert torch.allclose(out.latent, torch.full_like(out.latent, 0.3))


def test_subject_references_need_a_vace_model():
    keyframes = Keyframes((), PoolingVAE()).with_references(torch.rand(1, 16, 16, 3))
    with pytest.raises(SpacetimeError, match="Wan 2.1 VACE models only"):
        sample(oracle_model("t2v"), torch.zeros(LATENT), prompt(0.1), keyframes=keyframes, cfg=1)
    with pytest.raises(SpacetimeError, match="subject reference pixels span"):
        keyframes.with_references(torch.full((1, 8, 8, 3), 255.0))


def test_backward_extension_on_a_concat_model_generates_the_clips_partial_latent_frame():
    """A clip of 9 frames extended backwards to 17 sits at pixel frames 8..16: latent frame 2 (pixels 5..8) holds
    only its first frame, so it is given as mask 0 0 0 1 and generated; latent frames 3 and 4 are the clip's own."""
    vae, model = PoolingVAE(), oracle_model("i2v")
    latent, keyframes = Keyframes.extension(vae, torch.rand(9, 16, 16, 3), "backward", add_seconds=1.0, fps=8)
    assert keyframes.pixel_strengths(5)[:, 2:].tolist() == [[0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 1]]
    out = sample(model, latent, prompt(0.3), keyframes=keyframes, steps=2, cfg=1).latent
    known = keyframes.latents((5, 2, 2), "exact")  # the clip's latents, gray before it
    assert torch.allclose(out[:, :, :3], torch.full_like(out[:, :, :3], 0.3))  # generated, frame 2 included
    assert torch.equal(out[:, :, 3:], known[:, :, 3:])

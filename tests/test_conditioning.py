"""Keyframes (placement, validation, the pixel video behind known latents) and the prompt schedule."""
import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.nodes.conditioning import SpacetimeImageToVideo, SpacetimeSubjectReference
from comfyui_spacetime.sampler.conditioning import (Keyframe, Keyframes, TextConditioning, _frame_sources,
                                                    fit_to_size, latent_frame_of, parse_prompt_schedule, pixel_span)
from tests.tiny_sampler import PoolingVAE


def image(value: float, n: int = 1, size=(16, 24)) -> torch.Tensor:
    return torch.full((n, *size, 3), value)


def test_pixel_to_latent_frame_mapping():
    assert [latent_frame_of(p) for p in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert list(pixel_span(0)) == [0] and list(pixel_span(2)) == [5, 6, 7, 8]
    assert all(latent_frame_of(p) == j for j in range(6) for p in pixel_span(j))


@pytest.mark.parametrize("pixels, index, strength, message", [
    (torch.rand(1, 8, 8), 0, 1.0, "shape"),
    (torch.rand(1, 8, 8, 4), 0, 1.0, "shape"),
    (torch.full((1, 8, 8, 3), 255.0), 0, 1.0, "0..1"),
    (torch.rand(1, 8, 8, 3), 1.5, 1.0, "integer"),
    (torch.rand(1, 8, 8, 3), 0, 1.5, "strength"),
    (torch.rand(1, 8, 8, 3), 0, -0.1, "strength"),
])
def test_bad_keyframes_are_named(pixels, index, strength, message):
    with pytest.raises(SpacetimeError, match=message):
        Keyframe(pixels, index, strength)


def test_keyframe_index_outside_the_video():
    kf = Keyframes([Keyframe(image(0.5), 17)], PoolingVAE())
    with pytest.raises(SpacetimeError, match="outside the video's frames 0..16"):
        kf.placed(17)
    with pytest.raises(SpacetimeError, match="outside"):
        Keyframes([Keyframe(image(0.5, n=3), -2)], PoolingVAE(), length=17)
    assert Keyframes([Keyframe(image(0.5), -1)], PoolingVAE()).placed(17)[0][0] == 16


def test_two_keyframes_on_one_latent_frame():
    with pytest.raises(SpacetimeError, match="pixel frames 5 and 7 both fall in latent frame 2 .*frame 9 or later"):
        Keyframes.from_images(PoolingVAE(), image(0.5, n=2), [7, 5], length=17)
    ok = Keyframes.from_images(PoolingVAE(), image(0.5, n=2), [4, 5], length=17)  # latent frames 1 and 2
    assert ok.strengths(5).tolist() == [0, 1, 1, 0, 0]


def test_strengths_cover_a_clip_keyframe_latent_by_latent():
    clip = Keyframe(image(0.2, n=6), 0, strength=0.7)  # pixel frames 0..5 -> latent frames 0, 1, 2
    assert Keyframes([clip], PoolingVAE()).strengths(4).tolist() == pytest.approx([0.7, 0.7, 0.7, 0])


def test_from_images_needs_one_index_per_image():
    with pytest.raises(SpacetimeError, match="2 image.*1 frame index"):
        Keyframes.from_images(PoolingVAE(), image(0.5, n=2), [0])


def test_chained_keyframes_must_share_the_vae():
    a = Keyframes.from_images(PoolingVAE(), image(0.1), [0])
    assert len(a.plus(Keyframes.from_images(a.vae, image(0.9), [-1])).items) == 2
    with pytest.raises(SpacetimeError, match="different VAEs"):
        a.plus(Keyframes.from_images(PoolingVAE(), image(0.9), [-1]))


def test_keyframes_made_for_another_length():
    kf = Keyframes.from_images(PoolingVAE(), image(0.5), [0], length=33)
    with pytest.raises(SpacetimeError, match="33-frame video but the latent has 17"):
        kf.check_length(17)


def test_resize_policy_is_centre_crop_then_resize():
    wide = torch.zeros(1, 8, 32, 3)
    wide[:, :, 8:24] = 1.0  # a white centre band half the width: exactly what a square crop keeps
    out = fit_to_size(wide, (16, 16))
    assert out.shape == (1, 16, 16, 3) and out.min() == pytest.approx(1.0)
    tall = fit_to_size(torch.rand(2, 40, 10, 3), (8, 16))
    assert tall.shape == (2, 8, 16, 3)


def test_frame_sources_pin_whole_latent_frames():
    # keyframes at pixel 0 and pixel 7 (latent frame 2 = pixels 5..8) in a 4-latent-frame video
    held = _frame_sources([0, 7], 3, "held")
    assert held == [0, 0, 0, 0, 0, 7, 7, 7, 7]  # pixels 5, 6 before frame 7 show it too: the latent frame is pinned
    gray = _frame_sources([0, 7], 3, "gray")
    assert gray == [0, None, None, None, None, 7, 7, 7, 7]
    assert _frame_sources([8], 3, "held") == [8] * 9  # before the first keyframe: the first keyframe


def test_known_latents_encode_the_held_video_up_to_the_last_keyframe():
    vae = PoolingVAE(channels=4)
    kf = Keyframes.from_images(vae, torch.cat([image(0.0), image(1.0)]), [0, 12])
    latents = kf.latents((5, 2, 3), "held")  # latent frames 0..3 are needed (pixel 12 is in latent frame 3)
    assert latents.shape == (1, 4, 4, 2, 3)
    video = vae.videos[-1]
    assert video.shape == (1, 3, 13, 16, 24)
    assert video[0, 0, :, 0, 0].tolist() == [-1.0] * 9 + [1.0] * 4  # 0..1 pixels went in as -1..1
    assert latents[0, 0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0, 1.0]
    kf.latents((5, 2, 3), "gray")
    assert vae.videos[-1][0, 0, 1:9, 0, 0].abs().max() == 0  # unknown frames are 0.5 gray (0 in -1..1)


def test_extension_builds_latent_and_keyframes():
    vae = PoolingVAE()
    clip = torch.rand(9, 16, 32, 3)
    latent, kf = Keyframes.extension(vae, clip, "forward", add_seconds=1.0, fps=8, context_frames=5,
                                     anchor_first_frame=True)
    assert latent.shape == (1, 16, 5, 2, 4) and kf.length == 17  # 9 + 8 frames = 17 = 4*4+1
    assert kf.placed(17)[0][0] == 0 and kf.anchors == (0,) and kf.overlap_frames == 5
    latent, kf = Keyframes.extension(vae, clip, "backward", add_seconds=0.5, fps=8)
    assert kf.length == 13 and kf.placed(13)[0][0] == 4 and kf.strengths(4).tolist() == [0, 1, 1, 1]
    with pytest.raises(SpacetimeError, match="sideways"):
        Keyframes.extension(vae, clip, "sideways", 1.0, 8)
    with pytest.raises(SpacetimeError, match="resize or crop it to 32x16"):
        Keyframes.extension(vae, torch.rand(5, 18, 30, 3), "forward", 1.0, 8)


def test_prompt_schedule_parsing():
    assert parse_prompt_schedule("a red ball\nbouncing") == [(0.0, "a red ball bouncing")]
    assert parse_prompt_schedule("0: a red ball\n 20.5s : a blue ball \n40: green") == [
        (0.0, "a red ball"), (20.5, "a blue ball"), (40.0, "green")]
    for bad, message in [("", "empty"), ("5: late start", "starts at 5"), ("0: a\n0: b", "increase"),
                         ("0: a\nno time here", "not a shot")]:
        with pytest.raises(SpacetimeError, match=message):
            parse_prompt_schedule(bad)


class _CountingEncoder:
    def encode(self, prompts):
        return torch.full((1, 4, 8), float(len(prompts[0])))


def test_text_conditioning_picks_the_shot_by_time():
    cond = TextConditioning.encode(_CountingEncoder(), "0: aa\n10: bbbb\n20: c", negative_prompt="")
    assert [cond.context_at(s)[0, 0, 0].item() for s in (0, 9.99, 10, 25)] == [2, 2, 4, 1]
    assert cond.prompts == ["aa", "bbbb", "c"] and cond.negative.prompts == [""]
    with pytest.raises(SpacetimeError, match=r"\[1, L, D\]"):
        TextConditioning([(0, torch.zeros(4, 8), "x")])


def test_subject_reference_node_adds_references_to_keyframes():
    vae = PoolingVAE()
    start = SpacetimeImageToVideo().build(vae, torch.rand(1, 16, 16, 3), 1.0)[0]
    (both,) = SpacetimeSubjectReference().build(vae, torch.rand(2, 24, 16, 3), keyframes=start)
    assert len(both.items) == 1 and len(both.references) == 2 and both.vae is vae
    assert both.reference_latents((16, 16)).shape == (1, 16, 2, 2, 2)  # one latent frame each, at the video's size
    (alone,) = SpacetimeSubjectReference().build(vae, torch.rand(1, 16, 16, 3))
    assert alone.items == () and len(alone.references) == 1

"""The analytic detector reads the world's own clips (its ground truth) correctly; the measures are exact where
the maths is."""
import warnings

import numpy as np
import pytest
import torch

from comfyui_spacetime.embedded import quality as q
from comfyui_spacetime.embedded.world import WorldConfig, make_clip

CLIPS = [make_clip(seed, WorldConfig(long_fraction=0.0)) for seed in range(1000, 1060)]


@pytest.fixture(scope="module")
def detected():
    return [(q.detect_clip(frames), scene) for frames, scene in CLIPS]


def test_colour_on_ground_truth(detected):
    assert all(q.colour_ok(d, scene) for d, scene in detected)


def test_shape_on_ground_truth(detected):
    singles = [(d, s) for d, s in detected if s.relation is None]
    assert len(singles) > 30 and all(q.shape_ok(d, s) for d, s in singles)


def test_motion_on_ground_truth(detected):
    checked = [q.motion_ok(d, s) for d, s in detected if s.relation is None]
    checked = [c for c in checked if c is not None]
    assert len(checked) > 25 and all(checked)


def test_relation_on_ground_truth(detected):
    checked = [q.relation_ok(d, s) for d, s in detected if s.relation is not None]
    assert len(checked) >= 8 and all(checked)


def test_swapped_relation_is_caught(detected):
    from dataclasses import replace

    d, scene = next((d, s) for d, s in detected if s.relation is not None)
    flipped = replace(scene, relation="right of" if scene.relation == "left of" else "left of")
    assert q.relation_ok(d, scene) and not q.relation_ok(d, flipped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clip where neither object appears is a miss, quietly
        assert q.relation_ok([[] for _ in d], scene) is False


def test_wrong_colour_and_direction_are_caught():
    frames, scene = next((f, s) for f, s in CLIPS if s.relation is None and s.objects[0].motion == "left"
                         or s.relation is None and s.objects[0].motion == "right")
    reversed_clip = q.detect_clip(frames[::-1])
    assert q.motion_ok(q.detect_clip(frames), scene) and not q.motion_ok(reversed_clip, scene)
    gray = np.full_like(frames, 0.5)
    assert not q.colour_ok(q.detect_clip(gray), scene)


def _soft_disc(colour: str, background: str, radius: float, softness: float) -> np.ndarray:
    """A 64x64 frame: a disc of `colour` fading linearly into `background` over `softness` pixels at its rim."""
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    distance = np.hypot(xs - 32, ys - 32)
    cover = np.clip((radius + softness / 2 - distance) / softness, 0, 1)[..., None]
    return (cover * q.PALETTE[q.NAMES.index(colour)] + (1 - cover) * q.PALETTE[q.NAMES.index(background)])


def test_a_soft_rim_takes_its_objects_colour():
    # a decoded white disc on black fades through a gray ring wider than its white interior is across
    blurred = q.detect(_soft_disc("white", "black", radius=8, softness=12))
    assert [b.colour for b in blurred][:1] == ["white"] and "gray" not in [b.colour for b in blurred]
    # a gray object with no white inside stays gray, soft or sharp
    assert [b.colour for b in q.detect(_soft_disc("gray", "black", radius=8, softness=4))] == ["gray"]


def test_background_plane_is_exact_on_a_gradient():
    frames, scene = make_clip(4, WorldConfig(gradient_fraction=1.0, two_object_fraction=0.0))
    plane = q.background_plane(frames[0])
    from comfyui_spacetime.embedded.world import render_background

    assert np.abs(plane - render_background(scene.background, scene.width, scene.height)).max() < 1e-4


def test_psnr_seam_and_drift_maths():
    frames, scene = CLIPS[0]
    assert q.psnr(frames[0], frames[0]) == 100.0
    assert q.psnr(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)) == pytest.approx(20.0)
    assert q.drift_255(frames[:5], frames[-5:]) < 0.5
    assert q.drift_255(frames[:5], np.clip(frames[-5:] + 10 / 255, 0, 1)) == pytest.approx(10.0, abs=0.5)
    moving = next(f for f, s in CLIPS if s.relation is None and s.objects[0].motion in ("left", "right", "up", "down"))
    assert q.seam_ratio(moving, 8) < 1.5
    jumped = np.concatenate([moving[:8], moving[8:] * 0.5])
    assert q.seam_ratio(jumped, 8) > 5.0


def test_position_error_zero_on_ground_truth(detected):
    d, scene = next((d, s) for d, s in detected if s.relation is None)
    assert q.position_error(d, scene, list(range(1, 16))) < 0.5


class _PixelVAE:
    """A 'VAE' whose latent is the pixels themselves, optionally flattened to each frame's mean colour."""

    def __init__(self, flatten: bool):
        self.flatten = flatten

    def encode(self, pixels):
        return pixels.mean(dim=(3, 4), keepdim=True).expand_as(pixels) if self.flatten else pixels

    def decode(self, latent):
        return latent


def test_round_trip_ceiling_reads_what_the_vae_keeps():
    config = q.ReportConfig(t2v=6)
    perfect = q.round_trip_ceiling(_PixelVAE(flatten=False), config)
    assert perfect["colour"] == (1.0, 6) and perfect["background"][0] == 1.0
    flat = q.round_trip_ceiling(_PixelVAE(flatten=True), config)
    assert flat["colour"][0] == 0.0  # no object survives a VAE that keeps only the mean colour
    assert perfect["object_area"] == (1.0, 6) and flat["object_area"][0] == 0.0
    assert perfect["keyframe_psnr"][0] == perfect["i2v_psnr"][0] == 100.0  # identical frames, at psnr's cap
    assert flat["keyframe_psnr"][0] < 30 and flat["keyframe_psnr"][1] == 2 * config.infill
    assert perfect["drift_255"][0] < 0.05 and perfect["drift_255"][1] == config.drift_round_trips  # no drift
    table = q.format_report({"colour": (0.5, 6), "seam_ratio": (1.5, 3), "object_area": (1.5, 6)}, perfect)
    rows = table.splitlines()
    assert "VAE round trip" in table and "100.0%" in rows[1] and rows[2].endswith("-") and "1.50x" in rows[3]


class _ChunkMeanVAE:
    """A 'VAE' that keeps frame 0 and replaces every later frame by the mean of its group of four: a latent frame
    that keeps no motion inside it."""

    def encode(self, pixels):  # (B, 3, T, H, W), T = 4k + 1
        rest = pixels[:, :, 1:].unflatten(2, (-1, 4)).mean(dim=3, keepdim=True).expand(-1, -1, -1, 4, -1, -1)
        return torch.cat([pixels[:, :, :1], rest.flatten(2, 3)], dim=2)

    def decode(self, latent):
        return latent


def test_error_by_latent_frame_separates_motion_from_standing_still():
    config = q.ReportConfig(i2v=4)
    lost = q.round_trip_error_by_latent_frame(_ChunkMeanVAE(), config)
    moving, still = lost["moving"][0], lost["still"][0]
    assert lost["moving"][1] == lost["still"][1] == 4 and moving.shape == still.shape == (5,)
    assert moving[0] < 1e-6 and still[0] < 1e-6  # frame 0 is kept (up to the pixel conversions' rounding)
    assert np.all(still < 1e-6)  # a still object looks the same in all four frames
    assert np.all(moving[1:] > 0.05)  # a moving one is smeared over them
    exact = q.round_trip_error_by_latent_frame(_PixelVAE(flatten=False), config)
    assert all(np.all(values < 1e-6) for values, _ in exact.values())
    table = q.format_error_by_latent_frame(lost).splitlines()
    assert table[1].startswith("moving (4)") and table[2].startswith("still (4)")


def test_foreground_fraction_is_the_objects_area():
    for frames, scene in q.eval_scenes(30):
        obj = scene.objects[0]
        if scene.relation is None and scene.background.kind == "solid" and obj.shape == "square":
            height, width = frames.shape[1:3]
            drawn = float(np.mean((2 * obj.sizes) ** 2)) / (width * height)  # squares of half-side `size`
            assert abs(q.foreground_fraction(frames) - drawn) < 0.25 * drawn
            return
    pytest.fail("no single square on a solid background among the first 30 scenes")


def test_reliance_reverses_every_direction_and_changes_only_the_colour():
    from comfyui_spacetime.embedded.reliance import _OPPOSITE, altered_caption
    from comfyui_spacetime.embedded.world import COLOURS, DIRECTIONS, visible_on, words_of

    assert set(_OPPOSITE) == set(DIRECTIONS)
    for name, (dx, dy) in DIRECTIONS.items():
        assert DIRECTIONS[_OPPOSITE[name]] == (-dx, -dy)
    rng = np.random.default_rng(0)
    for _, scene in q.straight_movers(q.eval_scenes(40))[:8]:
        caption = altered_caption(scene, "other colour", rng)
        named = [c for c in COLOURS if c in words_of(caption)]
        new = [c for c in named if c != scene.objects[0].colour and c not in scene.background.colours]
        assert len(new) == 1 and visible_on(new[0], scene.background), caption
        assert altered_caption(scene, "no caption", rng) == ""

"""The procedural world: deterministic from a seed, captions that say what the frames show."""
import numpy as np
import pytest

from comfyui_spacetime.embedded.world import (
    COLOURS, DIRECTIONS, SHAPES, SIZES, WorldConfig, caption_words, captions, make_clip, render_background,
    unfamiliar_request, visible_on, words_of)

SEEDS = range(40)


def test_same_seed_same_clip_and_caption():
    (a, scene_a), (b, scene_b) = make_clip(7), make_clip(7)
    assert np.array_equal(a, b) and scene_a.caption == scene_b.caption
    assert not np.array_equal(make_clip(8)[0], a)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip_shapes_and_ranges(seed):
    frames, scene = make_clip(seed)
    assert frames.shape == (scene.frames, scene.height, scene.width, 3) and frames.dtype == np.float32
    assert (scene.width, scene.height) in SIZES and (scene.frames - 1) % 4 == 0
    assert 0.0 <= frames.min() and frames.max() <= 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_caption_names_what_is_drawn(seed):
    _, scene = make_clip(seed)
    words = scene.caption.replace(",", " ").split()
    for obj in scene.objects:
        assert obj.colour in words and obj.colour not in scene.background.colours
        assert visible_on(obj.colour, scene.background)
        assert obj.shape in SHAPES
    for colour in scene.background.colours:
        assert colour in words
    if scene.relation is not None:
        assert scene.relation.split()[0] in words


@pytest.mark.parametrize("seed", SEEDS)
def test_objects_stay_inside_the_frame(seed):
    _, scene = make_clip(seed)
    for obj in scene.objects:
        lo = obj.centers - obj.sizes[:, None]
        hi = obj.centers + obj.sizes[:, None]
        assert lo.min() >= 0.0 and hi[:, 0].max() <= scene.width and hi[:, 1].max() <= scene.height


def test_straight_motion_moves_the_stated_way():
    for seed in range(200):
        _, scene = make_clip(seed)
        obj = scene.objects[0]
        if scene.moves_straight:
            travel = obj.centers[-1] - obj.centers[0]
            assert np.dot(travel, DIRECTIONS[obj.motion]) > 0.95 * np.linalg.norm(travel) > 0


def test_pairs_are_on_the_stated_sides():
    pairs = [scene for _, scene in (make_clip(s) for s in range(200)) if scene.relation is not None]
    assert len(pairs) > 20
    for scene in pairs:
        left_first = scene.objects[0].centers[0, 0] < scene.objects[1].centers[0, 0]
        assert left_first == (scene.relation == "left of")


def test_long_clips_and_sizes_follow_the_config():
    config = WorldConfig(sizes=((96, 64),), long_fraction=1.0)
    frames, scene = make_clip(3, config)
    assert frames.shape == (33, 64, 96, 3) and scene.frames == 33


def test_gradient_runs_between_its_colours():
    from comfyui_spacetime.embedded.world import Background

    image = render_background(Background("vertical", ("red", "blue")), 8, 16)
    assert np.allclose(image[0, 0], COLOURS["red"], atol=1e-6) and np.allclose(image[-1, -1], COLOURS["blue"], atol=1e-6)
    assert np.allclose(image[:, 0], image[:, -1])  # constant along a row


def test_caption_language_is_varied():
    corpus = captions(0, 300)
    assert len(set(corpus)) > 250
    assert {"disc", "backdrop", "gradient", "bouncing"} <= set(" ".join(corpus).split())
    assert not any(" a orange" in c or c.startswith("a orange") for c in corpus)


def test_caption_words_are_exactly_the_words_captions_use():
    used = {word for caption in captions(7, 2000) for word in words_of(caption)}
    assert used == caption_words()


def test_unfamiliar_request_names_new_words_and_untrained_sizes():
    assert unfamiliar_request(["a red circle moving left on a blue background"], 64, 96) == ""
    note = unfamiliar_request(["0: a red circle", "3: a Zebra at dusk"], 80, 48)
    assert "never saw in training steer it little: at, dusk, zebra (" in note
    assert "80x48 is not a size it was trained at (64x64, 96x64, 64x96)" in note

"""Window chaining: frame arithmetic, window plans, skipping, backward runs, anchors, shots and drift control."""
import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.nodes.sampling import SpacetimeSampler
from comfyui_spacetime.sampler import Keyframes, frames_for_seconds, sample
from comfyui_spacetime.sampler.conditioning import TextConditioning, latent_count
from comfyui_spacetime.sampler.long_video import SETTLE_LATENT_FRAMES, DriftControl, Timeline, Window, plan_windows
from tests.tiny_sampler import OracleDiT, PoolingVAE, oracle_model, prompt


@pytest.mark.parametrize("seconds, fps, frames", [(60, 16, 961), (5, 16, 81), (60, 8, 481), (2, 8, 17),
                                                  (1.1, 10, 13)])
def test_frames_for_seconds(seconds, fps, frames):
    assert frames_for_seconds(seconds, fps) == frames and (frames - 1) % 4 == 0


def test_more_than_a_minute_is_refused():
    with pytest.raises(SpacetimeError, match="at most a minute"):
        frames_for_seconds(61, 16)


def written(windows):
    return sorted(f for w in windows for f in w.new)


def test_a_minute_at_16_fps_in_wan_windows():
    total = latent_count(frames_for_seconds(60, 16))  # 241 latent frames
    windows = plan_windows([False] * total, length=21, overlap=5)
    assert total == 241 and written(windows) == list(range(total))  # every frame written exactly once
    assert all(len(w.frames) == 21 for w in windows)
    assert len(windows) == 15  # 21 + 14 * 16 >= 241
    for a, b in zip(windows[:-1], windows[1:-1]):
        assert len(set(a.frames) & set(b.frames)) == 5  # the overlap, known in the next window
    assert windows[-1].frames[-1] == total - 1  # the last window is pulled back to end with the video


def test_fully_known_windows_are_skipped():
    done = [True] * 30 + [False] * 20  # a 30-latent-frame clip extended by 20
    windows = plan_windows(done, length=10, overlap=3)
    assert windows[0].frames == tuple(range(27, 37)) and windows[0].new == tuple(range(30, 37))
    assert written(windows) == list(range(30, 50))


def test_backward_extension_runs_right_to_left():
    done = [False] * 20 + [True] * 10
    windows = plan_windows(done, length=10, overlap=3, reverse=True)
    assert windows[0].frames == tuple(range(13, 23)) and windows[0].new == tuple(range(13, 20))
    assert windows[-1].frames[0] == 0 and written(windows) == list(range(20))


def test_anchors_join_every_window_that_lacks_them():
    windows = plan_windows([True] + [False] * 19, length=6, overlap=1, anchors=[0])
    assert all(w.frames[0] == 0 and len(w.frames) == 6 for w in windows)
    assert written(windows) == list(range(1, 20))
    backward = plan_windows([False] * 19 + [True], length=6, overlap=1, anchors=[19], reverse=True)
    assert all(w.frames[-1] == 19 for w in backward)


def test_a_window_too_small_for_its_overlap_is_refused():
    with pytest.raises(SpacetimeError, match="cannot hold"):
        plan_windows([False] * 10, length=4, overlap=3, anchors=[0])


def test_drift_control_shifts_a_window_to_the_first_ones_background_and_keeps_its_objects():
    """Two windows of 2 latent frames: the second's background came out 0.3 too high, with a bright object on it."""
    latent = torch.zeros(1, 2, 4, 4, 4)  # [B, C, T, H, W]: background 0 in the first window
    latent[:, :, 2:] = 0.3
    latent[:, :, 2:, :1, :1] = 5.0  # the object: one element in 16 of each frame
    timeline = Timeline(latent, torch.zeros(4), torch.zeros(4, dtype=torch.bool), latent, latent, None)
    control = DriftControl(enabled=True)
    control.apply(timeline, Window((0, 1), new=(0, 1)), shot=0)
    control.apply(timeline, Window((2, 3), new=(2, 3)), shot=0)
    assert torch.all(timeline.latent[:, :, 2:, 1:] == 0)  # the background is back at the first window's
    torch.testing.assert_close(timeline.latent[:, :, 2:, :1, :1], torch.full((1, 2, 2, 1, 1), 4.7))  # shifted, not squashed


def test_drift_control_leaves_a_new_shot_its_setting_and_then_holds_it():
    """Shot 1 changes the background (0 -> 1): its first SETTLE_LATENT_FRAMES are the DiT's; from the next window
    on the shot is held at that window's level. Windows of one latent frame here."""
    windows = 1 + SETTLE_LATENT_FRAMES + 2  # one window of shot 0, then shot 1
    latent = torch.zeros(1, 1, windows, 2, 2)
    latent[:, :, 1:] = 1.0  # shot 1's new setting
    latent[:, :, -1] = 1.5  # and its last window drifted
    timeline = Timeline(latent, torch.zeros(windows), torch.zeros(windows, dtype=torch.bool), latent, latent, None)
    control = DriftControl(enabled=True)
    for t in range(windows):
        control.apply(timeline, Window((t,), new=(t,)), shot=min(t, 1))
    assert torch.all(timeline.latent[:, :, 1:] == 1.0)


class DriftingDiT(OracleDiT):
    """Answers `offset` higher for every window after the first: the slow drift a long chain accumulates."""

    def forward(self, x, timestep, context, **kwargs):
        self.offset = 0.1 * (len(self.calls) // self.steps)
        return super().forward(x, timestep, context, **kwargs)


def drifting_model(steps):
    model = oracle_model(window=17)
    model.dit.__class__, model.dit.steps = DriftingDiT, steps
    return model


@pytest.mark.parametrize("drift_control, last_value", [(True, 0.5), (False, 0.5 + 0.1 * 7)])
def test_drift_control_holds_a_long_video_at_the_first_window(drift_control, last_value):
    """The drift is measured on the output: 8 windows, 0.1 per window without control, none with it."""
    latent = torch.zeros(1, 16, 33, 2, 2)  # 129 frames; windows of 5 latent frames, overlap 1 -> 8 windows
    out = sample(drifting_model(2), latent, prompt(0.5), steps=2, cfg=1, vae=PoolingVAE(),
                 drift_control=drift_control)
    assert out.info.endswith("8 windows of 5 latent frames")
    assert out.latent[:, :, -1].mean().item() == pytest.approx(last_value, abs=1e-4)
    assert out.latent[:, :, :5].mean().item() == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("drift_control, last_value", [(True, 0.5), (False, 0.5 + 0.1 * 7)])
def test_the_sampler_node_passes_drift_control_on(drift_control, last_value):
    latent = {"samples": torch.zeros(1, 16, 33, 2, 2)}
    out, _ = SpacetimeSampler().sample(drifting_model(2), prompt(0.5), latent, 0, 2, 1.0, 5.0, "euler", 1.0, 8.0,
                                       vae=PoolingVAE(), drift_control=drift_control)["result"]
    assert out["samples"][:, :, -1].mean().item() == pytest.approx(last_value, abs=1e-4)


def test_minute_long_multi_shot_video_picks_each_shot_by_time():
    """60 s at 8 fps with a window of 17 frames: 30 windows, each on the model's own length, 2 shots.

    Drift control is off: it would pull the second shot's look back to the first window's."""
    model = oracle_model(window=17)
    shots = TextConditioning([(0.0, torch.full((1, 3, 64), 0.2), "first"), (30.0, torch.full((1, 3, 64), 0.7), "b")])
    latent = torch.zeros(1, 16, latent_count(frames_for_seconds(60, 8)), 2, 2)
    out = sample(model, latent, shots, steps=1, cfg=1, fps=8, vae=PoolingVAE(), solver="euler", drift_control=False)
    assert out.latent.shape[2] == 121 and out.info.endswith("30 windows of 5 latent frames")
    assert max(call.x.shape[2] for call in model.dit.calls) == 5  # the device only ever holds one window
    first_second_shot = (30 * 8 + 3) // 4  # latent frame of pixel frame 240
    assert torch.allclose(out.latent[:, :, :first_second_shot - 1], torch.full((), 0.2))
    assert torch.allclose(out.latent[:, :, first_second_shot + 4:], torch.full((), 0.7))


def test_extension_keeps_the_clip_and_chains_from_it():
    vae = PoolingVAE()
    clip = torch.full((9, 16, 16, 3), 0.75)  # 9 frames = latent frames 0..2
    latent, keyframes = Keyframes.extension(vae, clip, "forward", add_seconds=3.0, fps=8, context_frames=4)
    model = oracle_model(window=17)
    out = sample(model, latent, prompt(-0.2), keyframes=keyframes, steps=1, cfg=1, solver="euler",
                 drift_control=False)  # it would pull the new frames towards the clip's look
    assert torch.allclose(out.latent[:, :, :3], torch.full((), 0.5))  # the clip, untouched
    assert torch.allclose(out.latent[:, :, 3:], torch.full((), -0.2))
    assert model.dit.calls[0].x.shape[2] == 5  # the first window starts one latent frame (4 frames) before the end

"""Behaviour of the sampler's conditioning on the pack's own trained model (issue 4, 'Done when').

Image-to-video keeps frame 0, extension continues across the seam, backward extension ends on the given frames,
infill reproduces its keyframes and moves between them, and a 60 s three-shot video keeps its background colour.
Inputs are clips of the procedural world the model was trained on, from seeds it was not trained on.
"""
import pytest
import torch

from comfyui_spacetime.core.paths import BUNDLED_FILES, bundled_path
from comfyui_spacetime.embedded import quality
from comfyui_spacetime.sampler import Keyframes, TextConditioning, frames_for_seconds, sample

pytestmark = pytest.mark.skipif(
    not all(bundled_path(folder).is_file() for folder in BUNDLED_FILES),
    reason="models/spacetime-mini/ is not trained yet; `spacetime train-embedded` writes it (issue 5)")

SIZE = 64
FPS = 8


@pytest.fixture(scope="module")
def mini():
    from comfyui_spacetime.pipeline import load_models

    return load_models()


@pytest.fixture(scope="module")
def clips():
    """Held-out clips (seeds the model was not trained on) of one object moving in a straight line on a solid
    background: the scenes whose motion and background the detector reads. [(frames [17, H, W, 3], scene)]."""
    from comfyui_spacetime.embedded.quality import eval_scenes
    from comfyui_spacetime.embedded.world import DIRECTIONS

    straight = [(torch.from_numpy(frames.copy()), scene) for frames, scene in eval_scenes(40, size=(SIZE, SIZE))
                if scene.relation is None and scene.objects[0].motion in DIRECTIONS]
    assert len(straight) >= 4, "the world draws too few straight-moving scenes"
    return straight


def generate(mini, prompt: str, frames: int, keyframes=None, steps: int = 20, seed: int = 0) -> torch.Tensor:
    """Sample with the model's own defaults and decode: [F, H, W, 3] in 0..1."""
    defaults = mini.model.sampling
    latent = torch.zeros(1, mini.vae.config.latent_channels, (frames - 1) // 4 + 1, SIZE // 8, SIZE // 8)
    conditioning = TextConditioning.encode(mini.text_encoder, prompt, "")
    out = sample(mini.model, latent, conditioning, keyframes=keyframes, seed=seed, steps=steps, cfg=defaults.cfg,
                 shift=defaults.shift, fps=FPS, vae=mini.vae)
    with torch.no_grad():
        video = mini.vae.decode(out.latent)  # [1, 3, F, H, W] in -1..1
    return ((video[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)


def test_image_to_video_keeps_frame_zero(mini, clips):
    clip, scene = clips[0]
    video = generate(mini, scene.caption, 17, Keyframes.from_images(mini.vae, clip[:1], [0]))
    assert quality.psnr(video[0], clip[0]) >= 25


def test_forward_extension_continues_across_the_seam(mini, clips):
    clip, scene = clips[1]
    latent, keyframes = Keyframes.extension(mini.vae, clip, "forward", add_seconds=2.0, fps=FPS)
    video = generate(mini, scene.caption, 4 * (latent.shape[2] - 1) + 1, keyframes)
    assert quality.psnr(video[:17], clip) >= 25  # the clip itself comes back
    assert quality.seam_ratio(video.numpy(), 17) <= 2  # the change into the first new frame is a normal one


def test_backward_extension_ends_on_the_given_frames(mini, clips):
    clip, scene = clips[2]
    latent, keyframes = Keyframes.extension(mini.vae, clip, "backward", add_seconds=2.0, fps=FPS)
    video = generate(mini, scene.caption, 4 * (latent.shape[2] - 1) + 1, keyframes)
    assert quality.psnr(video[-17:], clip) >= 25
    assert quality.seam_ratio(video.numpy(), len(video) - 17) <= 2


def test_infill_reproduces_keyframes_and_moves_between_them(mini, clips):
    clip, scene = clips[3]
    video = generate(mini, scene.caption, 17, Keyframes.from_images(mini.vae, clip[[0, 16]], [0, 16]))
    assert quality.psnr(video[0], clip[0]) >= 25 and quality.psnr(video[16], clip[16]) >= 25
    detections = quality.detect_clip(video.numpy())
    assert quality.position_error(detections, scene, [4, 8, 12]) <= 6  # px from where the object should be


def test_a_minute_of_three_shots_keeps_its_background(mini):
    prompt = ("0: a red circle moving right on a blue background\n"
              "20: a yellow square moving left on a blue background\n"
              "40: a white triangle moving up on a blue background")
    video = generate(mini, prompt, frames_for_seconds(60, FPS), steps=8).numpy()
    assert len(video) == 481
    assert quality.drift_255(video[:FPS], video[-FPS:]) <= 5

"""mp4 round trip with ComfyUI metadata, safe output names, Load/Save Video nodes."""
import json
from types import SimpleNamespace

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.paths import safe_output_path
from comfyui_spacetime.core.video import read_metadata, read_mp4, write_mp4
from comfyui_spacetime.nodes.loaders import SpacetimeLoadDiffusionModel
from comfyui_spacetime.nodes.video_io import INVISIBLE_PAYLOAD, SpacetimeLoadVideo, SpacetimeSaveVideo
from comfyui_spacetime.provenance import detect_invisible_watermark, read_provenance


def gradient_video(frames: int = 5, height: int = 32, width: int = 48) -> torch.Tensor:
    """Smooth frames (h264 keeps them within a few levels) whose brightness rises over time."""
    y = torch.linspace(0, 1, height)[:, None, None]
    x = torch.linspace(0, 1, width)[None, :, None]
    channels = torch.tensor([1.0, 0.6, 0.3])
    return torch.stack([(0.2 + 0.5 * (x + y) / 2 + 0.05 * t) * channels for t in range(frames)]).clamp(0, 1)


def test_mp4_round_trip_keeps_frames_fps_and_metadata(tmp_path):
    video = gradient_video()
    workflow = {"nodes": [{"id": 1, "widgets_values": ["quotes \" = ; # \\ and\nnewlines"]}], "pad": "x" * 200_000}
    path = write_mp4(tmp_path / "clip.mp4", video, fps=12.0, crf=10,
                     metadata={"prompt": json.dumps({"1": {}}), "workflow": json.dumps(workflow)})
    frames, fps = read_mp4(path)
    assert frames.shape == video.shape and fps == 12.0
    assert (frames - video).abs().mean() < 2 / 255
    metadata = read_metadata(path)
    assert json.loads(metadata["workflow"]) == workflow and json.loads(metadata["prompt"]) == {"1": {}}


def test_odd_sizes_are_padded_to_even(tmp_path):
    frames, _ = read_mp4(write_mp4(tmp_path / "odd.mp4", gradient_video(1, 17, 31), fps=8))
    assert frames.shape == (1, 18, 32, 3)


def test_reading_a_non_video_is_a_clear_error(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(SpacetimeError, match="could not decode"):
        read_mp4(tmp_path / "notes.mp4")
    with pytest.raises(SpacetimeError, match="does not exist"):
        read_mp4(tmp_path / "missing.mp4")


def test_safe_output_path_counts_up_and_never_overwrites(pack_dirs):
    first = safe_output_path("video/clip", "mp4")
    second = safe_output_path("video/clip", "mp4")
    assert first == pack_dirs.output.resolve() / "video" / "clip_00001_.mp4"
    assert second.name == "clip_00002_.mp4" and first.exists()


@pytest.mark.parametrize("prefix", ["../escape", "a/../../b", "/tmp/abs", "~/home", "", "dir/"])
def test_safe_output_path_refuses_prefixes_outside_the_output(pack_dirs, prefix):
    with pytest.raises(SpacetimeError, match="filename_prefix"):
        safe_output_path(prefix, "mp4")


def test_save_then_load_video_nodes(pack_dirs):
    prompt = {"5": {"class_type": "SpacetimeSaveVideo", "inputs": {}}}
    workflow = {"nodes": [{"id": 5, "type": "SpacetimeSaveVideo"}], "links": []}
    saved = SpacetimeSaveVideo().save(gradient_video(), 8.0, "runs/test", 18, "none", "", False, False,
                                      prompt=prompt, extra_pnginfo={"workflow": workflow})
    path = pack_dirs.output.resolve() / "runs" / "test_00001_.mp4"
    assert saved["result"] == (str(path),)
    assert saved["ui"] == {"images": [{"filename": path.name, "subfolder": "runs", "type": "output"}],
                           "animated": (True,)}
    metadata = read_metadata(path)
    assert json.loads(metadata["workflow"]) == workflow and json.loads(metadata["prompt"]) == prompt

    (pack_dirs.input / "in.mp4").write_bytes(path.read_bytes())
    assert SpacetimeLoadVideo.INPUT_TYPES()["required"]["video"][0] == ["in.mp4"]
    images, fps, count = SpacetimeLoadVideo().load("in.mp4")
    assert images.shape == (5, 32, 48, 3) and fps == 8.0 and count == 5
    assert SpacetimeLoadVideo().load(str(path))[2] == 5  # a path works too


def test_load_video_names_a_missing_file(pack_dirs):
    with pytest.raises(SpacetimeError, match="not found in the input folder"):
        SpacetimeLoadVideo().load("nowhere.mp4")


def test_save_video_watermarks_and_signs_with_the_model_and_prompt(pack_dirs, tiny_models, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(pack_dirs.output.parent / "config"))  # the local signing identity
    model = SpacetimeLoadDiffusionModel().load(tiny_models.dit, "default", "sdpa", 0, "none")[0]
    conditioning = SimpleNamespace(prompts=["0: a red ball", "2: a blue ball"])
    video = gradient_video(9, 64, 64)
    saved = SpacetimeSaveVideo().save(video, 8.0, "signed", 18, "both", "AI-generated", True, True,
                                      model=model, conditioning=conditioning)
    path = saved["result"][0]
    report = read_provenance(path)
    assert report.valid, report.text()
    assert report.generation() == {"model": {"name": tiny_models.dit, "sha256": model.sha256[0]},
                                   "prompt": "0: a red ball\n2: a blue ball"}
    frames, _ = read_mp4(path)
    assert (frames - video).abs().mean() > 1 / 255  # the visible mark changed pixels
    assert detect_invisible_watermark(frames).payload == INVISIBLE_PAYLOAD


def test_signing_without_a_model_says_to_connect_one(pack_dirs):
    with pytest.raises(SpacetimeError, match="no model is connected"):
        SpacetimeSaveVideo().save(gradient_video(), 8.0, "x", 18, "none", "", True, False)
    assert not pack_dirs.output.exists()  # checked before any file is made

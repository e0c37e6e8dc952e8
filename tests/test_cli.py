"""`spacetime generate` and `spacetime run` end to end, on tiny random-weight files given by flags."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_spacetime.cli import main, parse_lora
from comfyui_spacetime.core.checkpoint import read_safetensors_keys
from comfyui_spacetime.core.dit_config import read_metadata_config
from comfyui_spacetime.core.loaders import load_dit
from comfyui_spacetime.core.paths import BUNDLED_FILES, MODELS_DIR_ENV, bundled_path
from comfyui_spacetime.core.video import read_metadata, read_mp4, write_mp4
from tests import tiny_dit
from tests.tiny_lora import lora_tensors, write_lora

BUNDLED = all(bundled_path(folder).is_file() for folder in BUNDLED_FILES)
FAST = ["--size", "32x32", "--frames", "9", "--steps", "2", "--cfg", "1", "--solver", "euler", "--fps", "8"]


def model_flags(pack_dirs, tiny_models) -> list[str]:
    return ["--models-dir", str(pack_dirs.models), "--dit", tiny_models.dit, "--text-encoder",
            tiny_models.text_encoder, "--vae", tiny_models.vae]


def test_generate_writes_an_mp4_with_its_settings(pack_dirs, tiny_models, tmp_path, capsys):
    out = tmp_path / "clips" / "ball.mp4"
    code = main(["generate", "--prompt", "a red ball", "--seed", "5", *FAST, *model_flags(pack_dirs, tiny_models),
                 "--frame-order", "first frame first", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out.resolve()} (9 frames, 32x32, 8 fps" in printed
    assert "first frame sampled first" in printed
    frames, fps = read_mp4(out)
    assert frames.shape == (9, 32, 32, 3) and fps == 8.0
    settings = json.loads(read_metadata(out)["spacetime"])
    assert settings["prompt"] == "a red ball" and settings["seed"] == 5 and settings["steps"] == 2
    assert settings["frame_order"] == "first frame first"


@pytest.mark.skipif(not BUNDLED, reason="the bundled spacetime-mini files are not in models/spacetime-mini/")
def test_generate_uses_the_bundled_model_and_its_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    out = tmp_path / "mini.mp4"
    code = main(["generate", "--prompt", "a red circle moving right on a blue background", "--steps", "2",
                 "--frames", "5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and str(out.resolve()) in printed
    assert "first frame sampled first" in printed  # the model's default for text to video
    defaults = read_metadata_config(read_safetensors_keys(bundled_path("diffusion_models"))[1])["sampling"]
    frames, fps = read_mp4(out)
    assert frames.shape == (5, defaults["height"], defaults["width"], 3) and fps == defaults["fps"]
    assert frames.std() > 0.02  # a picture, not a flat frame


@pytest.mark.skipif(not BUNDLED, reason="the bundled spacetime-mini files are not in models/spacetime-mini/")
def test_generate_recaptions_a_prompt_in_other_words_unless_told_not_to(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    flags = ["generate", "--prompt", "A red ball moves right across blue.", "--steps", "2", "--frames", "5"]
    assert main([*flags, "--out", str(tmp_path / "a.mp4")]) == 0
    assert "prompt read as 'a red circle moving to the right on a blue background'" in capsys.readouterr().out
    assert main([*flags, "--no-recaption", "--out", str(tmp_path / "b.mp4")]) == 0
    assert "prompt read as" not in capsys.readouterr().out


def test_generate_with_image_keyframes_and_default_output(pack_dirs, tiny_models, tmp_path, capsys):
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    Image.fromarray(np.full((40, 48, 3), 200, np.uint8)).save(start)
    Image.fromarray(np.full((32, 32, 3), 30, np.uint8)).save(end)
    code = main(["generate", "--prompt", "a red ball", "--image", str(start), f"--keyframe=-1:{end}", *FAST,
                 *model_flags(pack_dirs, tiny_models)])
    assert code == 0 and (pack_dirs.output / "spacetime_00001_.mp4").is_file()


def test_generate_extends_a_clip_backwards(pack_dirs, tiny_models, tmp_path):
    ramp = torch.linspace(0, 1, 5)[:, None, None, None].expand(5, 32, 32, 3)  # (T, H, W, 3)
    clip = write_mp4(tmp_path / "clip.mp4", ramp, fps=8)
    out = tmp_path / "longer.mp4"
    code = main(["generate", "--prompt", "a red ball", "--extend", str(clip), "--direction", "backward",
                 "--seconds", "0.5", "--steps", "1", "--cfg", "1", *model_flags(pack_dirs, tiny_models),
                 "--out", str(out)])
    assert code == 0 and read_mp4(out)[0].shape[0] == 9


@pytest.mark.parametrize("flags, message", [
    (["--size", "30x32"], "error: width 30 is not a multiple of 16"),
    (["--frames", "10"], "error: frames 10 is not 4k+1"),
    (["--size", "big"], "error: size 'big' is not WIDTHxHEIGHT"),
    (["--keyframe", "a.png"], "error: --keyframe 'a.png' is not FRAME:IMAGE"),
    (["--dit", "missing.safetensors"], "error: model file 'missing.safetensors' was not found"),
    (["--prompt", " "], "error: the prompt is empty"),
    (["--out", "clip.avi"], "error: --out clip.avi does not end in .mp4"),
])
def test_generate_errors_are_one_clear_line(pack_dirs, tiny_models, capsys, flags, message):
    argv = ["generate", "--prompt", "a red ball", *model_flags(pack_dirs, tiny_models), *FAST, *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def api_workflow(tiny_models, node_type: str = "SpacetimeSaveVideo") -> dict:
    """Text-to-video on the tiny models, in the API format."""
    return {
        "1": {"class_type": "SpacetimeLoadDiffusionModel", "inputs": {
            "model_name": tiny_models.dit, "weight_dtype": "default", "attention": "sdpa", "block_swap": 0,
            "low_noise_model_name": "none"}},
        "2": {"class_type": "SpacetimeLoadTextEncoder", "inputs": {"text_encoder_name": tiny_models.text_encoder}},
        "3": {"class_type": "SpacetimeLoadVAE", "inputs": {"vae_name": tiny_models.vae}},
        "4": {"class_type": "SpacetimeTextEncode", "inputs": {"text_encoder": ["2", 0], "prompt": "a red ball",
                                                             "negative_prompt": ""}},
        "5": {"class_type": "SpacetimeEmptyLatentVideo", "inputs": {"vae": ["3", 0], "width": 32, "height": 32,
                                                                   "frames": 5, "batch_size": 1}},
        "6": {"class_type": "SpacetimeSampler", "inputs": {
            "model": ["1", 0], "conditioning": ["4", 0], "latent": ["5", 0], "seed": 1, "steps": 1, "cfg": 1.0,
            "shift": 5.0, "solver": "euler", "denoise": 1.0, "fps": 8.0, "vae": ["3", 0]}},
        "7": {"class_type": "SpacetimeVAEDecode", "inputs": {"vae": ["3", 0], "latent": ["6", 0], "tiled": False,
                                                            "tile_size": 256, "tile_overlap": 64, "batch_index": 0}},
        "8": {"class_type": node_type, "inputs": {
            "images": ["7", 0], "fps": 8.0, "filename_prefix": "runs/t2v", "crf": 19, "watermark": "none",
            "watermark_text": "", "sign_c2pa": False, "include_prompt_in_manifest": False}},
    }


def test_run_executes_an_api_workflow(pack_dirs, tiny_models, tmp_path, capsys):
    path = tmp_path / "t2v_api.json"
    path.write_text(json.dumps(api_workflow(tiny_models)))
    out = tmp_path / "elsewhere"
    assert main(["run", str(path), "--out", str(out), "--models-dir", str(pack_dirs.models)]) == 0
    saved = out / "runs" / "t2v_00001_.mp4"
    assert f"node 8: wrote {saved.resolve()}" in capsys.readouterr().out
    assert read_mp4(saved)[0].shape == (5, 32, 32, 3)
    assert json.loads(read_metadata(saved)["prompt"])["6"]["inputs"]["seed"] == 1


def test_run_names_a_node_type_the_pack_does_not_provide(pack_dirs, tiny_models, tmp_path, capsys):
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(api_workflow(tiny_models, node_type="VHS_VideoCombine")))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'VHS_VideoCombine', which ComfyUI-Spacetime does not provide" in err and "Traceback" not in err


@pytest.mark.parametrize("text, parsed", [
    ("style.safetensors", ("style.safetensors", 1.0, "both")),
    ("style.safetensors:0.8", ("style.safetensors", 0.8, "both")),
    ("fast.safetensors:1:low_noise", ("fast.safetensors", 1.0, "low_noise")),
    ("a:b.safetensors:-0.5", ("a:b.safetensors", -0.5, "both")),
])
def test_lora_flag_reads_file_strength_and_expert(text, parsed):
    assert parse_lora(text) == parsed


def test_generate_with_a_lora_changes_the_video_and_records_it(pack_dirs, tiny_models, tmp_path, capsys):
    dit = load_dit(pack_dirs.models / "diffusion_models" / tiny_models.dit)
    write_lora(pack_dirs.models / "loras" / "style.safetensors", lora_tensors(dit))
    base = ["generate", "--prompt", "a red ball", *FAST, *model_flags(pack_dirs, tiny_models)]
    clips = {}
    runs = {"plain": [], "zero": ["--lora", "style.safetensors:0"], "lora": ["--lora", "style.safetensors"]}
    for name, flags in runs.items():
        assert main([*base, *flags, "--out", str(tmp_path / f"{name}.mp4")]) == 0
        clips[name] = read_mp4(tmp_path / f"{name}.mp4")[0]  # [T, H, W, 3] in 0..1
    assert torch.equal(clips["zero"], clips["plain"]) and (clips["lora"] - clips["plain"]).abs().mean() > 1 / 255
    assert json.loads(read_metadata(tmp_path / "lora.mp4")["spacetime"])["loras"] == ["style.safetensors:1:both"]
    assert main([*base, "--lora", "missing.safetensors", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "'missing.safetensors' was not found in the loras folder" in capsys.readouterr().err


def test_generate_with_a_subject_reference_needs_a_vace_model(pack_dirs, tiny_models, tmp_path, capsys):
    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "subject.png")
    argv = ["generate", "--prompt", "a red ball", *FAST, *model_flags(pack_dirs, tiny_models), "--reference",
            str(tmp_path / "subject.png"), "--out", str(tmp_path / "x.mp4")]
    assert main(argv) == 2 and "Wan 2.1 VACE models only" in capsys.readouterr().err
    tiny_dit.save_dit(pack_dirs.models / "diffusion_models" / "tiny_vace.safetensors",
                      tiny_dit.tiny_dit("vace", text_dim=32))
    assert main([*argv[:-2], "--dit", "tiny_vace.safetensors", "--out", str(tmp_path / "vace.mp4")]) == 0
    assert "1 subject reference(s) beside every window" in capsys.readouterr().out

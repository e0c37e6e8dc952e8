"""Each node function called directly on tiny random-weight models read through the real loaders."""
import dataclasses
import shutil
from types import SimpleNamespace

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from comfyui_spacetime.nodes.conditioning import SpacetimeExtendVideo, SpacetimeImageToVideo, SpacetimeInfillFrames
from comfyui_spacetime.nodes.download import SpacetimeDownloadModel
from comfyui_spacetime.nodes.latent import SpacetimeEmptyLatentVideo
from comfyui_spacetime.nodes.loaders import (SpacetimeLoadDiffusionModel, SpacetimeLoadTextEncoder, SpacetimeLoadVAE,
                                             dit_dtype)
from comfyui_spacetime.nodes.sampling import SpacetimeSampler
from comfyui_spacetime.nodes.text import SpacetimeTextEncode
from comfyui_spacetime.nodes.vae_nodes import SpacetimeVAEDecode, SpacetimeVAEEncode

DEFAULT_LOADER_OPTIONS = ("default", "sdpa", 0, "none")


@pytest.fixture
def loaded(tiny_models):
    """The tiny models loaded through the three loader nodes."""
    model = SpacetimeLoadDiffusionModel().load(tiny_models.dit, *DEFAULT_LOADER_OPTIONS)[0]
    text_encoder = SpacetimeLoadTextEncoder().load(tiny_models.text_encoder)[0]
    vae = SpacetimeLoadVAE().load(tiny_models.vae)[0]
    return SimpleNamespace(model=model, text_encoder=text_encoder, vae=vae)


def sampler_run(loaded, conditioning, latent, seed=0, keyframes=None, cfg=1.0):
    """Two Euler steps: enough to run every code path of the node. Its outputs; the node shows `info` as ui text."""
    output = SpacetimeSampler().sample(loaded.model, conditioning, latent, seed, 2, cfg, 5.0, "euler", 1.0, 8.0,
                                       keyframes=keyframes, vae=loaded.vae)
    assert output["ui"] == {"text": [output["result"][1]]}
    return output["result"]


# ---- node definitions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_every_node_is_described_for_comfyui(name):
    node = NODE_CLASS_MAPPINGS[name]
    declared = node.INPUT_TYPES()
    inputs = {**declared["required"], **declared.get("optional", {})}
    assert name.startswith("Spacetime") and name in NODE_DISPLAY_NAME_MAPPINGS
    assert node.CATEGORY.startswith("Spacetime/") and node.DESCRIPTION
    assert callable(getattr(node, node.FUNCTION))
    assert len(getattr(node, "RETURN_NAMES", node.RETURN_TYPES)) == len(node.RETURN_TYPES)
    assert [n for n, spec in inputs.items() if not spec[1].get("tooltip")] == []


# ---- loaders --------------------------------------------------------------------------------------------------

def test_loaders_list_and_load_the_model_folders(tiny_models, loaded):
    assert tiny_models.dit in SpacetimeLoadDiffusionModel.INPUT_TYPES()["required"]["model_name"][0]
    assert tiny_models.vae in SpacetimeLoadVAE.INPUT_TYPES()["required"]["vae_name"][0]
    assert loaded.model.config.in_dim == 16 and loaded.model.file_names == (tiny_models.dit,)
    assert loaded.text_encoder.encode(["a red ball"]).shape[-1] == loaded.model.config.text_dim
    assert loaded.vae.config.latent_channels == 16


def test_default_weight_dtype_is_fp32_on_the_cpu_and_the_files_elsewhere():
    assert dit_dtype("default", torch.device("cpu")) == torch.float32
    assert dit_dtype("default", torch.device("cuda")) is None
    assert dit_dtype("fp8_e4m3fn", torch.device("cpu")) == torch.float8_e4m3fn


def test_model_loader_names_a_vae_file_as_such(pack_dirs, tiny_models):
    """A VAE put into models/diffusion_models by mistake."""
    shutil.copy(pack_dirs.models / "vae" / tiny_models.vae, pack_dirs.models / "diffusion_models")
    with pytest.raises(SpacetimeError, match="VAE.*expected a Wan diffusion model"):
        SpacetimeLoadDiffusionModel().load(tiny_models.vae, *DEFAULT_LOADER_OPTIONS)


def test_vae_loader_names_a_diffusion_model_file_as_such(pack_dirs, tiny_models):
    shutil.copy(pack_dirs.models / "diffusion_models" / tiny_models.dit, pack_dirs.models / "vae")
    with pytest.raises(SpacetimeError, match="Load Diffusion Model"):
        SpacetimeLoadVAE().load(tiny_models.dit)


def test_missing_model_file_is_named(pack_dirs):
    with pytest.raises(SpacetimeError, match="'wan2.1_t2v_1.3B_fp16.safetensors' was not found"):
        SpacetimeLoadDiffusionModel().load("wan2.1_t2v_1.3B_fp16.safetensors", *DEFAULT_LOADER_OPTIONS)


# ---- text and latent ------------------------------------------------------------------------------------------

def test_text_encode_single_prompt_and_shot_list(loaded):
    conditioning = SpacetimeTextEncode().encode(loaded.text_encoder, "a red ball", "blurry")[0]
    assert conditioning.prompts == ["a red ball"] and conditioning.negative.prompts == ["blurry"]
    shots = SpacetimeTextEncode().encode(loaded.text_encoder, "0: a red ball\n2.5: a blue ball", "")[0]
    assert [start for start, _, _ in shots.schedule] == [0.0, 2.5]
    assert not torch.equal(shots.context_at(0), shots.context_at(3))


def test_text_encode_recaptions_only_for_a_text_encoder_of_the_worlds_captions(loaded, monkeypatch):
    typed = "0: A red ball moves right.\n2: a star"
    as_typed = SpacetimeTextEncode().encode(loaded.text_encoder, typed, "A blue box")[0]
    assert as_typed.prompts == ["A red ball moves right.", "a star"] and as_typed.recaptioned == ()
    monkeypatch.setattr(loaded.text_encoder, "caption_language", "spacetime-mini", raising=False)
    mini = SpacetimeTextEncode().encode(loaded.text_encoder, typed, "A blue box")[0]
    assert mini.prompts == ["a red circle moving to the right", "a star"]  # no object in "a star": as typed
    assert mini.recaptioned == (("A red ball moves right.", "a red circle moving to the right"),)
    assert mini.negative.prompts == ["A blue box"]  # what to avoid stays as typed
    info = sampler_run(loaded, mini, SpacetimeEmptyLatentVideo().generate(loaded.vae, 32, 32, 5, 1)[0])[1]
    assert "prompt read as 'a red circle moving to the right' (typed: 'A red ball moves right.')" in info
    off = SpacetimeTextEncode().encode(loaded.text_encoder, typed, "", recaption=False)[0]
    assert off.prompts == as_typed.prompts


@pytest.mark.parametrize("prompt", ["", "  \n "])
def test_text_encode_refuses_an_empty_prompt(loaded, prompt):
    with pytest.raises(SpacetimeError, match="prompt is empty"):
        SpacetimeTextEncode().encode(loaded.text_encoder, prompt, "")


def fake_vae(compression, channels):
    """Empty Latent Video reads only these two facts from the VAE."""
    return SimpleNamespace(config=SimpleNamespace(compression=compression, latent_channels=channels))


def test_empty_latent_shape():
    latent = SpacetimeEmptyLatentVideo().generate(fake_vae((4, 8, 8), 16), 48, 32, 9, 2)[0]["samples"]
    assert latent.shape == (2, 16, 3, 4, 6) and not latent.any()
    latent = SpacetimeEmptyLatentVideo().generate(fake_vae((4, 16, 16), 48), 64, 32, 1, 1)[0]["samples"]
    assert latent.shape == (1, 48, 1, 2, 4)


@pytest.mark.parametrize("compression, width, height, frames, message", [
    ((4, 8, 8), 40, 32, 9, "width 40 is not a multiple of 16.*use 32 or 48"),
    ((4, 8, 8), 48, 8, 9, "height 8 is not a multiple of 16.*use 16"),
    ((4, 16, 16), 48, 64, 9, "width 48 is not a multiple of 32.*use 32 or 64"),
    ((4, 8, 8), 32, 32, 10, "frames 10 is not 4k\\+1.*use 9 or 13"),
    ((4, 8, 8), 32, 32, 0, "frames 0 is not 4k\\+1.*use 1 or 5"),
])
def test_empty_latent_names_the_nearest_valid_values(compression, width, height, frames, message):
    with pytest.raises(SpacetimeError, match=message):
        SpacetimeEmptyLatentVideo().generate(fake_vae(compression, 16), width, height, frames, 1)


# ---- sampling and decoding ------------------------------------------------------------------------------------

def test_text_to_video_chain(loaded):
    conditioning = SpacetimeTextEncode().encode(loaded.text_encoder, "a red ball", "")[0]
    latent = SpacetimeEmptyLatentVideo().generate(loaded.vae, 32, 32, 9, 1)[0]
    sampled, info = sampler_run(loaded, conditioning, latent, seed=3, cfg=2.0)
    again, _ = sampler_run(loaded, conditioning, latent, seed=3, cfg=2.0)
    other, _ = sampler_run(loaded, conditioning, latent, seed=4, cfg=2.0)
    assert sampled["samples"].shape == latent["samples"].shape and not latent["samples"].any()
    assert torch.equal(sampled["samples"], again["samples"]) and not torch.equal(sampled["samples"], other["samples"])
    assert info.startswith(loaded.model.mechanism)
    images = SpacetimeVAEDecode().decode(loaded.vae, sampled, False, 256, 64, 0)[0]
    assert images.shape == (9, 32, 32, 3) and 0 <= images.min() and images.max() <= 1


def test_frame_order_auto_is_the_models_default(loaded):
    conditioning = SpacetimeTextEncode().encode(loaded.text_encoder, "a red ball", "")[0]
    latent = SpacetimeEmptyLatentVideo().generate(loaded.vae, 32, 32, 9, 1)[0]

    def info(model, order):
        return SpacetimeSampler().sample(model, conditioning, latent, 0, 2, 1.0, 5.0, "euler", 1.0, 8.0,
                                         vae=loaded.vae, frame_order=order)["result"][1]

    assert "first frame" not in info(loaded.model, "auto")  # Wan's default: all frames together
    assert "first frame sampled first" in info(loaded.model, "first frame first")
    mini_like = dataclasses.replace(loaded.model.sampling, first_frame_first=True)
    model = dataclasses.replace(loaded.model, config=dataclasses.replace(loaded.model.config, sampling=mini_like))
    assert "first frame sampled first" in info(model, "auto")
    assert "first frame" not in info(model, "all together")
    with pytest.raises(SpacetimeError, match="frame_order 'backwards' is unknown"):
        info(model, "backwards")


def test_keyframe_fit_auto_is_the_models_default(loaded):
    conditioning = SpacetimeTextEncode().encode(loaded.text_encoder, "a red ball", "")[0]
    latent = SpacetimeEmptyLatentVideo().generate(loaded.vae, 32, 32, 9, 1)[0]
    keyframes = SpacetimeImageToVideo().build(loaded.vae, torch.rand(1, 32, 32, 3), 1.0)[0]

    def info(model, fit):
        return SpacetimeSampler().sample(model, conditioning, latent, 0, 2, 1.0, 5.0, "euler", 1.0, 8.0,
                                         keyframes=keyframes, keyframe_fit=fit)["result"][1]

    assert "keyframe fit" not in info(loaded.model, "auto")  # Wan's default: off
    assert "keyframe fit: 1 latent frame(s)" in info(loaded.model, "on")
    mini_like = dataclasses.replace(loaded.model.sampling, keyframe_fit=True)
    model = dataclasses.replace(loaded.model, config=dataclasses.replace(loaded.model.config, sampling=mini_like))
    assert "keyframe fit" in info(model, "auto") and "keyframe fit" not in info(model, "off")
    with pytest.raises(SpacetimeError, match="keyframe_fit 'always' is unknown"):
        info(model, "always")


def test_vae_encode_decode_tiled_and_batch_index(loaded):
    video = torch.rand(2, 32, 48, 3)
    latent = SpacetimeVAEEncode().encode(loaded.vae, video)[0]
    assert latent["samples"].shape == (1, 16, 1, 4, 6)  # the 2nd frame is dropped: 1 = 4k+1
    full = SpacetimeVAEDecode().decode(loaded.vae, latent, False, 256, 64, 0)[0]
    tiled = SpacetimeVAEDecode().decode(loaded.vae, latent, True, 32, 16, 0)[0]
    pixels = loaded.vae.decode_tiled(latent["samples"], tile=4, overlap=2)  # tile and overlap in latent pixels
    assert full.shape == tiled.shape == (1, 32, 48, 3)
    assert torch.allclose(tiled, ((pixels[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1))
    assert torch.allclose(full, ((loaded.vae.decode(latent["samples"])[0].permute(1, 2, 3, 0) + 1) / 2))
    with pytest.raises(SpacetimeError, match="batch_index 1 is past the latent's batch of 1"):
        SpacetimeVAEDecode().decode(loaded.vae, latent, False, 256, 64, 1)


# ---- keyframe nodes -------------------------------------------------------------------------------------------

def test_image_to_video_and_infill_chain_into_the_sampler(loaded):
    start = SpacetimeImageToVideo().build(loaded.vae, torch.rand(2, 40, 40, 3), 1.0)[0]
    assert [(k.index, k.pixels.shape[0]) for k in start.items] == [(0, 1)]  # the first image of the batch
    both = SpacetimeInfillFrames().build(loaded.vae, torch.rand(2, 32, 32, 3), "4, -1", 9, 8.0, 0.5, start)[0]
    assert [(k.index, k.strength) for k in both.items] == [(0, 1.0), (4, 0.5), (-1, 0.5)]
    conditioning = SpacetimeTextEncode().encode(loaded.text_encoder, "a red ball", "")[0]
    latent = SpacetimeEmptyLatentVideo().generate(loaded.vae, 32, 32, 9, 1)[0]
    sampled, info = sampler_run(loaded, conditioning, latent, keyframes=both)
    assert sampled["samples"].shape == (1, 16, 3, 4, 4) and loaded.model.mechanism in info


@pytest.mark.parametrize("indices, message", [("0,x", "not a comma-separated list"),
                                              ("0", "2 image\\(s\\) but 1 frame index")])
def test_infill_refuses_bad_indices(loaded, indices, message):
    with pytest.raises(SpacetimeError, match=message):
        SpacetimeInfillFrames().build(loaded.vae, torch.rand(2, 32, 32, 3), indices, 9, 8.0, 1.0)


@pytest.mark.parametrize("direction, clip_index", [("forward", 0), ("backward", 4)])
def test_extend_video_covers_clip_and_extension(loaded, direction, clip_index):
    clip = torch.rand(5, 32, 32, 3)
    latent, keyframes = SpacetimeExtendVideo().build(loaded.vae, clip, direction, 0.5, 8.0, 0, True)
    assert latent["samples"].shape == (1, 16, 3, 4, 4)  # 5 + 0.5 s at 8 fps -> 9 = 4k+1 frames
    assert [(k.index, k.pixels.shape[0]) for k in keyframes.items] == [(clip_index, 5)]
    assert keyframes.anchors == (clip_index,)


# ---- download -------------------------------------------------------------------------------------------------

def test_download_node_fetches_into_the_models_folder(pack_dirs, monkeypatch):
    calls = []

    def fake_download(name, models_dir, token=None):
        calls.append((name, models_dir, token))
        return [models_dir / "vae" / "wan_2.1_vae.safetensors"]

    monkeypatch.setattr("comfyui_spacetime.nodes.download.download_preset", fake_download)
    presets = SpacetimeDownloadModel.INPUT_TYPES()["required"]["preset"][0]
    assert "wan2.1-vae" in presets
    paths = SpacetimeDownloadModel().download("wan2.1-vae", token=" hf_x ")[0]
    assert calls == [("wan2.1-vae", pack_dirs.models, "hf_x")]
    assert paths == str(pack_dirs.models / "vae" / "wan_2.1_vae.safetensors")

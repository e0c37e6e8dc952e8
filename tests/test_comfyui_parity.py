"""The same numbers as ComfyUI's own Wan code: its DiT (Wan 2.1 T2V, I2V, FLF2V and VACE, Wan 2.2 TI2V with
per-token timesteps), its Wan 2.1 and 2.2 VAEs, its UMT5, its CLIP vision, its LoRA merge and the channel-concat
input of its first-last-frame node, at tiny sizes with random weights, written in their state-dict layout by
tests/comfyui_reference.py under ComfyUI's Python and loaded here through the pack's loaders.

Runs only when COMFYUI_DIR names a ComfyUI checkout (COMFYUI_PYTHON: the Python with its requirements, default this
one), like tests/test_comfyui_server.py.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from comfyui_spacetime.core.clip_vision import load_clip_vision
from comfyui_spacetime.core.loaders import load_model
from comfyui_spacetime.core.text_encoder import load_text_encoder
from comfyui_spacetime.sampler import Keyframes
from comfyui_spacetime.vae import load_vae
from tests.tiny_sampler import PoolingVAE

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR is not set: no ComfyUI to compare with")
TOLERANCE = 1e-5  # max |pack - ComfyUI| / max |ComfyUI|, float32 on the CPU


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("comfyui-reference")
    script = Path(__file__).with_name("comfyui_reference.py")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, str(script), COMFYUI_DIR, str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


@pytest.mark.parametrize("name, variant", [("wan21_t2v", "wan2.1"), ("wan22_ti2v", "wan2.2")])
def test_dit_matches_comfyui(reference, name, variant):
    model = load_model(reference / f"{name}.safetensors")
    assert model.config.variant.startswith(variant)
    case = torch.load(reference / f"{name}.pt")
    per_frame = torch.full((2, 3), 700.0)  # the pack's per-latent-frame timesteps = ComfyUI's per-token ones
    per_frame[:, 0] = 0.0
    prompt_only = case["context"][:, :7]  # Wan's reference pads a prompt to 512 zero rows itself, as ComfyUI's
    with torch.no_grad():                  # text encoder does before its model: the same numbers either way
        assert relative_error(model.dit(case["x"], case["timestep"], case["context"]), case["out"]) < TOLERANCE
        assert relative_error(model.dit(case["x"], case["timestep"], prompt_only), case["out"]) < TOLERANCE
        assert relative_error(model.dit(case["x"], per_frame, case["context"]), case["per_token_out"]) < TOLERANCE
        patches = case["x"].shape[3] * case["x"].shape[4] // 4  # per latent frame, 2x2 patches
        per_token = per_frame[:, :, None].expand(-1, -1, patches).flatten(1)  # ComfyUI's own form: one per patch
        assert relative_error(model.dit(case["x"], per_token, case["context"]), case["per_token_out"]) < TOLERANCE


@pytest.mark.parametrize("name, family", [("wan21_i2v", "i2v"), ("wan21_flf2v", "flf2v")])
def test_image_conditioned_dit_matches_comfyui(reference, name, family):
    model = load_model(reference / f"{name}.safetensors")
    assert family in model.config.variant
    case = torch.load(reference / f"{name}.pt")
    clip_fea = case["clip_fea"].reshape(-1, 257, 1280)  # the pack takes FLF2V's two images as [2B, 257, 1280]
    with torch.no_grad():
        ours = model.dit(case["x"], case["timestep"], case["context"], clip_fea=clip_fea)
    assert relative_error(ours, case["out"]) < TOLERANCE


def test_vace_dit_matches_comfyui(reference):
    model = load_model(reference / "wan21_vace.safetensors")
    assert "vace" in model.config.variant
    case = torch.load(reference / "wan21_vace.pt")
    with torch.no_grad():
        ours = model.dit(case["x"], case["timestep"], case["context"], vace_context=case["vace_context"],
                         vace_strength=0.7)
    assert relative_error(ours, case["out"]) < TOLERANCE


@pytest.mark.parametrize("name, variant", [("wan21_vae", "wan2.1"), ("wan22_vae", "wan2.2")])
def test_vae_matches_comfyui(reference, name, variant):
    vae = load_vae(reference / f"{name}.safetensors")
    assert vae.config.variant == variant
    case = torch.load(reference / f"{name}.pt")
    with torch.no_grad():
        assert relative_error(vae.encode(case["pixels"]), case["latent"]) < TOLERANCE
        # ComfyUI's VAE class returns the decoder's raw output; its VAE wrapper clamps it to -1..1, as ours does
        assert relative_error(vae.decode(case["latent"]), case["decoded"].clamp(-1, 1)) < TOLERANCE


def test_umt5_matches_comfyui(reference):
    encoder = load_text_encoder(reference / "umt5.safetensors").model
    case = torch.load(reference / "umt5.pt")
    with torch.no_grad():
        ours = encoder(case["ids"], case["mask"])
    prompt = case["mask"].bool()  # ComfyUI zeroes the pad rows after the model too (zero_out_masked)
    assert relative_error(ours[prompt], case["out"][prompt]) < TOLERANCE
    assert not ours[~prompt].any()


def test_lora_matches_comfyui_merging_it(reference):
    model = load_model(reference / "wan21_t2v_for_lora.safetensors").with_lora(reference / "lora.safetensors", 0.8)
    case = torch.load(reference / "lora.pt")
    assert case["patched"] == 8  # ComfyUI placed every change: 5 low-rank pairs and 3 whole differences
    with torch.no_grad():
        ours = model.expert(0.5)(case["x"], case["timestep"], case["context"])
    assert relative_error(ours, case["out"]) < TOLERANCE


def test_clip_vision_matches_comfyui(reference):
    encoder = load_clip_vision(reference / "clip_vision.safetensors")
    case = torch.load(reference / "clip_vision.pt")
    with torch.no_grad():
        assert relative_error(encoder.model(case["pixels"]), case["tokens"]) < TOLERANCE


def test_first_and_last_frame_give_comfyuis_concat_video_and_mask(reference):
    """What a channel-concat model (Wan 2.1 FLF2V, Wan 2.2 I2V) is given: the same pixel video (gray between the two
    frames) and the same per-pixel-frame mask as ComfyUI's WanFirstLastFrameToVideo builds."""
    case = torch.load(reference / "first_last_frame.pt")
    vae = PoolingVAE()
    keyframes = Keyframes.from_images(vae, case["images"], [0, -1], length=17)
    keyframes.latents((5, 4, 6), "exact")
    assert torch.equal(vae.videos[-1][0].permute(1, 2, 3, 0), case["video"] * 2 - 1)  # [F, H, W, 3] in -1..1
    given = 1 - case["mask"][0, :, :, 0, 0]  # ComfyUI's mask is 1 where the model generates; [4, T]
    assert torch.equal(keyframes.pixel_strengths(5), given)

"""The CLIP-vision encoder of Wan 2.1 I2V / FLF2V: the penultimate block's tokens, fed by the sampler to the DiT."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from comfyui_spacetime.cli import main
from comfyui_spacetime.core.clip_vision import CLIP_MEAN, CLIP_STD, load_clip_vision
from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.loaders import SpacetimeModel
from comfyui_spacetime.nodes.loaders import SpacetimeLoadCLIPVision
from comfyui_spacetime.sampler import Keyframes, sample
from tests.tiny_clip import clip_state, save_clip
from tests.tiny_dit import save_dit, tiny_dit
from tests.tiny_sampler import PoolingVAE, prompt

LATENT = (1, 16, 3, 2, 2)  # [B, C, T, H, W]: 9 pixel frames of 16x16


def naive_tokens(state: dict, pixels: torch.Tensor, layers: int, heads: int) -> torch.Tensor:
    """CLIP's vision tower written out step by step from the file's tensors, stopped after `layers` blocks."""
    v = {k.removeprefix("vision_model."): t for k, t in state.items()}
    patch = v["embeddings.patch_embedding.weight"]
    x = F.conv2d(pixels, patch, stride=patch.shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([v["embeddings.class_embedding"].expand(x.shape[0], 1, -1), x], 1)
    x = x + v["embeddings.position_embedding.weight"]
    ln = lambda t, name: F.layer_norm(t, t.shape[-1:], v[f"{name}.weight"], v[f"{name}.bias"], 1e-5)
    lin = lambda t, name: t @ v[f"{name}.weight"].T + v[f"{name}.bias"]
    x = ln(x, "pre_layrnorm")
    for i in range(layers):
        p = f"encoder.layers.{i}"
        h = ln(x, f"{p}.layer_norm1")
        q, k, val = (lin(h, f"{p}.self_attn.{n}_proj").unflatten(-1, (heads, -1)).transpose(1, 2) for n in "qkv")
        attention = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ val
        x = x + lin(attention.transpose(1, 2).flatten(2), f"{p}.self_attn.out_proj")
        x = x + lin(F.gelu(lin(ln(x, f"{p}.layer_norm2"), f"{p}.mlp.fc1")), f"{p}.mlp.fc2")
    return x


def test_tokens_are_the_penultimate_blocks_of_the_file(tmp_path):
    encoder = load_clip_vision(save_clip(tmp_path / "clip_vision_tiny.safetensors"))
    config = encoder.config
    assert (config.width, config.layers, config.heads, config.patch, config.image_size) == (160, 3, 2, 14, 28)
    assert len(encoder.model.encoder.layers) == 2  # the last block's output is not what Wan reads
    images = torch.rand(2, 40, 30, 3)
    tokens = encoder.encode(images)
    assert tokens.shape == (2, 5, 160)
    pixels = F.interpolate(images.movedim(-1, 1), size=(28, 28), mode="bicubic", align_corners=False)
    pixels = (pixels - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    expected = naive_tokens(clip_state(), pixels, layers=2, heads=2)
    assert (tokens - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert (tokens[0] - tokens[1]).abs().max() > 0.1  # the image matters


def test_another_kind_of_file_is_named(tmp_path):
    with pytest.raises(SpacetimeError, match="is a Wan diffusion model.*not a CLIP-vision encoder"):
        load_clip_vision(save_dit(tmp_path / "dit.safetensors", tiny_dit()))
    for cut, message in (("layers.1.self_attn", "missing.*layers.1.self_attn"), ("layers.0.mlp", "is incomplete")):
        save_file({k: t for k, t in clip_state().items() if cut not in k}, str(tmp_path / "cut.safetensors"))
        with pytest.raises(SpacetimeError, match=message):
            load_clip_vision(tmp_path / "cut.safetensors")


@pytest.fixture(scope="module")
def wan_clip(tmp_path_factory):
    """A tiny encoder of Wan's width (1280) and token count (257), as the DiT's image embedding takes."""
    path = save_clip(tmp_path_factory.mktemp("clip") / "clip.safetensors", width=1280, layers=2, mlp=640,
                     image_size=224)
    return load_clip_vision(path)


def spy_clip_fea(dit) -> list:
    seen = []
    dit.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs.get("clip_fea")), with_kwargs=True)
    return seen


@pytest.mark.parametrize("family, indices", [("i2v-clip", [0]), ("flf2v", [0, -1])])
def test_the_sampler_feeds_the_known_frames_tokens_to_every_call(wan_clip, family, indices):
    dit = tiny_dit(family)
    model = SpacetimeModel(dit, dit.config, (Path("tiny.safetensors"),))
    images = torch.rand(len(indices), 16, 16, 3)
    keyframes = Keyframes.from_images(PoolingVAE(), images, indices, clip_vision=wan_clip)
    seen = spy_clip_fea(dit)
    out = sample(model, torch.zeros(2, *LATENT[1:]), prompt(0.1, negative=0.0), keyframes=keyframes, steps=2, cfg=2.0)
    assert torch.isfinite(out.latent).all() and out.info.startswith("concat")
    assert f"CLIP-vision tokens of the {'first and last' if len(indices) == 2 else 'first'} known frame" in out.info
    tokens = wan_clip.encode(images)  # [1 or 2, 257, 1280]: first (and last) frame
    assert len(seen) == 4 and all(torch.equal(fea, tokens.repeat(2, 1, 1)) for fea in seen)  # cond + uncond


def test_image_models_say_what_they_miss(wan_clip):
    dit = tiny_dit("flf2v")
    model = SpacetimeModel(dit, dit.config, (Path("tiny.safetensors"),))
    cond, latent = prompt(0.1), torch.zeros(LATENT)
    with pytest.raises(SpacetimeError, match="makes video from a start image"):
        sample(model, latent, cond, cfg=1, vae=PoolingVAE())
    first = Keyframes.from_images(PoolingVAE(), torch.rand(1, 16, 16, 3), [0])
    with pytest.raises(SpacetimeError, match="Spacetime Load CLIP Vision"):
        sample(model, latent, cond, cfg=1, keyframes=first)
    first = Keyframes.from_images(PoolingVAE(), torch.rand(1, 16, 16, 3), [0], clip_vision=wan_clip)
    with pytest.raises(SpacetimeError, match="needs the video's last frame"):
        sample(model, latent, cond, cfg=1, keyframes=first)


def test_the_node_lists_and_loads_the_clip_vision_folder(pack_dirs):
    save_clip(pack_dirs.models / "clip_vision" / "clip_vision_tiny.safetensors")
    assert SpacetimeLoadCLIPVision.INPUT_TYPES()["required"]["clip_vision_name"][0] == ["clip_vision_tiny.safetensors"]
    (encoder,) = SpacetimeLoadCLIPVision().load("clip_vision_tiny.safetensors")
    assert encoder.config.width == 160 and encoder.name == "clip_vision_tiny.safetensors"


def test_generate_animates_an_image_with_a_wan21_i2v_model(pack_dirs, tiny_models, tmp_path, capsys):
    save_dit(pack_dirs.models / "diffusion_models" / "tiny_i2v.safetensors", tiny_dit("i2v-clip", text_dim=32))
    save_clip(pack_dirs.models / "clip_vision" / "clip_h.safetensors", width=1280, layers=2, mlp=640, image_size=224)
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    argv = ["generate", "--prompt", "a red ball", "--image", str(tmp_path / "a.png"), "--size", "32x32", "--frames",
            "5", "--steps", "1", "--cfg", "1", "--fps", "8", "--models-dir", str(pack_dirs.models), "--dit",
            "tiny_i2v.safetensors", "--text-encoder", tiny_models.text_encoder, "--vae", tiny_models.vae]
    assert main([*argv, "--out", str(tmp_path / "missing.mp4")]) == 2
    assert "Spacetime Load CLIP Vision" in capsys.readouterr().err
    assert main([*argv, "--clip-vision", "clip_h.safetensors", "--out", str(tmp_path / "i2v.mp4")]) == 0
    assert "concat" in capsys.readouterr().out and (tmp_path / "i2v.mp4").stat().st_size > 0

"""Reading DiT files: detection table, every layout and dtype round trip, wrong-file errors."""
import dataclasses
import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.checkpoint import classify_checkpoint, read_safetensors
from comfyui_spacetime.core.dit import WanDiT
from comfyui_spacetime.core.dit_config import DIT_PRESETS, METADATA_KEY, detect_dit_config, dit_metadata
from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.loaders import load_dit, load_model
from tests.tiny_dit import FORMATS, TINY_FAMILIES, save_dit, tiny_config, tiny_dit, tiny_inputs

DETECTED = {"t2v": "wan2.1-t2v-1.3b", "ti2v": "wan2.2-ti2v-5b", "i2v": "wan2.2-i2v-a14b",
            "vace": "wan2.1-vace-1.3b", "i2v-clip": "wan2.1-i2v-14b", "flf2v": "wan2.1-flf2v-14b"}
# max |out - reference| / max |reference| allowed per storage format
TOLERANCE = {"fp32": 1e-6, "diffusers": 1e-6, "prefixed": 1e-6, "bf16": 0.05, "fp16": 0.01,
             "fp8_scaled": 0.25, "fp8_plain": 0.35}


def run(model, inputs, t=None):
    x, timestep, context, clip, vace = inputs
    with torch.no_grad():
        return model(x, timestep if t is None else t, context, clip_fea=clip, vace_context=vace)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_detection_table_on_tiny_models(family):
    config = detect_dit_config(tiny_dit(family).state_dict())
    assert config.variant == DETECTED[family]
    assert dataclasses.replace(config, variant="", sampling=None) == dataclasses.replace(
        tiny_config(family), variant="", sampling=None)


@pytest.mark.parametrize("name", DIT_PRESETS)
def test_presets_detect_as_themselves_at_full_size(name):
    with torch.device("meta"):  # real shapes, no memory
        state = WanDiT(DIT_PRESETS[name]).state_dict()
    detected = detect_dit_config(state)
    # a single A14B T2V expert is structurally Wan 2.1 T2V 14B; the pair is named by load_model
    expected = "wan2.1-t2v-14b" if name == "wan2.2-t2v-a14b" else name
    assert detected == DIT_PRESETS[expected]


def test_metadata_config_names_the_packs_own_model():
    model = tiny_dit("t2v", num_heads=4, per_frame_timesteps=True)
    sampling = dataclasses.replace(DIT_PRESETS["wan2.1-t2v-1.3b"].sampling, steps=12, fps=8)
    config = dataclasses.replace(model.config, variant="spacetime-mini", sampling=sampling)
    detected = detect_dit_config(model.state_dict(), dit_metadata(config))
    assert detected == config and detected.mechanism == "per_token" and detected.head_dim == 64


def test_text_length_is_wans_512_unless_the_packs_metadata_says():
    state = tiny_dit("t2v").state_dict()
    assert detect_dit_config(state).text_len == 512  # Comfy-Org files carry no pack metadata
    config = dataclasses.replace(tiny_config("t2v"), variant="spacetime-mini", text_len=32)
    assert detect_dit_config(state, dit_metadata(config)).text_len == 32
    # spacetime-mini files from before the field: their text encoder pads prompts, the DiT takes them as given
    old = {METADATA_KEY: json.dumps({"variant": "spacetime-mini", "num_heads": 2})}
    assert detect_dit_config(state, old).text_len == 0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_round_trip_every_layout_and_dtype(tmp_path, family, fmt):
    model = tiny_dit(family)
    inputs = tiny_inputs(model)
    loaded = load_dit(save_dit(tmp_path / "dit.safetensors", model, fmt), dtype=None)
    assert loaded.config.variant == DETECTED[family]
    reference = run(model, inputs)
    error = (run(loaded, inputs) - reference).abs().max() / reference.abs().max()
    assert error <= TOLERANCE[fmt], f"{family} {fmt}: relative error {error:.3g}"


def test_fp8_scaled_weights_stay_fp8_and_are_upcast_per_layer(tmp_path):
    loaded = load_dit(save_dit(tmp_path / "dit.safetensors", tiny_dit("t2v"), "fp8_scaled"), dtype=torch.float32)
    q = loaded.blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.scale_weight.ndim == 0 and q.compute_dtype == torch.float32
    assert loaded.patch_embedding.weight.dtype == torch.float32  # conv weights are dequantized at load
    assert loaded.blocks[0].modulation.dtype == torch.float32


def test_dtype_argument_sets_storage(tmp_path):
    path = save_dit(tmp_path / "dit.safetensors", tiny_dit("t2v"), "fp32")
    bf16 = load_dit(path, dtype=torch.bfloat16)
    assert bf16.blocks[0].ffn[0].weight.dtype == torch.bfloat16
    assert bf16.time_embedding[0].weight.dtype == torch.float32  # timestep path stays float32
    fp8 = load_dit(path, dtype=torch.float8_e4m3fn)
    assert fp8.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn and fp8.blocks[0].ffn[0].scale_weight is not None
    inputs = tiny_inputs(fp8)
    reference = run(load_dit(path), inputs)
    assert (run(fp8, inputs) - reference).abs().max() / reference.abs().max() < 0.25


def test_read_safetensors_strips_prefix_keeps_fp8_and_metadata(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"model.diffusion_model.a": torch.ones(2, dtype=torch.float16),
               "model.diffusion_model.b": torch.ones(2).to(torch.float8_e4m3fn),
               "model.diffusion_model.c": torch.arange(3)}, str(path), metadata={"k": "v"})
    state, metadata = read_safetensors(path, dtype=torch.bfloat16)
    assert set(state) == {"a", "b", "c"} and metadata == {"k": "v"}
    assert state["a"].dtype == torch.bfloat16 and state["b"].dtype == torch.float8_e4m3fn
    assert torch.equal(state["c"], torch.arange(3))


def test_wrong_files_name_what_they_are(tmp_path):
    vae = tmp_path / "wan_2.1_vae.safetensors"
    save_file({"decoder.middle.0.residual.0.gamma": torch.ones(4, 1, 1, 1), "encoder.conv1.weight": torch.ones(1)},
              str(vae))
    with pytest.raises(SpacetimeError, match="Wan 2.1 VAE; connect it to Spacetime Load VAE"):
        load_dit(vae)
    te = tmp_path / "umt5.safetensors"
    save_file({"shared.weight": torch.ones(2, 2)}, str(te))
    with pytest.raises(SpacetimeError, match="text encoder; connect it to Spacetime Load Text Encoder"):
        load_dit(te)
    assert classify_checkpoint(["blocks.0.lora_A.weight"]) == "lora"
    assert classify_checkpoint(["visual.transformer.resblocks.0.attn.in_proj_weight"]) == "clip_vision"


def test_broken_files_say_download_again(tmp_path):
    good = save_dit(tmp_path / "dit.safetensors", tiny_dit("t2v"))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(SpacetimeError, match="truncated.*Download it again"):
        load_dit(truncated)
    junk = tmp_path / "model.ckpt.safetensors"
    junk.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(SpacetimeError, match="not a complete safetensors file"):
        load_dit(junk)
    with pytest.raises(SpacetimeError, match="does not exist"):
        load_dit(tmp_path / "missing.safetensors")


def test_unknown_and_missing_keys_are_listed(tmp_path):
    state = tiny_dit("t2v").state_dict()
    state["blocks.0.self_attn.extra.weight"] = torch.ones(1)
    del state["blocks.1.ffn.2.bias"]
    save_file(state, str(tmp_path / "odd.safetensors"))
    with pytest.raises(SpacetimeError, match=r"1 missing \['blocks.1.ffn.2.bias'\], 1 unknown"):
        load_dit(tmp_path / "odd.safetensors")


def test_block_swap_gives_the_same_output(tmp_path):
    path = save_dit(tmp_path / "dit.safetensors", tiny_dit("t2v"))
    swapped = load_dit(path, block_swap=1)
    inputs = tiny_inputs(swapped)
    assert swapped.block_swap == 1 and torch.equal(run(swapped, inputs), run(load_dit(path), inputs))
    with pytest.raises(SpacetimeError, match="block_swap=3"):
        load_dit(path, block_swap=3)


def test_a14b_pair_switches_experts_at_the_boundary(tmp_path):
    high = save_dit(tmp_path / "high.safetensors", tiny_dit("t2v", seed=1))
    low = save_dit(tmp_path / "low.safetensors", tiny_dit("t2v", seed=2))
    model = load_model(high, low_noise_path=low)
    assert model.config.variant == "wan2.2-t2v-a14b" and model.boundary == 0.875 and model.sampling.shift == 12.0
    assert model.expert(0.9) is model.dit and model.expert(0.5) is model.low_noise
    assert model.file_names == ("high.safetensors", "low.safetensors")
    assert model.sha256[1] == hashlib.sha256(low.read_bytes()).hexdigest()
    other = save_dit(tmp_path / "ti2v.safetensors", tiny_dit("ti2v"))
    with pytest.raises(SpacetimeError, match="the two experts differ"):
        load_model(high, low_noise_path=other)


def test_single_models_report_their_mechanism(tmp_path):
    ti2v = load_model(save_dit(tmp_path / "a.safetensors", tiny_dit("ti2v")))
    assert ti2v.mechanism == "per_token" and ti2v.boundary is None
    assert ti2v.sampling.fps == 24 and ti2v.expert(0.99) is ti2v.dit
    clip = load_model(save_dit(tmp_path / "b.safetensors", tiny_dit("i2v-clip")))
    assert clip.mechanism == "concat" and clip.config.has_image_embedding

"""LoRAs on the DiT: applied at run time, each layout equals its weights merged by hand; the model stays as it was."""
import dataclasses
import hashlib

import pytest
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.dit import WanDiT
from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.fp8 import Linear, dequantize, is_fp8
from comfyui_spacetime.core.loaders import load_model
from comfyui_spacetime.core.lora import LoraDiT
from comfyui_spacetime.sampler import TextConditioning
from comfyui_spacetime.nodes.loaders import SpacetimeLoadLoRA
from comfyui_spacetime.nodes.sampling import _request_notes
from comfyui_spacetime.nodes.video_io import Signing
from tests.tiny_dit import save_dit, tiny_dit, tiny_inputs
from tests.tiny_lora import ALPHA, LAYOUTS, RANK, lora_tensors, write_lora


def merged(model: WanDiT, parts, strength: float) -> WanDiT:
    """The reference: a copy of the model with every change added to its weights."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, found in parts.items():
        if "up" in found:
            scale = ALPHA / RANK if "alpha" in found else 1.0
            update = (found["up"] @ found["down"].flatten(1)).reshape(state[f"{name}.weight"].shape)
            state[f"{name}.weight"] += strength * scale * update
        if "diff" in found:
            state[name if name in state else f"{name}.weight"] += strength * found["diff"]
        if "diff_b" in found:
            state[f"{name}.bias"] += strength * found["diff_b"]
    copy = WanDiT(model.config).eval()
    copy.load_state_dict(state)
    return copy


def run(dit, inputs):
    x, timestep, context, _, _ = inputs
    with torch.no_grad():
        return dit(x, timestep, context)


@pytest.fixture
def base(tmp_path):
    dit = tiny_dit()
    return dit, load_model(save_dit(tmp_path / "dit.safetensors", dit)), lora_tensors(dit)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("strength", [1.0, -0.5])
def test_a_lora_applied_at_run_time_equals_its_weights_merged(tmp_path, base, layout, strength):
    dit, model, parts = base
    with_lora = model.with_lora(write_lora(tmp_path / "l.safetensors", parts, layout), strength)
    inputs = tiny_inputs(dit)
    out = run(with_lora.expert(0.5), inputs)
    reference = run(merged(dit, parts, strength), inputs)
    assert (out - reference).abs().max() <= 1e-4 * reference.abs().max()
    assert (out - run(dit, inputs)).abs().max() > 1e-2 * reference.abs().max()  # the LoRA does change the output


def test_the_loaders_model_is_unchanged_and_strength_zero_changes_nothing(tmp_path, base):
    dit, model, parts = base
    inputs = tiny_inputs(dit)
    before = {k: v.clone() for k, v in model.dit.state_dict().items()}
    plain = run(model.expert(0.5), inputs)
    path = write_lora(tmp_path / "l.safetensors", parts)
    run(model.with_lora(path, 1.0).expert(0.5), inputs)
    assert model.loras == () and not isinstance(model.expert(0.5), LoraDiT)
    assert all(torch.equal(before[k], v) for k, v in model.dit.state_dict().items())
    assert not any(m._forward_hooks for m in model.dit.modules())
    assert torch.equal(run(model.expert(0.5), inputs), plain)
    assert (run(model.with_lora(path, 0.0).expert(0.5), inputs) - plain).abs().max() <= 1e-6


def test_two_loras_stack(tmp_path, base):
    dit, model, parts = base
    other = lora_tensors(dit, seed=9)
    stacked = model.with_lora(write_lora(tmp_path / "a.safetensors", parts), 0.7)
    stacked = stacked.with_lora(write_lora(tmp_path / "b.safetensors", other, "kohya"), 0.4)
    inputs = tiny_inputs(dit)
    reference = run(merged(merged(dit, parts, 0.7), other, 0.4), inputs)
    assert (run(stacked.expert(0.5), inputs) - reference).abs().max() <= 1e-4 * reference.abs().max()
    assert [(lora.name, strength) for lora, strength, _ in stacked.loras] == [("a.safetensors", 0.7),
                                                                            ("b.safetensors", 0.4)]


def test_fp8_weights_stay_fp8_under_a_low_rank_lora(tmp_path):
    dit = tiny_dit()
    model = load_model(save_dit(tmp_path / "dit.safetensors", dit, "fp8_scaled"))
    parts = {name: found for name, found in lora_tensors(dit).items() if "up" in found and name != "patch_embedding"}
    with_lora = model.with_lora(write_lora(tmp_path / "l.safetensors", parts), 1.0)
    inputs = tiny_inputs(dit)
    reference = run(merged(dequantized(model.dit), parts, 1.0), inputs)  # the fp8 model's own weights, merged
    assert (run(with_lora.expert(0.5), inputs) - reference).abs().max() <= 2e-2 * reference.abs().max()
    assert model.dit.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn


def dequantized(model: WanDiT) -> WanDiT:
    state = {k: v.float() for k, v in model.state_dict().items() if not k.endswith("scale_weight")}
    for name, module in model.named_modules():
        if isinstance(module, Linear) and is_fp8(module.weight):
            state[f"{name}.weight"] = dequantize(module.weight, module.scale_weight, torch.float32)
    copy = WanDiT(model.config).eval()
    copy.load_state_dict(state)
    return copy


def test_a14b_loras_go_to_the_expert_they_name(tmp_path):
    high, low = tiny_dit(seed=0), tiny_dit(seed=1)
    model = load_model(save_dit(tmp_path / "high.safetensors", high), save_dit(tmp_path / "low.safetensors", low))
    model = dataclasses.replace(model, config=dataclasses.replace(
        model.config, sampling=dataclasses.replace(model.config.sampling, boundary=0.875)))
    path = write_lora(tmp_path / "l.safetensors", lora_tensors(high))
    low_only = model.with_lora(path, 1.0, "low_noise")
    assert low_only.expert(0.95) is model.dit
    assert isinstance(low_only.expert(0.5), LoraDiT) and low_only.expert(0.5).dit is model.low_noise
    with pytest.raises(SpacetimeError, match="choose both"):
        load_model(tmp_path / "high.safetensors").with_lora(path, 1.0, "high_noise")


@pytest.mark.parametrize("keys, message", [
    ({"blocks.0.self_attn.q.lora_up.weight": torch.zeros(512, 4), "blocks.0.self_attn.q.lora_down.weight":
      torch.zeros(4, 512)}, "another Wan model"),
    ({"double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(4, 8), "double_blocks.0.img_attn.qkv.lora_B.weight":
      torch.zeros(8, 4)}, "does not fit this wan2.1-t2v-1.3b model: 1 of the 1 layers"),
    ({"blocks.0.self_attn.q.lokr_w1": torch.zeros(4, 4)}, "LyCORIS"),
    ({"blocks.0.self_attn.q.lora_up.weight": torch.zeros(256, 4)}, "one half of its low-rank pair"),
])
def test_a_lora_that_does_not_fit_is_refused_with_the_reason(tmp_path, base, keys, message):
    _, model, _ = base
    save_file(keys, str(tmp_path / "bad.safetensors"))
    with pytest.raises(SpacetimeError, match=message):
        model.with_lora(tmp_path / "bad.safetensors")


def test_layers_the_model_lacks_are_skipped_and_named_in_the_samplers_info(tmp_path, base):
    """A Wan 2.1 I2V LoRA also changes the image cross-attention, which T2V models and Wan 2.2's experts lack."""
    dit, model, parts = base
    extra = {"blocks.0.cross_attn.k_img": {"up": torch.zeros(256, RANK), "down": torch.zeros(RANK, 1280)}}
    with_lora = model.with_lora(write_lora(tmp_path / "i2v_style.safetensors", parts | extra), 0.5)
    inputs = tiny_inputs(dit)
    reference = run(merged(dit, parts, 0.5), inputs)
    assert (run(with_lora.expert(0.5), inputs) - reference).abs().max() <= 1e-4 * reference.abs().max()
    [note] = _request_notes(with_lora, TextConditioning([(0.0, torch.zeros(1, 3, 64), "a fox")]), torch.zeros(1))
    assert note.startswith("LoRA i2v_style.safetensors: 5 low-rank layers") and "at strength 0.5" in note
    assert "1 layers this model does not have skipped (blocks.0.cross_attn.k_img" in note


def test_a_model_file_in_the_lora_loader_is_named(tmp_path, base):
    dit, model, _ = base
    with pytest.raises(SpacetimeError, match="a Wan diffusion model.*not a LoRA"):
        model.with_lora(save_dit(tmp_path / "another_dit.safetensors", dit))


def test_the_c2pa_signing_names_the_loras_and_their_hashes(tmp_path, base):
    dit, model, parts = base
    path = write_lora(tmp_path / "style.safetensors", parts)
    signing = Signing.for_model(model.with_lora(path, 0.6), prompt="a fox")
    assert signing.loras == (("style.safetensors", hashlib.sha256(path.read_bytes()).hexdigest(), 0.6),)
    assert signing.prompt == "a fox" and Signing.for_model(model).loras == ()


def test_the_node_lists_the_loras_folder_and_applies_the_file(pack_dirs, base):
    dit, model, parts = base
    write_lora(pack_dirs.models / "loras" / "style.safetensors", parts)
    assert SpacetimeLoadLoRA.INPUT_TYPES()["required"]["lora_name"][0] == ["style.safetensors"]
    (patched,) = SpacetimeLoadLoRA().load(model, "style.safetensors", 0.8, "both")
    assert patched.loras[0][1:] == (0.8, "both") and model.loras == ()

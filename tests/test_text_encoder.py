"""UMT5 text encoder: bucket maths, tokenizer, padding/masking, file round trips, errors."""
import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core import load_text_encoder
from comfyui_spacetime.core.dit_config import DIT_PRESETS
from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.text_encoder import (
    TEXT_ENCODER_PRESETS, UMT5Encoder, check_text_width, detect_text_encoder_config, fp16_clamp,
    relative_position_bucket,
)
from comfyui_spacetime.core.tokenizer import EOS_ID, PAD_ID, UNK_ID, Tokenizer, clean_prompt

from tests.tiny_te import quantize_fp8_scaled, random_state_dict, spiece_model, tiny_config, write_te

# ----------------------------------------------------------------------------------------------------- maths


@pytest.mark.parametrize("relative, bucket", [
    (0, 0), (-1, 1), (-7, 7), (-8, 8), (-12, 9), (-127, 15), (-128, 15), (-1000, 15),
    (1, 17), (7, 23), (8, 24), (12, 25), (127, 31), (5000, 31),
])
def test_relative_position_bucket_matches_hand_computed_t5_buckets(relative, bucket):
    # 32 buckets, max distance 128: 16 per direction, 8 exact, then 8 + floor(log(d/8)/log(16) * 8)
    assert relative_position_bucket(torch.tensor([relative])).item() == bucket


def naive_umt5(state, config, input_ids, attention_mask):
    """Textbook restatement of Wan's wan/modules/t5.py encoder (explicit einsum attention, fp32 softmax)."""
    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + config.eps))

    B, L = input_ids.shape
    position = torch.arange(L)
    buckets = relative_position_bucket(position[None, :] - position[:, None])  # (L, L)
    x = state["shared.weight"][input_ids]
    for i in range(config.num_layers):
        p = f"encoder.block.{i}.layer."
        h = norm(x, state[p + "0.layer_norm.weight"])
        q, k, v = (torch.einsum("bld,ed->ble", h, state[p + f"0.SelfAttention.{n}.weight"])
                   .view(B, L, config.num_heads, config.d_kv) for n in "qkv")
        logits = torch.einsum("binc,bjnc->bnij", q, k)
        logits = logits + state[p + "0.SelfAttention.relative_attention_bias.weight"][buckets].permute(2, 0, 1)
        logits = logits.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))
        attn = torch.einsum("bnij,bjnc->binc", logits.softmax(-1), v).reshape(B, L, -1)
        x = x + attn @ state[p + "0.SelfAttention.o.weight"].T
        h = norm(x, state[p + "1.layer_norm.weight"])
        gate = torch.nn.functional.gelu(h @ state[p + "1.DenseReluDense.wi_0.weight"].T, approximate="tanh")
        x = x + (gate * (h @ state[p + "1.DenseReluDense.wi_1.weight"].T)) @ state[p + "1.DenseReluDense.wo.weight"].T
    return norm(x, state["encoder.final_layer_norm.weight"]) * attention_mask[..., None]


def test_encoder_matches_naive_restatement_of_reference():
    config = tiny_config()
    state = random_state_dict(config)
    model = UMT5Encoder(config)
    model.load_state_dict(state)
    input_ids = torch.randint(3, config.vocab_size, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[0, 11:] = 0
    expected = naive_umt5(state, config, input_ids, mask)
    assert (model(input_ids, mask) - expected).abs().max().item() <= 1e-5


def test_fp16_clamp_removes_infinities_only_in_fp16():
    x = torch.tensor([1.0, float("inf"), -float("inf")])
    assert torch.isfinite(fp16_clamp(x.half())).all()
    assert fp16_clamp(x.half())[1] == torch.tensor(torch.finfo(torch.float16).max - 1000).half()
    assert torch.isinf(fp16_clamp(x)).sum() == 2


# ----------------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_appends_eos_pads_with_zero_and_has_no_bos():
    tokenizer = Tokenizer(spiece_model())
    input_ids, mask = tokenizer(["a red ball", "the camera pans slowly over a calm blue sea"], min_length=32)
    assert input_ids.shape == mask.shape == (2, 32)
    lengths = mask.sum(1).tolist()
    for row, n in zip(input_ids.tolist(), lengths):
        assert row[n - 1] == EOS_ID and EOS_ID not in row[: n - 1]
        assert all(t == PAD_ID for t in row[n:]) and PAD_ID not in row[:n]
    assert tokenizer.processor.decode(input_ids[0, : lengths[0] - 1].tolist()) == "a red ball"


def test_a_trained_tokenizer_folds_case():
    tokenizer = Tokenizer(spiece_model())
    ids = tokenizer.ids("A Red BALL")
    assert ids == tokenizer.ids("a red ball") and UNK_ID not in ids


def test_prompt_cleaning_unescapes_html_and_collapses_whitespace_without_lowercasing():
    assert clean_prompt("  A red&amp;amp;blue\n\tball  ") == "A red&blue ball"


def test_tokenizer_rejects_a_model_with_other_special_ids():
    import io

    import sentencepiece
    from tests.tiny_te import SENTENCES

    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 4), model_writer=writer,
                                             vocab_size=40, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(SpacetimeError, match="pad/eos/bos"):
        Tokenizer(writer.getvalue())


# ----------------------------------------------------------------------------------------------------- padding


@pytest.fixture
def te_file(tmp_path):
    config = tiny_config()
    return write_te(tmp_path / "umt5_tiny.safetensors", config, random_state_dict(config))


def test_encode_pads_to_min_length_and_zeroes_pad_rows(te_file):
    te = load_text_encoder(te_file)
    out = te.encode(["a red ball", "rain falls on a quiet street at night"])
    _, mask = te.tokenize(["a red ball", "rain falls on a quiet street at night"])
    assert out.shape == (2, te.config.min_length, te.config.d_model)
    assert (out[mask == 0] == 0).all() and (out[mask == 1].abs().sum(-1) > 0).all()


def test_extra_padding_does_not_change_the_embedding_of_real_tokens(te_file):
    te = load_text_encoder(te_file)
    input_ids, mask = te.tokenize(["a bird flies from left to right"])
    n = int(mask.sum())
    longer_ids = torch.nn.functional.pad(input_ids, (0, 40))
    longer_mask = torch.nn.functional.pad(mask, (0, 40))
    with torch.no_grad():  # the model itself: encode_ids trims the padding, which this property makes exact
        short, long = te.model(input_ids, mask), te.model(longer_ids, longer_mask)
    assert (short[:, :n] - long[:, :n]).abs().max().item() <= 1e-5


def test_encode_runs_only_the_real_tokens_and_equals_the_whole_padded_pass(te_file):
    te = load_text_encoder(te_file)
    prompts = ["a red ball", "rain falls on a quiet street at night"]
    input_ids, mask = te.tokenize(prompts)
    seen = []
    hook = te.model.shared.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    trimmed = te.encode(prompts)
    hook.remove()
    with torch.no_grad():
        whole = te.model(input_ids, mask)
    assert seen == [int(mask.sum(1).max())] < [mask.shape[1]]
    assert trimmed.shape == whole.shape and (trimmed - whole).abs().max().item() <= 1e-5


def test_long_prompt_is_not_truncated(te_file):
    te = load_text_encoder(te_file)
    prompt = " ".join(["a red ball bounces across a green floor"] * 8)
    _, mask = te.tokenize([prompt])
    n = int(mask.sum())
    assert n > te.config.min_length
    out = te.encode([prompt])
    assert out.shape[1] == n and (out[0].abs().sum(-1) > 0).all()


# ----------------------------------------------------------------------------------------------------- files


def reference_output(state, config, input_ids, mask):
    model = UMT5Encoder(config)
    model.load_state_dict(state)
    with torch.no_grad():
        return model(input_ids, mask)


@pytest.mark.parametrize("file_dtype, load_dtype, tolerance", [
    (torch.float32, torch.float32, 1e-5),  # not 0: encode attends over the real tokens only, in other kernel blocks
    (torch.float16, torch.float32, 1e-5),
    (torch.float16, torch.float16, 5e-2),
    (torch.bfloat16, torch.bfloat16, 0.1),
])
def test_round_trip_in_each_dtype(tmp_path, file_dtype, load_dtype, tolerance):
    config = tiny_config()
    state = random_state_dict(config)
    te = load_text_encoder(write_te(tmp_path / "te.safetensors", config, state, dtype=file_dtype), dtype=load_dtype)
    assert te.config == config
    input_ids, mask = te.tokenize(["two white squares drift apart"])
    out = te.encode_ids(input_ids, mask)
    assert out.dtype == load_dtype
    as_stored = {k: v.to(file_dtype).float() for k, v in state.items()}  # the fp32 model of the file's values
    assert (out.float() - reference_output(as_stored, config, input_ids, mask)).abs().max().item() <= tolerance


@pytest.mark.parametrize("fp8_embedding", [False, True])
def test_fp8_scaled_keeps_fp8_weights_and_equals_the_dequantized_model(tmp_path, fp8_embedding):
    config = tiny_config()
    state = random_state_dict(config)
    path = write_te(tmp_path / "te_fp8.safetensors", config, state, fp8_scaled=True, fp8_embedding=fp8_embedding)
    te = load_text_encoder(path)
    q = te.model.encoder.block[0].layer[0].SelfAttention.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.scale_weight.dtype == torch.float32
    assert (te.model.shared.weight.dtype == torch.float8_e4m3fn) == fp8_embedding
    dequantized = {k: v for k, v in quantize_fp8_scaled(state, fp8_embedding).items() if k != "scaled_fp8"}
    for key in [k for k in dequantized if k.endswith(".scale_weight")]:
        weight = key.removesuffix("scale_weight") + "weight"
        dequantized[weight] = dequantized[weight].float() * dequantized.pop(key)
    input_ids, mask = te.tokenize(["a small yellow circle grows"])
    out = te.encode_ids(input_ids, mask)
    assert (out - reference_output(dequantized, config, input_ids, mask)).abs().max().item() <= 1e-5
    full = reference_output(state, config, input_ids, mask)
    assert (out - full).norm() / full.norm() < 0.25  # fp8 rounding compounds over layers; a lost scale gives ~1


def test_detection_reads_shapes_and_metadata():
    config = tiny_config(min_length=24)
    state = random_state_dict(config)
    assert detect_text_encoder_config(state, {"spacetime_config": '{"min_length": 24}'}) == config
    assert detect_text_encoder_config(state).min_length == 512
    assert TEXT_ENCODER_PRESETS["umt5-xxl"].d_model == 4096 and TEXT_ENCODER_PRESETS["umt5-xxl"].num_layers == 24


def test_prefixed_keys_are_stripped(tmp_path):
    config = tiny_config()
    state = {f"umt5xxl.transformer.{k}": v for k, v in random_state_dict(config).items()}
    te = load_text_encoder(write_te(tmp_path / "prefixed.safetensors", config, state))
    assert te.config == config


# ----------------------------------------------------------------------------------------------------- errors


def test_file_without_spiece_loads_and_asks_for_a_tokenizer(tmp_path):
    config = tiny_config()
    path = write_te(tmp_path / "bare.safetensors", config, random_state_dict(config), with_spiece=False)
    te = load_text_encoder(path)
    with pytest.raises(SpacetimeError, match="tokenizer_path="):
        te.encode(["a red ball"])
    spiece_file = tmp_path / "spiece.model"
    spiece_file.write_bytes(spiece_model())
    assert load_text_encoder(path, tokenizer_path=spiece_file).encode(["a red ball"]).shape[1] == config.min_length
    assert load_text_encoder(path, tokenizer_path=write_te(tmp_path / "other.safetensors", config,
                                                           random_state_dict(config))).tokenizer is not None
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(SpacetimeError, match="spiece.model"):
        load_text_encoder(path, tokenizer_path=tmp_path / "tokenizer.json")


@pytest.mark.parametrize("keys, named", [
    (["head.modulation", "patch_embedding.weight"], "load_dit"),
    (["model.diffusion_model.head.modulation"], "load_dit"),
    (["decoder.middle.0.residual.0.gamma"], "load_vae"),
])
def test_wrong_file_kind_names_the_right_loader(tmp_path, keys, named):
    path = tmp_path / "other.safetensors"
    save_file({k: torch.zeros(2) for k in keys}, str(path))
    with pytest.raises(SpacetimeError, match=named):
        load_text_encoder(path)


def test_truncated_file_and_unknown_keys_are_reported(tmp_path, te_file):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(te_file.read_bytes()[:200])
    with pytest.raises(SpacetimeError, match="download it again"):
        load_text_encoder(truncated)
    config = tiny_config()
    state = random_state_dict(config) | {"encoder.block.0.layer.0.SelfAttention.extra.weight": torch.zeros(2)}
    with pytest.raises(SpacetimeError, match="unknown keys"):
        load_text_encoder(write_te(tmp_path / "extra.safetensors", config, state))


def test_mismatched_text_width_is_named():
    wan = DIT_PRESETS["wan2.1-t2v-1.3b"]
    check_text_width(TEXT_ENCODER_PRESETS["umt5-xxl"], wan)
    with pytest.raises(SpacetimeError, match="4096-wide embeddings but this DiT expects 64"):
        check_text_width(TEXT_ENCODER_PRESETS["umt5-xxl"], dataclasses.replace(wan, text_dim=64))

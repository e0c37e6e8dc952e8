"""The text encoder's pre-training: labels say what the caption says, and the probes learn to read them."""
import numpy as np
import torch

from comfyui_spacetime.core.text_encoder import TextEncoderConfig, UMT5Encoder
from comfyui_spacetime.core.tokenizer import Tokenizer, train_spiece_model
from comfyui_spacetime.embedded.text_pretrain import (ATTRIBUTES, NONE, AttributeProbes, caption_batch, probe_loss,
                                                      scene_labels)
from comfyui_spacetime.embedded.world import WorldConfig, captions, sample_scene, words_of


def _named(labels: dict[str, int]) -> dict[str, str]:
    return {name: ATTRIBUTES[name][index] for name, index in labels.items()}


def test_labels_name_what_the_caption_states():
    rng = np.random.default_rng(3)
    for _ in range(200):
        scene = sample_scene(rng, WorldConfig(long_fraction=0.0))
        named, words = _named(scene_labels(scene)), words_of(scene.caption)
        assert named["colour"] in words and named["background_colour"] in words
        assert (named["second_colour"] == NONE) == (len(scene.objects) == 1)
        assert (named["relation"] == NONE) == (scene.relation is None)
        if named["relation"] != NONE:
            assert named["relation"].split()[0] in words
        if named["background_kind"] == "solid":
            assert named["background_colour_2"] == NONE


def test_probes_learn_to_read_captions_from_the_encoder():
    torch.manual_seed(0)
    tokenizer = Tokenizer(train_spiece_model(captions(1, 3000), 300))
    config = TextEncoderConfig(vocab_size=300, d_model=64, d_ff=128, num_heads=4, d_kv=16, num_layers=2, min_length=32)
    text, probes = UMT5Encoder(config), AttributeProbes(config.d_model)
    params = list(text.parameters()) + list(probes.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3)
    held_out = caption_batch(np.random.default_rng(99), tokenizer, 256, config.min_length)
    with torch.no_grad():
        before, _ = probe_loss(text, probes, *held_out)
    rng = np.random.default_rng(1)
    for _ in range(60):
        loss, _ = probe_loss(text, probes, *caption_batch(rng, tokenizer, 64, config.min_length))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after, _ = probe_loss(text, probes, *held_out)
    assert after < 0.5 * before, (before.item(), after.item())

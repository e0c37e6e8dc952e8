"""`spacetime train-embedded` at a tiny scale: every stage runs, the files load through the real loaders, a finished
run resumes to the same bytes, and the CLI refuses to mix a fresh run into an old work directory."""
import dataclasses
import json
from datetime import datetime

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from comfyui_spacetime.cli import main
from comfyui_spacetime.core.loaders import load_model
from comfyui_spacetime.core.text_encoder import load_text_encoder
from comfyui_spacetime.embedded import train
from comfyui_spacetime.embedded.train import (Phase, TrainConfig, VAEPhase, drill_clips, make_drills,
                                              make_layout_drills, mid_clip_start, noise_levels, object_weight, phase_at,
                                              phase_lr, train_embedded, vae_loss)
from comfyui_spacetime.vae import load_vae

TINY = dataclasses.replace(TrainConfig(), caption_corpus=2000, dataset_clips=6, chain_clips=3,
                           vae_phases=(VAEPhase(steps=2, batch=4, clip_frames=5, lr=1e-3, warmup=100),
                                       VAEPhase(steps=1, batch=2, clip_frames=17, lr=3e-4, warmup=50),
                                       VAEPhase(steps=1, batch=2, clip_frames=17, lr=5e-4, warmup=50,
                                                decoder_only=True),
                                       VAEPhase(steps=1, batch=1, clip_frames=33, lr=3e-4, warmup=50,
                                                decoder_only=True),
                                       VAEPhase(steps=1, batch=1, clip_frames=33, lr=3e-4, warmup=50,
                                                decoder_only=True, mid_clip_share=1.0)),
                           vae_refine=(VAEPhase(steps=1, batch=1, clip_frames=17, lr=3e-4, warmup=30),),
                           encode_batch=3, text_steps=2,
                           dit_phases=(Phase(steps=2, lr=8e-4, warmup=200), Phase(steps=1, lr=4e-4, warmup=100)),
                           dit_refine=Phase(steps=1, lr=2e-4, warmup=50), dit_layout=Phase(steps=1, lr=2e-4, warmup=50),
                           dit_pair_layout=Phase(steps=1, lr=1e-4, warmup=50))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    paths = train_embedded(root / "models", root / "work", TINY)
    return root, paths


def test_every_stage_logs_and_the_files_load(trained):
    root, paths = trained
    records = [json.loads(line) for line in (root / "work" / "losses.jsonl").read_text().splitlines()]
    assert {"text", "vae", "vae-refined", "dit", "dit-refined", "dit-layout", "dit-pairs",
                                                                            "done"} <= {r["stage"] for r in records}
    written = [datetime.fromisoformat(r["at"]) for r in records]  # what the stage times are read from
    assert written == sorted(written) and all(at.tzinfo is not None for at in written)
    model = load_model(paths["dit"])
    assert model.config.variant == "spacetime-mini" and model.config.per_frame_timesteps
    vae = load_vae(paths["vae"])
    assert vae.config.compression == (4, 8, 8) and len(vae.config.latent_mean) == 16
    text = load_text_encoder(paths["text_encoder"])
    assert text.caption_language == "spacetime-mini"  # so Text Encode recaptions prompts for it
    context = text.encode(["a red circle moving left on a blue background"])
    assert context.shape[-1] == model.config.text_dim and torch.isfinite(context).all()


def test_a_finished_run_resumes_to_the_same_weights(trained, tmp_path):
    """Resuming trains nothing again; only the preview's least-squares colour fit may differ by float rounding."""
    root, paths = trained
    again = train_embedded(tmp_path, root / "work", TINY)
    for name, path in paths.items():
        first, second = load_file(path), load_file(again[name])
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), name
    first, second = (json.loads(safe_open(p, "pt").metadata()["spacetime_config"]) for p in (paths["vae"], again["vae"]))
    assert np.allclose(first.pop("latent_rgb_factors"), second.pop("latent_rgb_factors"), atol=1e-5)
    assert np.allclose(first.pop("latent_rgb_factors_bias"), second.pop("latent_rgb_factors_bias"), atol=1e-5)
    assert first == second


def test_the_shipped_vae_is_the_refined_one_and_the_first_latents_are_the_unrefined_ones(trained):
    """Stage 6 trains a copy of the VAE, encoder too; the DiT's first phases learn from the first VAE's latents."""
    root, paths = trained
    work = train.WorkDir(root / "work")
    first, refined = work.load("vae")["model"], work.load("vae-refined")["model"]
    shipped = load_file(paths["vae"])
    encoder = [k for k in first if k.startswith("encoder.")]
    assert any(not torch.equal(first[k], refined[k]) for k in encoder)
    assert all(torch.equal(shipped[k], refined[k].half()) for k in encoder)
    latents, refined_latents = work.load("latents"), work.load("latents-refined")
    size = next(iter(latents))
    assert latents[size]["captions"] == refined_latents[size]["captions"]
    assert not torch.equal(latents[size]["latents"], refined_latents[size]["latents"])


@pytest.mark.parametrize("stage_loss", ["vae_loss", "flow_matching_loss"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(trained, tmp_path, monkeypatch, stage_loss):
    """Ctrl-C in the middle of a phase, then resume: the same batches and noise, so the same files."""
    _, paths = trained
    monkeypatch.setattr(train, "CHECKPOINT_EVERY", 1)
    real_loss, calls = getattr(train, stage_loss), []

    def interrupted_after_one_step(*args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train, stage_loss, interrupted_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        train_embedded(tmp_path / "models", tmp_path / "work", TINY)
    monkeypatch.setattr(train, stage_loss, real_loss)
    resumed = train_embedded(tmp_path / "models", tmp_path / "work", TINY)
    for name, path in paths.items():
        first, second = load_file(path), load_file(resumed[name])
        assert all(torch.equal(first[k], second[k]) for k in first), name


def test_cli_refuses_a_used_work_dir_without_resume(trained, tmp_path, capsys):
    root, _ = trained
    assert main(["train-embedded", "--out", str(tmp_path), "--work-dir", str(root / "work")]) != 0
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_object_weight_marks_what_stands_out_from_the_clip_background():
    clip = torch.zeros(2, 4, 3, 4, 4)  # (B, C, T, H, W): a flat background
    clip[0, :, 1, 2, 2] = 2.0  # an object in every channel
    clip[1, 0, 2, 0, 0] = 2.0  # one channel off: far by the largest channel, not by the mean
    any_channel = object_weight(clip, 4.0, threshold=1.0)
    mean_channel = object_weight(clip, 4.0, threshold=1.0, channel_reduce=torch.mean)
    assert any_channel.shape == (2, 1, 3, 4, 4)
    assert any_channel[0, 0, 1, 2, 2] == 5.0 and any_channel[1, 0, 2, 0, 0] == 5.0
    assert mean_channel[0, 0, 1, 2, 2] == 5.0 and mean_channel[1, 0, 2, 0, 0] == 1.0
    assert any_channel.sum() == 2 * 48 + 2 * 4.0 and mean_channel.sum() == 2 * 48 + 4.0


def test_phases_run_one_after_another_each_with_its_own_warm_up_and_decay():
    phases = (Phase(steps=10, lr=1.0, warmup=2), Phase(steps=5, lr=0.5, warmup=1))
    assert phase_at(phases, 0) == (phases[0], 0) and phase_at(phases, 9) == (phases[0], 0)
    assert phase_at(phases, 10) == (phases[1], 10) and phase_at(phases, 14) == (phases[1], 10)
    assert [phase_lr(phases, step) for step in (0, 1, 10)] == [0.5, 1.0, 0.5]  # warm-up, peak, restart at the new peak
    assert phase_lr(phases, 9) < phase_lr(phases, 2) and phase_lr(phases, 14) < phase_lr(phases, 12) < 0.5  # decay
    with pytest.raises(ValueError, match="past the last phase"):
        phase_at(phases, 15)


def test_a_decoder_only_phase_leaves_the_encoder_and_so_the_latents_alone(tmp_path):
    both = dataclasses.replace(TINY, vae_phases=TINY.vae_phases[:2])
    work = train.WorkDir(tmp_path)
    before = {k: v.clone() for k, v in train.train_vae(both, work).state_dict().items()}
    after = train.train_vae(TINY, work).state_dict()  # resumes into the decoder-only phase
    encoding = [k for k in before if k.startswith(("encoder.", "conv1."))]
    decoding = [k for k in before if k.startswith(("decoder.", "conv2."))]
    assert encoding and all(torch.equal(before[k], after[k]) for k in encoding)
    assert any(not torch.equal(before[k], after[k]) for k in decoding)


def test_vae_batches_are_crops_of_clips_as_long_as_the_phase_asks():
    rng = np.random.default_rng(1)
    shapes = {tuple(train.vae_batch(rng, TINY, 33, 2).shape) for _ in range(8)}
    assert (2, 3, 33, 32, 32) in shapes and shapes <= {(2, 3, 33, 32, 32), (4, 3, 1, 32, 32)}


def test_noise_levels_are_one_per_clip_unless_drawn_per_frame():
    def levels(fraction: float) -> torch.Tensor:  # [24, 5] from the same draws for every fraction
        config = dataclasses.replace(TrainConfig(), frame_noise_fraction=fraction)
        return noise_levels(np.random.default_rng(0), config, config.dit_batch, frames=5)

    shared = levels(0.0)
    assert shared.shape == (24, 5) and torch.all(shared == shared[:, :1]) and 0 < shared.min() < shared.max() < 1
    assert torch.all(levels(1.0).std(dim=1) > 0)  # each clip's frames at levels of their own
    per_frame = (levels(0.5).std(dim=1) > 0).float().mean()
    assert 0.2 < per_frame < 0.8
    # without per-frame levels the draws are the ones a single level per clip always took
    expected = torch.sigmoid(torch.from_numpy(np.random.default_rng(0).normal(0.5, 1.0, 24)).float())
    assert torch.equal(shared[:, 0], expected)


def test_drills_are_straight_movers_with_a_given_start_at_high_noise():
    rng, config = np.random.default_rng(0), TrainConfig()
    moves_straight = torch.tensor([False, True, False, True, True])
    clips = drill_clips(rng, moves_straight, 50)
    assert len(clips) == 50 and set(clips) == {1, 3, 4}
    assert set(drill_clips(rng, torch.zeros(3, dtype=torch.bool), 50)) == {0, 1, 2}  # no movers: any clip
    known, sigma = torch.zeros(200, 5, dtype=torch.bool), torch.zeros(200, 5)
    make_drills(rng, config, known, sigma)
    given = known.sum(dim=1)
    assert given.min() == 1 and given.max() == 4 and torch.all(known[:, 0])  # a prefix, never the whole clip
    assert torch.equal(known, torch.arange(5) < given[:, None])
    assert torch.all(sigma == sigma[:, :1]) and sigma.median() > 0.75  # one level per clip, mostly high


def test_layout_drills_give_nothing_and_sit_at_a_noise_level_where_the_prompt_draws_the_layout():
    rng, config = np.random.default_rng(0), TrainConfig()
    known, sigma = torch.ones(200, 5, dtype=torch.bool), torch.zeros(200, 5)
    make_layout_drills(rng, config, known[50:], sigma[50:])  # a slice of the batch, changed in place
    assert torch.all(known[:50]) and not known[50:].any() and torch.all(sigma[:50] == 0)
    assert torch.all(sigma[50:] == sigma[50:, :1]) and 0.85 < sigma[50:].median() < 0.9  # sigmoid(2.0) = 0.88


def test_the_layout_stage_adds_its_drills_to_the_recipes_batch(trained, monkeypatch):
    """The layout stage trains on batches of `dit_batch` + `dit_layout_drills` + `dit_chain_drills` clips, the drills
    after the recipe's, the chain drills last with their first one or two latent frames given."""
    root, _ = trained
    work = train.WorkDir(root / "work")
    dataset, long, batches = work.load("latents-refined"), work.load("latents-long"), []
    real_loss = train.flow_matching_loss

    def recording(dit, x0, context, known, sigma, weight, noise=None):
        batches.append(known.clone())
        return real_loss(dit, x0, context, known, sigma, weight, noise)

    monkeypatch.setattr(train, "flow_matching_loss", recording)
    dit = train.WanDiT(train.dit_config(TINY)).init_weights()
    tokenizer = train.Tokenizer(train.train_tokenizer(TINY, work))  # finished stages: loaded, not trained
    text = train.train_text_encoder(TINY, tokenizer, work)
    train.layout_dit(TINY, dit, dataset, long, train.latent_statistics(dataset), text, tokenizer,
                     train.WorkDir(root / "l"))
    drills = round(TINY.dit_drill_share * TINY.dit_batch)
    (known,) = batches
    assert known.shape[0] == TINY.dit_batch + TINY.dit_layout_drills + TINY.dit_chain_drills
    assert not known[drills:drills + TINY.dit_layout_drills].any()
    chain = known[-TINY.dit_chain_drills:]
    assert chain[:, 0].all() and not chain[:, 2:].any()


def test_the_pair_stage_adds_two_object_clips_to_the_layout_drills(trained, monkeypatch):
    """Stage 8's batches: the layout stage's, with `dit_pair_drills` two-object clips after the straight movers'
    layout drills, nothing given."""
    root, _ = trained
    work = train.WorkDir(root / "work")
    dataset, long = work.load("latents-refined"), work.load("latents-long")
    for bucket in dataset.values():  # one known pair per size, whatever the tiny dataset drew
        bucket["two_objects"] = torch.arange(len(bucket["captions"])) == 1
    drawn, batches = [], []
    real_drills, real_loss = train.drill_clips, train.flow_matching_loss
    pair_flags = [bucket["two_objects"] for bucket in dataset.values()]

    def recording_pairs(rng, eligible, count):
        clips = real_drills(rng, eligible, count)
        if any(eligible is flags for flags in pair_flags):
            drawn.append(clips)
        return clips

    def recording_loss(dit, x0, context, known, sigma, weight, noise=None):
        batches.append(known.clone())
        return real_loss(dit, x0, context, known, sigma, weight, noise)

    monkeypatch.setattr(train, "drill_clips", recording_pairs)
    monkeypatch.setattr(train, "flow_matching_loss", recording_loss)
    dit = train.WanDiT(train.dit_config(TINY)).init_weights()
    tokenizer = train.Tokenizer(train.train_tokenizer(TINY, work))
    text = train.train_text_encoder(TINY, tokenizer, work)
    train.pair_layout_dit(TINY, dit, dataset, long, train.latent_statistics(dataset), text, tokenizer,
                          train.WorkDir(root / "p"))
    (pairs,), (known,) = drawn, batches
    assert pairs.tolist() == [1] * TINY.dit_pair_drills
    assert known.shape[0] == TINY.dit_batch + TINY.dit_layout_drills + TINY.dit_pair_drills + TINY.dit_chain_drills
    drills = round(TINY.dit_drill_share * TINY.dit_batch)
    assert not known[drills:drills + TINY.dit_layout_drills + TINY.dit_pair_drills].any()


def test_every_dataset_clip_says_whether_it_holds_two_objects(trained):
    root, _ = trained
    for bucket in train.WorkDir(root / "work").load("latents").values():
        assert bucket["two_objects"].tolist() == [" left of " in c or " right of " in c for c in bucket["captions"]]


def test_chain_drills_are_windows_from_the_middle_of_long_clips(trained):
    """A chain drill's first latent frame is one that codes four pixel frames: never a long clip's first."""
    root, _ = trained
    long = train.WorkDir(root / "work").load("latents-long")
    bucket = next(iter(long.values()))
    assert bucket["latents"].shape[2] == 9  # 33 frames
    windows, idx, known = train.chain_drills(np.random.default_rng(0), TINY, bucket, 5)
    assert windows.shape[0] == len(idx) == len(known) == TINY.dit_chain_drills
    for window, clip in zip(windows, bucket["latents"][idx]):
        starts = [s for s in range(5) if torch.equal(clip[:, s:s + 5], window)]
        assert starts and 0 not in starts
    assert set(known.sum(1).tolist()) <= {1, 2} and all(torch.equal(k, k.sort(descending=True).values) for k in known)


def test_every_dataset_clip_says_whether_it_moves_straight(trained):
    root, _ = trained
    dataset = torch.load(root / "work" / "latents.pt", weights_only=False)
    for bucket in dataset.values():
        assert bucket["moves_straight"].dtype == torch.bool
        assert len(bucket["moves_straight"]) == len(bucket["captions"]) == len(bucket["latents"])


def test_mid_clip_starts_leave_a_stream_of_four_latent_frames_or_more_and_other_phases_undrawn():
    rng = np.random.default_rng(2)
    half = VAEPhase(steps=1, batch=1, clip_frames=33, lr=1e-3, warmup=0, mid_clip_share=0.5)
    starts = [mid_clip_start(rng, half, 33) for _ in range(400)]
    assert set(starts) == {0, 1, 2, 3, 4, 5} and 150 < starts.count(0) < 250  # 9 latent frames: 1..5 leave >= 4
    state = rng.bit_generator.state
    assert mid_clip_start(rng, half, 1) == 0 and mid_clip_start(rng, TINY.vae_phases[3], 33) == 0
    assert rng.bit_generator.state == state  # single frames and phases without the share draw nothing


def test_a_mid_clip_start_is_scored_against_the_frames_from_that_latent_frames_group_on(monkeypatch):
    vae = train.WanVAE(TINY.vae)
    clips = torch.rand(1, 3, 33, 32, 32) * 2 - 1
    seen = {}
    real_decode = train.decode_unclamped

    def decode(vae, z):
        seen["latent_frames"] = z.shape[2]
        return real_decode(vae, z)

    monkeypatch.setattr(train, "decode_unclamped", decode)
    loss, parts = vae_loss(vae, clips, TINY, start=3)
    assert seen["latent_frames"] == 6 and torch.isfinite(loss)  # latent frames 3..8 -> pixel frames 12..32
    monkeypatch.setattr(train, "decode_unclamped", lambda vae, z: clips[:, :, 12:])
    assert vae_loss(vae, clips, TINY, start=3)[1]["l1"] == 0.0

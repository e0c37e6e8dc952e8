"""`spacetime train-embedded`: train the pack's own small model on the procedural world, from scratch, on a CPU.

Eight stages, each resumable from a checkpoint in the work directory:
  1. tokenizer  a SentencePiece vocabulary of the caption language (stored in the text-encoder file as `spiece_model`)
  2. text       a small UMT5 encoder pre-trained to read each caption's scene attributes (text_pretrain.py)
  3. vae        a Wan 2.1 VAE (small widths, same 4x8x8 compression) trained on world clips
  4. latents    a dataset of world clips encoded once by the frozen VAE, grouped by frame size
  5. dit        a Wan DiT with per-latent-frame timesteps, trained by flow matching on the frozen text encoder's
                output (as Wan trains on a frozen UMT5) with random known-frame masks, so T2V, I2V, extension both
                ways and infill are all native
  6. refine     the VAE's encoder and decoder trained again together, the dataset encoded again by it (and a set of
                33-frame clips with it), and the DiT fine-tuned on those latents (the decoder alone could not bring
                back objects the encoder coded wrong)
  7. layout     the DiT trained on with layout drills added to every batch (straight movers with nothing given, at
                high noise), so that a mover starts where the direction words leave it room to travel, and chain
                drills (windows from the middle of 33-frame clips, their first latent frame or two given), so that a
                long video's later windows start from the kind of frame they are given
  8. pairs      the same again, shorter, with two-object clips among the layout drills
Then the three files are written in the same key layouts as the Comfy-Org files, each with its config in metadata.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from ..core.dit import WanDiT
from ..core.dit_config import METADATA_KEY, DiTConfig, SamplingDefaults, dit_metadata
from ..core.text_encoder import CAPTION_LANGUAGE_KEY, TextEncoderConfig, UMT5Encoder, config_metadata
from ..core.tokenizer import Tokenizer, spiece_tensor, train_spiece_model
from ..vae.config import VAEConfig
from ..vae.cache import CausalCache
from ..vae.wan_vae import WanVAE, decode_chunks
from . import recaption
from .text_pretrain import AttributeProbes, caption_batch, probe_loss
from .world import SIZES, WorldConfig, captions, make_clip

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models" / "spacetime-mini"
CHECKPOINT_EVERY = 250  # steps between a stage's checkpoints (and at the end of each phase)
FILE_NAMES = {"dit": "spacetime_mini_dit.safetensors", "text_encoder": "spacetime_mini_umt5.safetensors",
              "vae": "spacetime_mini_vae.safetensors"}


@dataclass(frozen=True)
class Phase:
    """One cycle of a learning-rate schedule: `warmup` steps of linear warm-up to `lr`, then cosine decay to 10%."""
    steps: int
    lr: float
    warmup: int


@dataclass(frozen=True)
class VAEPhase(Phase):
    """A VAE phase also fixes its batches, `batch` clips `clip_frames` long, whether the encoder is frozen, and the
    share of batches decoded from a later latent frame on (`vae_loss`'s `start`)."""
    batch: int
    clip_frames: int
    decoder_only: bool = False
    mid_clip_share: float = 0.0


def phase_at(phases: tuple[Phase, ...], step: int) -> tuple[Phase, int]:
    """The phase a global `step` falls in and the global step it began at."""
    start = 0
    for phase in phases:
        if step < start + phase.steps:
            return phase, start
        start += phase.steps
    raise ValueError(f"step {step} is past the last phase (total {start} steps)")


def phase_lr(phases: tuple[Phase, ...], step: int) -> float:
    phase, start = phase_at(phases, step)
    return phase.lr * _cosine(step - start, phase.steps, phase.warmup)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the shipped weights; change it and the files change."""
    seed: int = 20261122
    vocab_size: int = 400
    caption_corpus: int = 30000
    # VAE: the Wan 2.1 layout at 1/8 of the width, same 4x8x8 compression; trained on 32x32 crops (convolutions do
    # not care where a crop came from, and small channel counts are slow on a CPU), first of short clips, then of
    # whole 17-frame windows: only from the third latent frame on does the temporal cache hold a chunk that was
    # itself temporally resampled, the steady state of every longer video (a VAE that never saw it drifted in colour
    # from there; one trained on 17-frame clips from the start did not learn at all in 1000 steps)
    vae: VAEConfig = VAEConfig("wan2.1", base_dim=12, decoder_base_dim=12, z_dim=16)
    # The last three phases train the decoder alone: the encoder, and so the latents the DiT learns from, stay as they
    # were, while objects come back truer (object colour read from the held-out round trips 43% -> 65% -> 68%). The
    # fourth runs on 33-frame clips because a decoder that only ever saw 17 frames does not know the steady state of
    # its temporal cache: through it a true minute's background drifted 17/255 from its start, after it 4/255
    # (more 17-frame steps instead: 11/255; docs/EMBEDDED.md). The fifth decodes half its batches from a later latent
    # frame on: a decoder that only ever started a stream on a clip's first latent frame starts anywhere else, and
    # on the DiT's latents even there, with a dozen frames 10-30/255 off (a minute's drift 10.3 -> 8.4/255)
    vae_phases: tuple[VAEPhase, ...] = (VAEPhase(steps=1500, batch=4, clip_frames=5, lr=1e-3, warmup=100),
                                        VAEPhase(steps=1500, batch=2, clip_frames=17, lr=3e-4, warmup=50),
                                        VAEPhase(steps=600, batch=4, clip_frames=17, lr=5e-4, warmup=50,
                                                 decoder_only=True),
                                        VAEPhase(steps=1500, batch=2, clip_frames=33, lr=3e-4, warmup=50,
                                                 decoder_only=True),
                                        VAEPhase(steps=1500, batch=2, clip_frames=33, lr=3e-4, warmup=50,
                                                 decoder_only=True, mid_clip_share=0.5))
    # Then both halves together again: the decoder alone could not bring back objects the encoder had coded wrong (a
    # moving purple square came back dark green, while latents optimised for the true clip decoded it purple), and
    # 600 joint steps raised the held-out round trips' object colour 83% -> 90%. They move the latents by about 13%
    # of their spread, so the DiT is fine-tuned on the refined latents after its own phases. A second cycle of 1800
    # steps raised the round trips again (colour 86.7% -> 91.7%, keyframes 24.81 -> 24.99 dB, a true minute's drift
    # 3.5 -> 3.0/255) and moved the latents by 28% of their spread in all (docs/EMBEDDED.md)
    vae_refine: tuple[VAEPhase, ...] = (VAEPhase(steps=600, batch=2, clip_frames=17, lr=3e-4, warmup=30),
                                        VAEPhase(steps=1800, batch=2, clip_frames=17, lr=3e-4, warmup=30))
    vae_crop: int = 32
    vae_thumbnail: float = 2.0
    # pixels far from the clip's background colour weigh 1 + this: objects cover a few percent of a frame,
    # and an unweighted loss is content to blur them into the background
    vae_object_weight: float = 4.0
    vae_object_threshold: float = 0.3  # in -1..1 pixel units, any channel
    # dataset of encoded 17-frame clips for the DiT, encoded in batches of one frame size
    dataset_clips: int = 1500
    encode_batch: int = 8
    # and of 33-frame clips (9 latent frames) for the chain drills below, encoded by the refined VAE
    chain_clips: int = 900
    # text encoder: a small UMT5; prompts padded to 32 tokens; pre-trained on fresh captions (after 1000 steps of
    # 128 the probes read every attribute of 96% of held-out captions right), then frozen
    text_encoder: TextEncoderConfig = TextEncoderConfig(vocab_size=400, d_model=128, d_ff=256, num_heads=4, d_kv=32,
                                                        num_layers=2, min_length=32)
    text_steps: int = 1000
    text_batch: int = 128
    text_lr: float = 1e-3
    # DiT: the Wan layout, with heads of 32 instead of the real models' 128, which at this width leave two heads to
    # read the prompt with. Eight heads and the per-frame noise levels below raised object colour 48% -> 60%
    # together; they were not tried apart (docs/EMBEDDED.md)
    dit_dim: int = 256
    dit_ffn: int = 768
    dit_layers: int = 6
    dit_heads: int = 8
    # two more, shorter cosine cycles: with the continuation drills the second raised the share of objects moved the
    # prompt's way from a given first frame 68% -> 89% (before the drills a second cycle gained little), the third
    # object colour from text 68% -> 77% and direction from text 50% -> 68% (docs/EMBEDDED.md)
    dit_phases: tuple[Phase, ...] = (Phase(steps=3000, lr=8e-4, warmup=200), Phase(steps=1000, lr=3e-4, warmup=50),
                                      Phase(steps=1500, lr=3e-4, warmup=50))
    # the EMA weights fine-tuned on the refined VAE's latents. With the 600-step refinement 1000 steps raised object
    # colour from text 78% -> 87% and keyframes 23.1 -> 24.0 dB; on the latents of both cycles, which moved twice as
    # far, 2000 steps scored colour 91.7% (1000: 90.0%), direction 75.0% (71.4%), a minute's drift 3.8/255 (4.4),
    # and over a second set of prompts about the same; left/right 2 of 12 pairs (3) (docs/EMBEDDED.md)
    dit_refine: Phase = Phase(steps=2000, lr=2e-4, warmup=50)
    # then the EMA weights trained on with this many layout drills added to every batch: clips of one object moving
    # in a straight line with nothing given, at a noise level drawn logit-normal around the logit below (0.83-0.94
    # within one deviation), where the DiT draws the clip's layout and only the direction words say where a mover
    # starts. The world starts a mover where its path fits (a "moving right" object on the left); the DiT drew its
    # start for the colour alone and often put it by the wall it was to head for. 800 steps from 1e-4 raised direction
    # from text 75.0% -> 92.9% and object colour 91.7% -> 93.3%; a minute's drift rose 3.8 -> 5.9/255, over its
    # target (from 2e-4: direction 89.3%, drift 6.6/255; docs/EMBEDDED.md)
    dit_layout: Phase = Phase(steps=800, lr=1e-4, warmup=50)
    dit_layout_drills: int = 6
    dit_layout_sigma_logit: float = 2.0
    # and this many chain drills: 5-latent-frame windows cut from the middle of 33-frame clips, their first latent
    # frame (or two) given. A long video's later windows start on such a frame, one that codes four pixel frames
    # (a clip's first latent frame codes one), which the DiT had never been given. With them a minute's drift fell
    # 5.9 -> 3.8/255 on the report's four chains (4.7 -> 3.5 over eight), meeting its target; shape 35% -> 46%,
    # direction from text 92.9% -> 85.7% (docs/EMBEDDED.md)
    dit_chain_drills: int = 6
    # then those EMA weights trained on again, the same way with 4 two-object clips added to the layout drills (an
    # eighth stage). Meant to teach left/right, which it did not (8 of 29 pairs against 9), but against the seventh
    # stage's DiT it raised direction from text 85.7% -> 92.9% (44 -> 49 of 53 movers over both sets of prompts) and
    # object colour 93.3% -> 95.0% and lowered a minute's drift 3.8 -> 2.7/255; shape fell 45.8% -> 37.5% (the same
    # 400 steps without the pairs: direction 47 of 53, drift 4.3/255; docs/EMBEDDED.md)
    dit_pair_layout: Phase = Phase(steps=400, lr=1e-4, warmup=50)
    dit_pair_drills: int = 4
    dit_batch: int = 24
    # the same for the DiT: latent elements whose channels lie on average more than 1 (normalized) from the clip's
    # median (about 5% of them: the objects) weigh 1 + this in the flow-matching loss; without it the DiT paints the
    # prompt's background and often no object (with it, object colour 10% -> 40%: docs/EMBEDDED.md)
    dit_object_weight: float = 4.0
    dit_object_threshold: float = 1.0
    ema_decay: float = 0.995
    caption_dropout: float = 0.1
    # noise levels are logit-normal around this logit: above 0 leans towards high noise, where the prompt decides
    # colours and layout and sampling with shift 3 spends most of its steps
    sigma_logit_mean: float = 0.5
    # this share of the samples draws a noise level for each latent frame on its own (as in Diffusion Forcing, Chen
    # et al. 2024), so that a less noisy neighbour and the prompt's direction say where the object is. On its own it
    # did not teach the DiT to read direction, but it fits better; with half of the samples it drew the object's
    # colour more often and moved objects the prompt's way less often (docs/EMBEDDED.md)
    frame_noise_fraction: float = 0.25
    # this share of every batch are continuation drills: clips of one object moving in a straight line with their
    # first N latent frames given and the rest at one high noise level (logit-normal around the logit below), where
    # the prompt's direction alone says where the object goes next. Without them the DiT ignored direction words
    # even with the first frame given; with 7 of 24 it reads them from a given start, not yet from text alone
    # (docs/EMBEDDED.md)
    dit_drill_share: float = 0.3
    dit_drill_sigma_logit: float = 1.5
    # text to video samples the first frame first: the DiT moves a given start the prompt's way far more often than
    # an object it draws and moves in one pass (sampler/sample.py); keyframes are fitted through the decoder, which
    # alone gives a keyframe back at about 22-26 dB (sampler/keyframe_fit.py)
    sampling: SamplingDefaults = SamplingDefaults(shift=3.0, steps=20, cfg=4.0, fps=8, frames=17, width=64, height=64,
                                                  first_frame_first=True, keyframe_fit=True)


# ---------------------------------------------------------------------------------------------------------------------
# Work directory: checkpoints and the loss log
# ---------------------------------------------------------------------------------------------------------------------


class WorkDir:
    """Stage checkpoints (`<stage>.pt`) and a JSON-lines loss log; a finished stage is never trained again."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.log_path = self.path / "losses.jsonl"

    def checkpoint(self, stage: str) -> Path:
        return self.path / f"{stage}.pt"

    def load(self, stage: str):
        path = self.checkpoint(stage)
        return torch.load(path, weights_only=False) if path.exists() else None

    def save(self, stage: str, state) -> None:
        tmp = self.checkpoint(stage).with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint(stage))  # atomic: an interrupted save never leaves a broken checkpoint

    def log(self, **record) -> None:
        """Append a record, stamped with when it was written (UTC): a run's stage times can be read off the log,
        across resumes too."""
        stamped = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        with self.log_path.open("a") as f:
            f.write(json.dumps(stamped) + "\n")


def stage_rng(cfg: TrainConfig, stage: int, state: dict) -> np.random.Generator:
    """A stage's batch generator: a fresh one for a fresh stage, else where the checkpoint `state` left it.

    Together with torch's generator (the DiT's noise), restored here too, a resumed run draws exactly the batches
    and noise of an uninterrupted one.
    """
    rng = np.random.default_rng([cfg.seed, stage, 0])
    if "random" in state:
        rng.bit_generator.state = state["random"]["numpy"]
        torch.set_rng_state(state["random"]["torch"])
    return rng


def random_state(rng: np.random.Generator) -> dict:
    """What `stage_rng` needs to carry on from here."""
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """World frames [T, H, W, 3] in 0..1 -> VAE pixels [3, T, H, W] in -1..1."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2) * 2.0 - 1.0


def vae_batch(rng: np.random.Generator, cfg: TrainConfig, clip_frames: int, batch: int) -> torch.Tensor:
    """Random crops [B, 3, T, crop, crop] of world clips; a quarter of batches are single frames (twice as many).
    Clips are the world's 17 frames, or `clip_frames` when that is longer."""
    single = rng.random() < 0.25
    frames, count = (1, 2 * batch) if single else (clip_frames, batch)
    world = WorldConfig(frames=max(clip_frames, WorldConfig().frames), long_fraction=0.0)
    clips = []
    for _ in range(count):
        video, _ = make_clip(int(rng.integers(2**31)), world)
        crop = (frames, cfg.vae_crop, cfg.vae_crop)  # (t, h, w)
        t, y, x = (int(rng.integers(0, n - c + 1)) for n, c in zip(video.shape[:3], crop))
        clips.append(to_pixels(video[t:t + frames, y:y + cfg.vae_crop, x:x + cfg.vae_crop]))
    return torch.stack(clips)


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1: tokenizer
# ---------------------------------------------------------------------------------------------------------------------


def train_tokenizer(cfg: TrainConfig, work: WorkDir) -> bytes:
    state = work.load("tokenizer")
    if state is None:
        corpus = captions(cfg.seed, cfg.caption_corpus)
        state = {"model_proto": train_spiece_model(corpus, cfg.vocab_size)}
        work.save("tokenizer", state)
    return state["model_proto"]


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2: the text encoder
# ---------------------------------------------------------------------------------------------------------------------


def train_text_encoder(cfg: TrainConfig, tokenizer: Tokenizer, work: WorkDir) -> UMT5Encoder:
    """Pre-train the UMT5 on fresh captions until attention probes read every scene attribute from its tokens."""
    torch.manual_seed(cfg.seed + 1)
    text, probes = UMT5Encoder(cfg.text_encoder), AttributeProbes(cfg.text_encoder.d_model)
    _init_text_encoder(text)
    params = list(text.parameters()) + list(probes.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.text_lr, weight_decay=0.01)
    state = work.load("text") or {"step": 0}
    if "text" in state:
        text.load_state_dict(state["text"])
        probes.load_state_dict(state["probes"])
        opt.load_state_dict(state["opt"])
    rng = stage_rng(cfg, 1, state)
    bar = tqdm(range(state["step"], cfg.text_steps), desc="text", initial=state["step"], total=cfg.text_steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.text_lr * _cosine(step, cfg.text_steps)
        batch = caption_batch(rng, tokenizer, cfg.text_batch, cfg.text_encoder.min_length)
        loss, all_right = probe_loss(text, probes, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", read=f"{all_right:.0%}")
        if step % 25 == 0:
            work.log(stage="text", step=step, loss=loss.item(), all_attributes_right=all_right)
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == cfg.text_steps:
            work.save("text", {"step": step + 1, "text": text.state_dict(), "probes": probes.state_dict(),
                               "opt": opt.state_dict(), "random": random_state(rng)})
    return text.eval().requires_grad_(False)


def _init_text_encoder(text: UMT5Encoder) -> None:
    """T5-style scaled init, so a randomly initialised small UMT5 starts with unit-scale activations."""
    for name, p in text.named_parameters():
        if p.dim() == 2 and "relative_attention_bias" not in name:
            torch.nn.init.normal_(p, std=p.shape[1] ** -0.5 if "shared" not in name else 1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Stage 3: VAE
# ---------------------------------------------------------------------------------------------------------------------


def vae_loss(vae: WanVAE, clips: torch.Tensor, cfg: TrainConfig, start: int = 0) -> tuple[torch.Tensor, dict]:
    """Object-weighted L1 + MSE reconstruction from the latent mean, plus a thumbnail term on three latent channels.

    `start` > 0 decodes the latents from latent frame `start` on, as a fresh stream, against the pixels from frame
    4 * start on (the last frame of the group that latent frame encodes, then the rest).

    From a random init the decoder sits on the mean image for hundreds of steps, because the latent barely
    varies between inputs; asking three channels to be the 8x8-pooled colours makes the latent informative from
    the first step (a fixed batch reaches L1 0.07 in 100 steps instead of staying at 0.42). The latent is used
    deterministically (the mean), as the VAE's encode does at inference.
    """
    mean, _ = vae.encode_distribution(clips)
    recon = decode_unclamped(vae, mean[:, :, start:])
    target = clips[:, :, vae.config.compression[0] * start:]
    error = recon - target
    weight = object_weight(target, cfg.vae_object_weight, cfg.vae_object_threshold).expand_as(error)
    weighted = ((error.abs() + error ** 2) * weight).sum() / weight.sum()
    thumbnail = F.mse_loss(mean[:, :3], latent_thumbnail(clips))
    parts = {"l1": error.abs().mean().item(), "mse": (error ** 2).mean().item(), "thumbnail": thumbnail.item()}
    return weighted + cfg.vae_thumbnail * thumbnail, parts


def object_weight(x: torch.Tensor, extra: float, threshold: float, channel_reduce=torch.amax) -> torch.Tensor:
    """[B, 1, T, H, W]: 1 + extra where an element of x [B, C, T, H, W] is far from its clip's per-channel median.

    The median of a clip is its background (objects cover a few percent of it). "Far": the channels' deviations,
    reduced by `channel_reduce` (any channel, for pixels; their mean, for latents), exceed `threshold`.
    """
    background = x.flatten(2).median(dim=2).values[:, :, None, None, None]  # (B, C, 1, 1, 1)
    far = channel_reduce((x - background).abs(), dim=1, keepdim=True) > threshold
    return 1.0 + extra * far.float()


def latent_thumbnail(clips: torch.Tensor) -> torch.Tensor:
    """Pixels [B, 3, T, H, W] -> colours pooled like the latent grid [B, 3, T', H/8, W/8]: frame 0, then groups of 4."""
    pooled = [F.avg_pool3d(clips[:, :, :1], (1, 8, 8))]
    if clips.shape[2] > 1:
        pooled.append(F.avg_pool3d(clips[:, :, 1:], (4, 8, 8)))
    return torch.cat(pooled, dim=2)


def decode_unclamped(vae: WanVAE, z: torch.Tensor) -> torch.Tensor:
    """`vae.decode` without the final clamp, so gradients reach pixels at the edges of the range."""
    x, cache, chunks = vae.conv2(z), CausalCache(), []
    for start, stop in decode_chunks(z.shape[2], temporal_chunk=1):
        chunks.append(vae.to_pixels(vae.decoder(x[:, :, start:stop], cache)))
        cache.next_chunk()
    return torch.cat(chunks, dim=2)  # (B, 3, T, H, W)


def train_vae(cfg: TrainConfig, work: WorkDir) -> WanVAE:
    torch.manual_seed(cfg.seed)
    return _train_vae_phases(WanVAE(cfg.vae), cfg.vae_phases, cfg, work, stage="vae", rng_stage=2)


def refine_vae(cfg: TrainConfig, vae: WanVAE, work: WorkDir) -> WanVAE:
    """A copy of the trained VAE, encoder and decoder trained together again with a fresh optimizer (stage 6)."""
    refined = copy.deepcopy(vae).train().requires_grad_(True)
    return _train_vae_phases(refined, cfg.vae_refine, cfg, work, stage="vae-refined", rng_stage=6)


def _train_vae_phases(vae: WanVAE, phases: tuple[VAEPhase, ...], cfg: TrainConfig, work: WorkDir, stage: str,
                      rng_stage: int) -> WanVAE:
    """Train `vae` through `phases` with one AdamW, resuming from and checkpointing to the work dir's `stage`."""
    channels_last(vae)
    opt = torch.optim.AdamW(vae.parameters(), lr=phases[0].lr, weight_decay=0.0)
    state = work.load(stage) or {"step": 0}
    if "model" in state:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    total = sum(phase.steps for phase in phases)
    rng = stage_rng(cfg, rng_stage, state)
    bar = tqdm(range(state["step"], total), desc=stage, initial=state["step"], total=total)
    for step in bar:
        phase, start = phase_at(phases, step)
        if step == start:
            rng = np.random.default_rng([cfg.seed, rng_stage, step])  # each phase draws from its own seed
        for group in opt.param_groups:
            group["lr"] = phase_lr(phases, step)
        for encoding in (vae.encoder, vae.conv1):  # frozen parameters get no gradient, so AdamW leaves them be
            encoding.requires_grad_(not phase.decoder_only)
        clips = vae_batch(rng, cfg, phase.clip_frames, phase.batch)
        loss, parts = vae_loss(vae, clips, cfg, start=mid_clip_start(rng, phase, clips.shape[2]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % 25 == 0:
            work.log(stage=stage, step=step, loss=loss.item(), **parts)
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == start + phase.steps:
            work.save(stage, {"step": step + 1, "model": vae.state_dict(), "opt": opt.state_dict(),
                              "random": random_state(rng)})
    return vae.eval().requires_grad_(False)


def channels_last(vae: WanVAE) -> None:
    """Store the 3-D convolutions' weights channels-last (in place): on this 2-core CPU a training step on 17-frame
    crops (batch 2, two threads) takes about 0.55 s instead of 0.69 s. The values do not change, and the files are
    written contiguous as ever; sampling gains nothing measurable, so only training does this."""
    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)


def mid_clip_start(rng: np.random.Generator, phase: VAEPhase, frames: int) -> int:
    """The latent frame a batch of `frames`-frame clips is decoded from: 0, or in `phase.mid_clip_share` of batches
    of 5 latent frames or more one that leaves 4 or more. Shorter clips and phases without mid-clip starts draw
    nothing, so their batches stay as they were."""
    latent_frames = (frames - 1) // 4 + 1  # the Wan VAE's: frame 0 alone, then 4 frames a latent frame
    if phase.mid_clip_share == 0.0 or latent_frames < 5 or rng.random() >= phase.mid_clip_share:
        return 0
    return int(rng.integers(1, latent_frames - 3))


def _cosine(step: int, total: int, warmup: int = 100) -> float:
    """Linear warm-up then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# ---------------------------------------------------------------------------------------------------------------------
# Stage 4: the encoded dataset
# ---------------------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def encode_dataset(cfg: TrainConfig, vae: WanVAE, work: WorkDir, stage: str = "latents", long: bool = False) -> dict:
    """{(width, height): {"latents": [N, C, T, h, w] raw, "captions": [N], "moves_straight": [N] bool,
    "two_objects": [N] bool}} of the world's 17-frame clips (`cfg.dataset_clips`), or with `long` of its 33-frame
    clips (`cfg.chain_clips`, seeds after the short ones'), checkpointed as the work dir's `stage`."""
    state = work.load(stage)
    if state is not None:
        return state
    world = WorldConfig(long_fraction=1.0 if long else 0.0)
    count = cfg.chain_clips if long else cfg.dataset_clips
    first_seed = cfg.seed * 10 + (len(SIZES) * cfg.dataset_clips if long else 0)
    state = {}
    for k, size in enumerate(SIZES):
        seeds = range(first_seed + k * count, first_seed + (k + 1) * count, len(SIZES))
        clips = [make_clip(seed, dataclasses.replace(world, sizes=(size,))) for seed in seeds]
        latents = [vae.encode(torch.stack([to_pixels(v) for v, _ in clips[i:i + cfg.encode_batch]]))
                   for i in tqdm(range(0, len(clips), cfg.encode_batch), desc=f"encode {size[0]}x{size[1]}")]
        state[size] = {"latents": torch.cat(latents), "captions": [scene.caption for _, scene in clips],
                       "moves_straight": torch.tensor([scene.moves_straight for _, scene in clips]),
                       "two_objects": torch.tensor([scene.relation is not None for _, scene in clips])}
    work.save(stage, state)
    return state


def latent_statistics(dataset: dict) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the raw latents over the whole dataset."""
    flat = torch.cat([b["latents"].transpose(0, 1).reshape(b["latents"].shape[1], -1) for b in dataset.values()], 1)
    return flat.mean(1).tolist(), flat.std(1).tolist()


@torch.no_grad()
def fit_latent_rgb(vae: WanVAE, dataset: dict, mean, std) -> tuple[list[list[float]], list[float]]:
    """Least-squares map normalized latent [C] -> RGB in -1..1 (the live preview's factors), on decoded first frames."""
    bucket = dataset[SIZES[0]]
    z = bucket["latents"][:64, :, :1]  # (N, C, 1, h, w): first latent frames
    rgb = F.avg_pool2d(vae.decode(z)[:, :, 0], 8)  # (N, 3, h, w): the pixels each latent element covers
    norm = (z[:, :, 0] - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    features = norm.permute(0, 2, 3, 1).reshape(-1, norm.shape[1])  # (N*h*w, C)
    x = torch.cat([features, torch.ones(features.shape[0], 1)], 1)
    y = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(x, y).solution  # (C + 1, 3)
    return solution[:-1].tolist(), solution[-1].tolist()


# ---------------------------------------------------------------------------------------------------------------------
# Stage 5: DiT
# ---------------------------------------------------------------------------------------------------------------------


def dit_config(cfg: TrainConfig) -> DiTConfig:
    return DiTConfig("spacetime-mini", in_dim=cfg.vae.z_dim, out_dim=cfg.vae.z_dim, dim=cfg.dit_dim,
                     ffn_dim=cfg.dit_ffn, num_heads=cfg.dit_heads, num_layers=cfg.dit_layers,
                     text_dim=cfg.text_encoder.d_model, per_frame_timesteps=True, sampling=cfg.sampling,
                     text_len=cfg.text_encoder.min_length)


def known_frame_mask(rng: np.random.Generator, frames: int) -> torch.Tensor:
    """Which latent frames of a training clip are given: none, first, first N, last N, or scattered keyframes."""
    known = torch.zeros(frames, dtype=torch.bool)
    kind = rng.choice(["none", "first", "prefix", "suffix", "scattered"], p=[0.35, 0.2, 0.15, 0.15, 0.15])
    n = int(rng.integers(1, frames - 1))
    if kind == "first":
        known[0] = True
    elif kind == "prefix":
        known[:n] = True
    elif kind == "suffix":
        known[-n:] = True
    elif kind == "scattered":
        known[torch.from_numpy(rng.random(frames) < 0.4)] = True
        known[-1] |= not known.any()
    return known


def noise_levels(rng: np.random.Generator, cfg: TrainConfig, batch: int, frames: int) -> torch.Tensor:
    """[B, T] noise levels, logit-normal: one per clip, or one per latent frame for `frame_noise_fraction` of them."""
    sigma = torch.sigmoid(torch.from_numpy(rng.normal(cfg.sigma_logit_mean, 1.0, batch)).float())
    sigma = sigma[:, None].repeat(1, frames)
    if cfg.frame_noise_fraction > 0:  # drawn only then, so that a run without it draws the batches it always did
        per_frame = torch.from_numpy(rng.random(batch) < cfg.frame_noise_fraction)
        logits = rng.normal(cfg.sigma_logit_mean, 1.0, (int(per_frame.sum()), frames))
        sigma[per_frame] = torch.sigmoid(torch.from_numpy(logits).float())
    return sigma


def drill_clips(rng: np.random.Generator, eligible: torch.Tensor, count: int) -> np.ndarray:
    """Indices of `count` drills among a size's clips, drawn from those `eligible` [N] marks (straight movers, or
    two-object clips), any clip if none is."""
    pool = np.flatnonzero(eligible.numpy()) if eligible.any() else np.arange(len(eligible))
    return pool[rng.integers(len(pool), size=count)]


def chain_drills(rng: np.random.Generator, cfg: TrainConfig, long: dict, frames: int):
    """`cfg.dit_chain_drills` windows of `frames` latent frames cut from a size's long clips, each starting past the
    clip's first latent frame, with its first one or two latent frames given (a long video's overlap, with or without
    an anchor). Returns raw latents [D, C, frames, h, w], the clips' indices and the known masks [D, frames]."""
    latents, count = long["latents"], cfg.dit_chain_drills
    idx = rng.integers(len(latents), size=count)
    starts = rng.integers(1, latents.shape[2] - frames + 1, size=count)
    windows = torch.stack([latents[i, :, start:start + frames] for i, start in zip(idx, starts)])
    given = torch.from_numpy(rng.integers(1, 3, size=count))
    return windows, idx, torch.arange(frames)[None] < given[:, None]


def logit_normal(rng: np.random.Generator, mean: float, std: float) -> float:
    """One noise level in (0, 1): the sigmoid of a normal draw."""
    return 1.0 / (1.0 + math.exp(-rng.normal(mean, std)))


def make_drills(rng: np.random.Generator, cfg: TrainConfig, known: torch.Tensor, sigma: torch.Tensor) -> None:
    """Turn the clips of `known` [D, T] and `sigma` [D, T] into continuation drills, in place: the first N latent
    frames given (1 <= N < T), the others at one noise level drawn around `cfg.dit_drill_sigma_logit`."""
    frames = known.shape[1]
    for drill in range(len(known)):
        known[drill] = torch.arange(frames) < int(rng.integers(1, frames))
        sigma[drill] = logit_normal(rng, cfg.dit_drill_sigma_logit, 1.0)


def make_layout_drills(rng: np.random.Generator, cfg: TrainConfig, known: torch.Tensor, sigma: torch.Tensor) -> None:
    """Turn the clips of `known` [D, T] and `sigma` [D, T] into layout drills, in place: nothing given, one noise level
    drawn around `cfg.dit_layout_sigma_logit`, high enough that the prompt alone decides where the object is."""
    known[:] = False
    for drill in range(len(known)):
        sigma[drill] = logit_normal(rng, cfg.dit_layout_sigma_logit, 0.7)


def flow_matching_loss(dit, x0, context, known, sigma, element_weight, noise=None) -> torch.Tensor:
    """Weighted velocity loss on unknown latent frames; known frames stay clean with timestep 0 (per-frame timesteps).

    x0 [B, C, T, h, w] normalized, known [B, T] bool, sigma [B] or [B, T] in (0, 1), element_weight [B, 1, T, h, w];
    noise like x0, drawn here unless given (embedded/reliance.py compares captions on the same noise).
    """
    noise = torch.randn_like(x0) if noise is None else noise
    sigma = sigma[:, None] if sigma.dim() == 1 else sigma
    sigma_t = sigma * (~known)  # (B, T): 0 on known frames
    s = sigma_t[:, None, :, None, None]
    x_t = s * noise + (1 - s) * x0
    v = dit(x_t, sigma_t * 1000.0, context)
    weight = (element_weight * (~known).float()[:, None, :, None, None]).expand_as(v)
    return ((v - (noise - x0)) ** 2 * weight).sum() / weight.sum().clamp(min=1)


@torch.no_grad()
def encode_captions(text: UMT5Encoder, tokenizer: Tokenizer, prompts: list[str], min_length: int) -> torch.Tensor:
    """[N, L, D] contexts of a frozen text encoder; tokenized together so that all share one length L."""
    ids, mask = tokenizer(prompts, min_length)
    return torch.cat([text(ids[i:i + 256], mask[i:i + 256]) for i in range(0, len(prompts), 256)])


def train_dit(cfg: TrainConfig, dataset: dict, stats, text: UMT5Encoder, tokenizer: Tokenizer, work: WorkDir,
              deadline: float = math.inf) -> WanDiT:
    """Train through `cfg.dit_phases` or until the wall-clock `deadline` (then the EMA weights so far are used)."""
    torch.manual_seed(cfg.seed + 4)
    dit = WanDiT(dit_config(cfg)).init_weights()
    return _train_dit_phases(dit, cfg.dit_phases, cfg, dataset, stats, text, tokenizer, work, "dit", 4, deadline)


def refine_dit(cfg: TrainConfig, dit: WanDiT, dataset: dict, stats, text: UMT5Encoder, tokenizer: Tokenizer,
               work: WorkDir, deadline: float = math.inf) -> WanDiT:
    """The trained (EMA) DiT fine-tuned with a fresh optimizer on the refined VAE's latents (stage 6). `stats` stay
    the first dataset's: the DiT keeps the latent normalization it learned."""
    torch.manual_seed(cfg.seed + 7)
    refined = copy.deepcopy(dit).train().requires_grad_(True)
    return _train_dit_phases(refined, (cfg.dit_refine,), cfg, dataset, stats, text, tokenizer, work, "dit-refined", 7,
                             deadline)


def layout_dit(cfg: TrainConfig, dit: WanDiT, dataset: dict, long: dict, stats, text: UMT5Encoder,
               tokenizer: Tokenizer, work: WorkDir, deadline: float = math.inf) -> WanDiT:
    """The refined (EMA) DiT trained on with a fresh optimizer, on the same latents, with `cfg.dit_layout_drills`
    layout drills and `cfg.dit_chain_drills` chain drills (windows of the `long` dataset) added to every batch
    (stage 7)."""
    torch.manual_seed(cfg.seed + 8)
    tuned = copy.deepcopy(dit).train().requires_grad_(True)
    return _train_dit_phases(tuned, (cfg.dit_layout,), cfg, dataset, stats, text, tokenizer, work, "dit-layout", 8,
                             deadline, layout_drills=cfg.dit_layout_drills, long=long)


def pair_layout_dit(cfg: TrainConfig, dit: WanDiT, dataset: dict, long: dict, stats, text: UMT5Encoder,
                    tokenizer: Tokenizer, work: WorkDir, deadline: float = math.inf) -> WanDiT:
    """The layout stage's EMA weights trained on with a fresh optimizer through `cfg.dit_pair_layout`, with
    `cfg.dit_pair_drills` two-object clips among the layout drills (stage 8)."""
    torch.manual_seed(cfg.seed + 9)
    tuned = copy.deepcopy(dit).train().requires_grad_(True)
    return _train_dit_phases(tuned, (cfg.dit_pair_layout,), cfg, dataset, stats, text, tokenizer, work, "dit-pairs", 9,
                             deadline, layout_drills=cfg.dit_layout_drills, pair_drills=cfg.dit_pair_drills, long=long)


def _train_dit_phases(dit: WanDiT, phases: tuple[Phase, ...], cfg: TrainConfig, dataset: dict, stats,
                      text: UMT5Encoder, tokenizer: Tokenizer, work: WorkDir, stage: str, rng_stage: int,
                      deadline: float, layout_drills: int = 0, pair_drills: int = 0,
                      long: dict | None = None) -> WanDiT:
    """Train `dit` through `phases`, resuming from and checkpointing to the work dir's `stage`; the EMA weights
    are returned. Each batch is the recipe's `cfg.dit_batch` clips plus `layout_drills` layout drills of straight
    movers and `pair_drills` of two-object clips, and with a `long` dataset `cfg.dit_chain_drills` chain drills
    last."""
    params = list(dit.parameters())
    opt = torch.optim.AdamW(params, lr=phases[0].lr, weight_decay=0.01, betas=(0.9, 0.98))
    ema = [p.detach().clone() for p in params]
    state = work.load(stage) or {"step": 0}
    if "dit" in state:
        dit.load_state_dict(state["dit"])
        opt.load_state_dict(state["opt"])
        ema = state["ema"]
    mean, std = (torch.tensor(v)[None, :, None, None, None] for v in stats)
    # per frame size, [1 + N (+ N_long), L, D]: the empty prompt (what caption dropout trains on), the clips'
    # captions, then the long clips'
    long = long or {}
    captions = {size: ["", *bucket["captions"], *long.get(size, {}).get("captions", [])]
                for size, bucket in dataset.items()}
    contexts = {size: encode_captions(text, tokenizer, prompts, cfg.text_encoder.min_length)
                for size, prompts in captions.items()}
    rng = stage_rng(cfg, rng_stage, state)
    sizes = list(dataset)
    total = sum(phase.steps for phase in phases)
    drills = round(cfg.dit_drill_share * cfg.dit_batch)  # continuation drills per batch
    batch = cfg.dit_batch + layout_drills + pair_drills
    layout = slice(drills, drills + layout_drills + pair_drills)  # the layout drills follow the continuation drills
    bar = tqdm(range(state["step"], total), desc=stage, initial=state["step"], total=total)
    for step in bar:
        if time.time() > deadline:
            work.save(stage, {"step": step, "dit": dit.state_dict(), "opt": opt.state_dict(), "ema": ema,
                              "random": random_state(rng)})
            break
        phase, start = phase_at(phases, step)
        if step == start:
            rng = np.random.default_rng([cfg.seed, rng_stage, step])  # each phase draws from its own seed
        size = sizes[rng.integers(len(sizes))]
        idx = rng.integers(len(dataset[size]["captions"]), size=batch)
        # the batch's first clips are the drills; their masks and noise levels are drawn as for any clip, then
        # replaced, so that with no drills the draws are the ones the recipe made before it had them
        if drills:
            idx[:drills] = drill_clips(rng, dataset[size]["moves_straight"], drills)
        if layout_drills:
            idx[drills:drills + layout_drills] = drill_clips(rng, dataset[size]["moves_straight"], layout_drills)
        if pair_drills:
            idx[drills + layout_drills:layout.stop] = drill_clips(rng, dataset[size]["two_objects"], pair_drills)
        x0 = (dataset[size]["latents"][idx] - mean) / std  # (B, C, T, h, w)
        dropped = torch.from_numpy(rng.random(batch) < cfg.caption_dropout)[:, None, None]
        context = torch.where(dropped, contexts[size][0], contexts[size][1 + idx])  # (B, L, D)
        known = torch.stack([known_frame_mask(rng, x0.shape[2]) for _ in idx])  # (B, T)
        sigma = noise_levels(rng, cfg, batch, x0.shape[2])
        make_drills(rng, cfg, known[:drills], sigma[:drills])
        make_layout_drills(rng, cfg, known[layout], sigma[layout])
        if long:  # drawn after the rest, so that the recipe's own draws stay the ones it made without them
            windows, chain_idx, chain_known = chain_drills(rng, cfg, long[size], x0.shape[2])
            chain_dropped = torch.from_numpy(rng.random(len(chain_idx)) < cfg.caption_dropout)[:, None, None]
            chain_context = contexts[size][1 + len(dataset[size]["captions"]) + chain_idx]
            x0 = torch.cat([x0, (windows - mean) / std])
            context = torch.cat([context, torch.where(chain_dropped, contexts[size][0], chain_context)])
            known = torch.cat([known, chain_known])
            sigma = torch.cat([sigma, noise_levels(rng, cfg, len(chain_idx), x0.shape[2])])
        for group in opt.param_groups:
            group["lr"] = phase_lr(phases, step)
        weight = object_weight(x0, cfg.dit_object_weight, cfg.dit_object_threshold, channel_reduce=torch.mean)
        loss = flow_matching_loss(dit, x0, context, known, sigma, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % 25 == 0:
            work.log(stage=stage, step=step, loss=loss.item())
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == start + phase.steps:
            work.save(stage, {"step": step + 1, "dit": dit.state_dict(), "opt": opt.state_dict(), "ema": ema,
                              "random": random_state(rng)})
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    return dit.eval()


# ---------------------------------------------------------------------------------------------------------------------
# Writing the shipped files
# ---------------------------------------------------------------------------------------------------------------------


def write_models(out: Path, cfg: TrainConfig, vae: WanVAE, dit: WanDiT, text: UMT5Encoder, tokenizer_proto: bytes,
                 stats, rgb) -> dict[str, Path]:
    """The three safetensors files, fp16, in the Comfy-Org key layouts, with configs in metadata."""
    out.mkdir(parents=True, exist_ok=True)
    vae_cfg = dataclasses.replace(vae.config, latent_mean=tuple(stats[0]), latent_std=tuple(stats[1]),
                                  latent_rgb_factors=tuple(map(tuple, rgb[0])), latent_rgb_factors_bias=tuple(rgb[1]))
    text_sd = {**_half(text.state_dict()), "spiece_model": spiece_tensor(tokenizer_proto)}
    paths = {name: out / file for name, file in FILE_NAMES.items()}
    save_file(_half(dit.state_dict()), paths["dit"], metadata=_dit_file_metadata(dit.config, cfg))
    save_file(text_sd, paths["text_encoder"], metadata=text_encoder_metadata(text.config))
    save_file(_half(vae.state_dict()), paths["vae"], metadata=vae_cfg.to_metadata())
    return paths


def text_encoder_metadata(config: TextEncoderConfig) -> dict[str, str]:
    """The config, and the caption language it reads: Text Encode recaptions prompts into it."""
    return {**config_metadata(config), CAPTION_LANGUAGE_KEY: recaption.LANGUAGE}


def _dit_file_metadata(config: DiTConfig, cfg: TrainConfig) -> dict[str, str]:
    """The loader's fields (variant, heads, per-frame timesteps, sampling defaults) plus what it was trained on."""
    fields = json.loads(dit_metadata(config)[METADATA_KEY])
    fields |= {"name": config.variant, "window_frames": cfg.sampling.frames,
               "trained_sizes": [list(size) for size in SIZES]}
    return {METADATA_KEY: json.dumps(fields)}


def _half(state_dict: dict) -> dict:
    """fp16 storage (halves the files); contiguous copies as safetensors requires."""
    return {k: v.detach().to(torch.float16).contiguous() for k, v in state_dict.items()}


def train_embedded(out: Path = BUNDLED_DIR, work_dir: Path = Path("runs/train-embedded"),
                   cfg: TrainConfig = TrainConfig(), minutes_budget: float = math.inf,
                   threads: int = 1) -> dict[str, Path]:
    """Run (or resume) every stage and write the model files; returns their paths.

    `minutes_budget` bounds this call's wall time: the DiT stages stop early to leave room for writing the files
    (both encodings come first, so nothing slow is left after them).
    `threads`: torch threads; on a 2-core machine shared with other jobs one is faster than two (two wait on each
    other), on a quiet one two are about 1.3-1.6x faster.
    """
    torch.set_num_threads(threads)
    work = WorkDir(work_dir)
    start = time.time()
    deadline = start + 60.0 * minutes_budget - 60.0
    proto = train_tokenizer(cfg, work)
    tokenizer = Tokenizer(proto)
    text = train_text_encoder(cfg, tokenizer, work)
    vae = train_vae(cfg, work)
    refined_vae = refine_vae(cfg, vae, work)
    dataset = encode_dataset(cfg, vae, work)
    refined = encode_dataset(cfg, refined_vae, work, stage="latents-refined")
    long = encode_dataset(cfg, refined_vae, work, stage="latents-long", long=True)
    stats = latent_statistics(dataset)
    dit = train_dit(cfg, dataset, stats, text, tokenizer, work, deadline)
    dit = refine_dit(cfg, dit, refined, stats, text, tokenizer, work, deadline)
    dit = layout_dit(cfg, dit, refined, long, stats, text, tokenizer, work, deadline)
    dit = pair_layout_dit(cfg, dit, refined, long, stats, text, tokenizer, work, deadline)
    rgb = fit_latent_rgb(refined_vae, refined, *stats)
    paths = write_models(Path(out), cfg, refined_vae, dit, text, proto, stats, rgb)
    work.log(stage="done", minutes=(time.time() - start) / 60)
    return paths

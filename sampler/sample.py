"""`sample()`: text (+ keyframes) -> a video latent, with flow matching, window by window when the video is long."""
import dataclasses
import math
from typing import NamedTuple

import torch

from ..core.errors import SpacetimeError
from ..vae.latent_format import WAN21_MEAN, WAN21_STD, WAN22_MEAN, WAN22_STD, denormalize, normalize
from .conditioning import Keyframes, TextConditioning, encode_normalized, latent_frame_of, pixel_count
from .denoise import DESCRIPTIONS, Denoiser, WindowInputs, resolve_mechanism
from .first_frame import (FIRST_FRAME_CANDIDATES, MAX_CANDIDATES, candidate_noise, prompt_agreement,
                          stream_after_video)
from .keyframe_fit import fit_keyframes
from .long_video import (DriftControl, Timeline, Window, first_new_second, overlap_length, plan_windows,
                         runs_backward, window_length)
from .preview import latent_preview, preview_factors
from .schedules import flow_sigmas
from .solvers import get_solver


class SampleResult(NamedTuple):
    latent: torch.Tensor  # raw VAE latents [B, C, T, H, W] on the CPU
    info: str  # for the user: the conditioning mechanism used and the windows sampled


def sample(model, latent_raw: torch.Tensor, positive: TextConditioning, negative: TextConditioning | None = None,
           keyframes: Keyframes | None = None, seed: int = 0, steps: int = 20, cfg: float = 5.0,
           shift: float | None = None, solver: str = "unipc", denoise: float = 1.0, fps: float = 16,
           callback=None, window_frames: int | None = None, overlap_frames: int | None = None, anchors=None,
           drift_control: bool = True, mechanism: str | None = None, vae=None,
           first_frame_first: bool = False, first_frame_candidates: int = FIRST_FRAME_CANDIDATES,
           keyframe_fit: bool = False) -> SampleResult:
    """Sample a video latent [B, C, T, H, W] (raw, as LATENT["samples"]) from noise drawn from `seed` on the CPU.

    `model`: a SpacetimeModel. `negative` defaults to `positive.negative`. `shift`, `window_frames` default to
    the model's sampling defaults. `vae` (or the keyframes' VAE) gives the latent normalization; without either,
    the Wan statistics for the latent's channel count are used. `callback(step, total, preview)` is called once
    per step with an RGB preview [t, h, w, 3] in 0..1 of the current window; raising from it stops sampling.
    `mechanism` overrides how keyframes are applied (see denoise.py). `anchors`: pixel frames of keyframes kept
    in every window. `first_frame_first`: with no frame known (text to video from noise), sample the first window,
    keep its first latent frame and sample the video again from it, as image to video; with
    `first_frame_candidates` > 1, sample that many first windows per video and keep the first frame of the one
    the model finds its prompt explains best (first_frame.py; it needs a negative prompt, else the seed's own).
    `keyframe_fit`: afterwards fit the latent frames holding keyframes so the VAE decodes the given images
    (keyframe_fit.py; costs a decoder backward pass per step and frame; its steps are reported to `callback` after
    the sampling steps, without a preview).
    """
    negative = negative if negative is not None else positive.negative
    _check_arguments(cfg, negative, latent_raw, first_frame_candidates)
    config = model.config
    used = resolve_mechanism(model, mechanism)
    vae = vae if vae is not None else (keyframes.vae if keyframes is not None else None)
    stats = _latent_stats(vae, config, latent_raw.shape[1])
    timeline = _timeline(latent_raw, keyframes, vae, used, seed, stats)
    timeline.image_tokens = _image_tokens(config, keyframes, latent_raw.shape[2])
    timeline.references, timeline.reference_noise = _subject_references(used, keyframes, timeline, seed)
    length = window_length(window_frames or _default(config, "frames", pixel_count(latent_raw.shape[2])),
                           latent_raw.shape[2])
    windows = _plan(timeline, length, keyframes, overlap_frames, anchors)
    sigmas = flow_sigmas(steps, shift if shift is not None else _default(config, "shift", 5.0), denoise)
    first_pass = first_frame_first and denoise == 1 and not timeline.strength.any()  # nothing known
    candidates = (first_frame_candidates if negative is not None else 1) if first_pass else 0
    if candidates > 1 and timeline.references is not None:
        raise SpacetimeError("first_frame_candidates above 1 does not combine with subject references yet; set it "
                             "to 1.")
    run = _WindowRunner(model, vae, sigmas, get_solver(solver), cfg, callback, (len(windows) + first_pass) * steps)
    drift = DriftControl(drift_control and len(windows) > 1)
    if first_pass:
        # The whole first window is sampled and only its first latent frame kept. Why: spacetime-mini moves a given
        # start the prompt's way (89% of held-out movers) but from noise alone mostly leaves its objects where they
        # begin; pinning a start of its own and sampling again turns text to video into image to video (Emu Video
        # factorizes text to video the same way, Girdhar et al. 2023). docs/EMBEDDED.md has the numbers.
        _sample_first_frame(run, timeline, Window(windows[0].frames, new=(0,)), used, positive, negative, fps, seed,
                            candidates)
        windows = _plan(timeline, length, keyframes, overlap_frames, anchors)
    for window in windows:
        _sample_window(run, timeline, window, used, positive, negative, fps, cfg, denoise)
        drift.apply(timeline, window, positive.shot_index(first_new_second(window, fps)))
    notes = []
    if timeline.image_tokens is not None:
        which = "the first and last" if len(timeline.image_tokens) == 2 else "the first"
        notes.append(f"CLIP-vision tokens of {which} known frame in every call")
    if timeline.references is not None:
        notes.append(f"{timeline.references.shape[2]} subject reference(s) beside every window")
    latent = denormalize(timeline.latent, *stats)
    if keyframe_fit and keyframes is not None:
        progress = None if callback is None else lambda done, total: callback(run.total + done, run.total + total, None)
        latent, fitted = fit_keyframes(latent, keyframes, progress=progress)
        notes += [fitted] if fitted else []
    return SampleResult(latent, _describe(used, windows, length, candidates, notes))


def describe_mechanism(model, mechanism: str | None = None) -> str:
    """The sentence a node shows to say how known frames will be applied to this model."""
    used = resolve_mechanism(model, mechanism)
    return f"{used}: {DESCRIPTIONS[used]}"


# ------------------------------------------------------------------ argument checks and defaults

def _check_arguments(cfg, negative, latent_raw, first_frame_candidates) -> None:
    if not math.isfinite(cfg):
        raise SpacetimeError(f"cfg is {cfg}; expected a finite guidance scale such as 5.0 (1 turns guidance off).")
    if cfg != 1 and negative is None:
        raise SpacetimeError(f"cfg {cfg} needs a negative prompt to guide away from; encode one (it may be empty) "
                             "or set cfg to 1.")
    if not (isinstance(first_frame_candidates, int) and 1 <= first_frame_candidates <= MAX_CANDIDATES):
        raise SpacetimeError(f"first_frame_candidates is {first_frame_candidates!r}; expected a whole number from 1 "
                             f"(the seed's own first window) to {MAX_CANDIDATES}.")
    if latent_raw.dim() != 5:
        raise SpacetimeError(f"the latent has shape {tuple(latent_raw.shape)}; expected a video latent "
                             "[B, C, T, H, W] (e.g. from Spacetime Empty Latent Video).")


def _default(config, name: str, fallback):
    """A sampling default of the model (its preset or its file's metadata)."""
    return getattr(config.sampling, name) if config.sampling is not None else fallback


def _plan(timeline: Timeline, length: int, keyframes, overlap_frames, anchors) -> list:
    """The windows to sample; overlap and anchors default to the keyframes' chaining settings (Extend Video's)."""
    frames = len(timeline.strength)
    if overlap_frames is None and keyframes is not None:
        overlap_frames = keyframes.overlap_frames
    overlap = overlap_length(overlap_frames, length) if length < frames else 0
    if anchors is None:
        anchors = keyframes.anchors if keyframes is not None else ()
    pixel_frames = pixel_count(frames)
    anchor_frames = sorted({latent_frame_of(a + pixel_frames if a < 0 else a) for a in anchors})
    return plan_windows(timeline.done.tolist(), length, overlap, anchor_frames, runs_backward(timeline.strength))


# ------------------------------------------------------------------ normalization and the timeline

def _latent_stats(vae, config, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std that normalize this model's latents: the VAE's, else Wan's for a Wan model."""
    if vae is not None:
        return vae.config.latent_mean, vae.config.latent_std
    wan = {16: (WAN21_MEAN, WAN21_STD), 48: (WAN22_MEAN, WAN22_STD)}
    if not config.variant.startswith("wan") or channels not in wan:
        raise SpacetimeError(f"{config.variant} latents are normalized with its own VAE's statistics; pass the VAE "
                             "(vae=, or keyframes made with it).")
    return wan[channels]


def _timeline(latent_raw, keyframes, vae, mechanism, seed, stats) -> Timeline:
    """The whole video on the CPU: input latent, keyframe latents and strengths, and the seed's noise."""
    _, _, frames, height, width = latent_raw.shape
    source = normalize(latent_raw.detach().float().cpu(), *stats)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(source.shape, generator=generator)  # on the CPU, so a seed gives one video everywhere
    strength, known = torch.zeros(frames), torch.zeros_like(source)
    slots = torch.zeros(4, frames) if mechanism == "concat" else None
    if keyframes is not None and keyframes.items:
        keyframes.check_length(pixel_count(frames))
        if mechanism == "concat":  # a latent frame is kept as given only when all its pixel frames are
            slots = keyframes.pixel_strengths(frames)
            strength = slots.amin(0)
        else:
            strength = keyframes.strengths(frames)
        fill = {"concat": "exact", "vace": "gray"}.get(mechanism, "held")
        encoded = keyframes.latents((frames, height, width), fill)  # [1, C, T', H, W]
        known[:, :, :encoded.shape[2]] = encoded
    gray = _gray_latent(vae, (frames, height, width)) if mechanism in ("concat", "vace") else None
    return Timeline(known, strength, strength >= 1, noise, source, gray, slots=slots)


def _image_tokens(config, keyframes, latent_frames: int) -> torch.Tensor | None:
    """CLIP-vision tokens of the known start (and, for FLF2V, end) frame, for the models that cross-attend to them."""
    if not config.has_image_embedding:
        return None
    if keyframes is None or not keyframes.items:
        raise SpacetimeError(f"{config.variant} makes video from a start image and has no text-only mode; connect "
                             "Spacetime Image to Video (with a CLIP vision model) to the sampler's keyframes, or load "
                             "a text-to-video model.")
    return keyframes.image_tokens(pixel_count(latent_frames), first_and_last=bool(config.flf_pos_len))


def _subject_references(mechanism: str, keyframes, timeline: Timeline, seed: int):
    """(normalized latents [1, C, R, H, W] of the subject references, their noise [B, C, R, H, W]), or Nones.

    As Wan's VACE pipeline does, each reference is a latent frame of its own in front of the video's: the DiT
    denoises it with them and reads the reference's latent in the matching VACE control frame (mask 0); the frame
    is then dropped. The noise comes from the seed's stream after the video's, so other videos' noise is unchanged.
    """
    if keyframes is None or not keyframes.references:
        return None, None
    if mechanism != "vace":
        raise SpacetimeError("subject reference images are read by Wan 2.1 VACE models only; load a "
                             "wan2.1_vace_*.safetensors model, or remove Spacetime Subject Reference.")
    _, step_h, step_w = keyframes.vae.config.compression
    height, width = timeline.latent.shape[-2:]
    latents = keyframes.reference_latents((height * step_h, width * step_w))  # at the video's pixel size
    batch, channels = timeline.noise.shape[:2]
    stream = stream_after_video(seed, timeline.noise.shape)
    return latents, torch.randn((batch, channels, *latents.shape[2:]), generator=stream)


def _gray_latent(vae, shape) -> torch.Tensor:
    """Normalized latent [1, C, T, H, W] of an all-gray video, as the reference fills unknown control frames."""
    if vae is None:
        raise SpacetimeError("this model's conditioning needs the VAE (to encode gray control frames); pass vae=.")
    frames, height, width = shape
    _, step_h, step_w = vae.config.compression
    gray = torch.zeros(1, 3, pixel_count(frames), height * step_h, width * step_w)  # 0 is mid-gray in -1..1
    return encode_normalized(vae, gray)


def _window_inputs(timeline: Timeline, window, mechanism, context, negative, device) -> WindowInputs:
    take = timeline.take
    return WindowInputs(
        mechanism=mechanism,
        strength=timeline.window_strength(window).to(device),
        known=take(timeline.latent, window).to(device),
        noise=take(timeline.noise, window).to(device),
        gray=take(timeline.gray, window).to(device) if timeline.gray is not None else None,
        image_tokens=timeline.image_tokens.to(device) if timeline.image_tokens is not None else None,
        slots=timeline.window_slots(window).to(device) if timeline.slots is not None else None,
        references=timeline.references.to(device) if timeline.references is not None else None,
        reference_noise=timeline.reference_noise.to(device) if timeline.references is not None else None,
        context=context.to(device),
        negative=negative.to(device) if negative is not None else None,
    )


# ------------------------------------------------------------------ running one window

def _sample_window(run, timeline: Timeline, window: Window, used, positive, negative, fps, cfg, denoise) -> None:
    """Sample one window and store its new frames (`window.new`) in the timeline."""
    seconds = first_new_second(window, fps)
    inputs = _window_inputs(timeline, window, used, positive.context_at(seconds),
                            None if cfg == 1 else negative.context_at(seconds), run.device)
    start = timeline.take(timeline.source, window) if denoise < 1 else None
    timeline.write(window, run(inputs, start))


def _sample_first_frame(run, timeline: Timeline, window: Window, used, positive, negative, fps, seed,
                        candidates: int) -> None:
    """Text to video's first pass: sample `candidates` first windows per video (the seed's own first), store the
    first latent frame of the one each video's prompt agrees with most (`window.new` is that frame)."""
    seconds = first_new_second(window, fps)
    inputs = _window_inputs(timeline, window, used, positive.context_at(seconds),
                            None if run.cfg == 1 and candidates == 1 else negative.context_at(seconds), run.device)
    batch = inputs.noise.shape[0]
    if candidates > 1:
        stream = stream_after_video(seed, timeline.noise.shape)
        extra = candidate_noise(stream, inputs.noise.shape, candidates - 1)  # [B, candidates - 1, C, t, H, W]
        noise = torch.cat([inputs.noise.cpu()[:, None], extra], dim=1)
        inputs = dataclasses.replace(inputs, noise=noise.flatten(0, 1).to(run.device),
                                     known=inputs.known.repeat_interleave(candidates, dim=0))
    windows = run(inputs, None)  # [B * candidates, C, t, H, W] on the CPU
    if candidates > 1:
        agreement = prompt_agreement(Denoiser(run.model, inputs, run.cfg), windows.to(run.device), stream)
        best = agreement.view(batch, candidates).argmax(1).cpu()
        windows = windows.unflatten(0, (batch, candidates))[torch.arange(batch), best]
    timeline.write(window, windows)


class _WindowRunner:
    """Runs the solver over one window on the model's device and reports progress across all windows."""

    def __init__(self, model, vae, sigmas, solver, cfg, callback, total_steps):
        self.model, self.sigmas, self.solver, self.cfg = model, sigmas, solver, cfg
        self.callback, self.total, self.done = callback, total_steps, 0
        self.factors = preview_factors(vae, model.config.out_dim) if callback is not None else None
        # the first parameter (patch embedding) sits on the compute device even when blocks are swapped to the CPU
        self.device = next(model.dit.parameters()).device

    def __call__(self, inputs: WindowInputs, start: torch.Tensor | None) -> torch.Tensor:
        """The window's denoised latent [B, C, t, H, W]; subject reference frames ride in front and are dropped."""
        sigma0 = float(self.sigmas[0])
        x = inputs.noise if start is None else sigma0 * inputs.noise + (1 - sigma0) * start.to(self.device)
        self.references = 0 if inputs.references is None else inputs.references.shape[2]
        if self.references:
            ref = sigma0 * inputs.reference_noise + (1 - sigma0) * inputs.references
            x = torch.cat([ref, x], dim=2)
        denoiser = Denoiser(self.model, inputs, self.cfg)
        return self.solver(denoiser, x, self.sigmas, callback=self._progress)[:, :, self.references:].cpu()

    def _progress(self, state: dict) -> None:
        self.done += 1
        if self.callback is not None:
            video = state["denoised"][:, :, self.references:]
            self.callback(self.done, self.total, latent_preview(video, *self.factors))


def _describe(mechanism: str, windows, length: int, candidates: int, notes: list[str]) -> str:
    """`candidates`: first windows sampled per video in a first pass (0 when there was none); `notes`: what else
    the model was given."""
    chained = f"{len(windows)} windows of {length} latent frames" if len(windows) > 1 else "one window"
    first = "; first frame sampled first" if candidates else ""
    first += f" (best of {candidates} first windows)" if candidates > 1 else ""
    return "; ".join([f"{mechanism}: {DESCRIPTIONS[mechanism]}", chained + first, *notes])

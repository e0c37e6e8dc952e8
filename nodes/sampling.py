"""Spacetime Sampler: flow-matching sampling of a video latent, with keyframe conditioning and long-video chaining."""
import logging

from ..core.errors import SpacetimeError
from ..core.host import Progress
from ..embedded.world import unfamiliar_request
from ..sampler import FIRST_FRAME_CANDIDATES, MAX_CANDIDATES, SOLVERS, sample

FRAME_ORDERS = ("auto", "first frame first", "all together")
KEYFRAME_FITS = ("auto", "on", "off")


class SpacetimeSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("SPACETIME_MODEL", {"tooltip": "From Spacetime Load Diffusion Model."}),
                "conditioning": ("SPACETIME_CONDITIONING", {"tooltip": "From Spacetime Text Encode."}),
                "latent": ("LATENT", {"tooltip": "The video to fill: Empty Latent Video, Extend Video's latent, or "
                                                 "VAE Encode (with denoise < 1) for video-to-video."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed. Noise is drawn on the CPU, so a seed gives the same video "
                                            "on any device."}),
                "steps": ("INT", {"default": 30, "min": 1, "max": 200, "tooltip":
                    "Denoising steps. Wan upstream uses 50 (40 for I2V); spacetime-mini needs about 20."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip":
                    "Classifier-free guidance scale. 1 skips the negative-prompt pass (twice as fast)."}),
                "shift": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 100.0, "step": 0.1, "tooltip":
                    "Flow-matching sigma shift: higher spends more steps at high noise. 8 for Wan 2.1 in ComfyUI, "
                    "5 for Wan 2.2 TI2V 5B, 12 for Wan 2.2 A14B T2V upstream."}),
                "solver": (list(SOLVERS), {"default": "unipc", "tooltip":
                    "unipc: Wan's default; euler: the simplest, good for few steps; dpmpp_2m: second order."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                    "1 starts from pure noise; lower keeps more of the input latent (video-to-video)."}),
                "fps": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip":
                    "Frame rate of the video: places the shots of a prompt schedule (seconds) on frames."}),
            },
            "optional": {
                "keyframes": ("SPACETIME_KEYFRAMES", {"tooltip":
                    "Known frames from Image to Video, Extend Video or Infill Frames. The sampler keeps them and "
                    "generates the rest, chaining windows when the latent is longer than the model's window."}),
                "vae": ("SPACETIME_VAE", {"tooltip":
                    "The model's VAE: its latent statistics and live preview colours. Needed for spacetime-mini "
                    "unless keyframes are connected; Wan models fall back to Wan's statistics."}),
                "frame_order": (list(FRAME_ORDERS), {"default": "auto", "tooltip":
                    "Text to video only (no frame known). 'first frame first' samples the clip, keeps its first "
                    "frame and samples the clip again from it, as image to video: twice the time, and spacetime-mini "
                    "then moves objects the prompt's way far more often. 'all together' samples every frame at "
                    "once. 'auto' uses the model's default: first frame first for spacetime-mini, all together for "
                    "Wan."}),
                "first_frame_candidates": ("INT", {"default": FIRST_FRAME_CANDIDATES, "min": 1,
                                                   "max": MAX_CANDIDATES, "tooltip":
                    "When the first frame is sampled first: how many first clips to sample (one more pass each, "
                    "batched) before keeping the start of the one the model itself finds its prompt explains best "
                    "(its prediction with the prompt against without). 1 keeps the seed's own. On spacetime-mini 4 "
                    "draws the prompt's colour and direction more often, its shapes and left/right less, in about "
                    "1.4x the time; with Wan each candidate costs a whole clip."}),
                "drift_control": ("BOOLEAN", {"default": True, "tooltip":
                    "Videos longer than one window only: shift each new window so its background keeps the colour "
                    "of its shot's start (each shot of a prompt schedule gets its own once it has settled), "
                    "against the slow colour drift of chained windows. Turn off for a setting that should change "
                    "within a shot, such as a sunset or a camera moving somewhere new."}),
                "keyframe_fit": (list(KEYFRAME_FITS), {"default": "auto", "tooltip":
                    "After sampling, fit each latent frame that holds a single given image (Image to Video, Infill "
                    "Frames; not Extend Video's clip) so the VAE decodes that image there (a few gradient steps "
                    "through the decoder; the other frames stay as sampled). spacetime-mini's VAE softens a keyframe to about 22-26 dB PSNR, fitted about 28-32. "
                    "'auto': on for spacetime-mini; off for Wan, whose much larger VAE loses less and where each "
                    "step is a backward pass through the decoder at full size (seconds and gigabytes)."}),
            },
        }

    RETURN_TYPES = ("LATENT", "STRING")
    RETURN_NAMES = ("latent", "info")
    FUNCTION = "sample"
    CATEGORY = "Spacetime/sampling"
    DESCRIPTION = ("Samples a video latent with flow matching. With keyframes it applies them the way the loaded "
                   "model can (clean per-frame timesteps, channel concat, VACE, or re-noising for plain T2V "
                   "models) and reports which one in 'info', shown on the node after a run with how the prompt was "
                   "read. Shows progress and a latent preview; Cancel stops between steps.")

    def sample(self, model, conditioning, latent, seed, steps, cfg, shift, solver, denoise, fps, keyframes=None,
               vae=None, frame_order="auto", first_frame_candidates=FIRST_FRAME_CANDIDATES, drift_control=True,
               keyframe_fit="auto"):
        with Progress("sampling") as progress:
            result = sample(model, latent["samples"], conditioning, keyframes=keyframes, seed=seed, steps=steps,
                            cfg=cfg, shift=shift, solver=solver, denoise=denoise, fps=fps, callback=progress, vae=vae,
                            first_frame_first=_first_frame_first(model, frame_order),
                            first_frame_candidates=first_frame_candidates, drift_control=drift_control,
                            keyframe_fit=_keyframe_fit(model, keyframe_fit))
        info = "; ".join(filter(None, [result.info, *_request_notes(model, conditioning, latent["samples"])]))
        logging.getLogger(__name__).info("Spacetime Sampler: %s", info)
        return {"ui": {"text": [info]}, "result": ({"samples": result.latent}, info)}  # ui: web/widgets/run_info.js


def _first_frame_first(model, frame_order: str) -> bool:
    return _switch(model, "frame_order", frame_order, FRAME_ORDERS, on="first frame first", default="first_frame_first")


def _keyframe_fit(model, keyframe_fit: str) -> bool:
    return _switch(model, "keyframe_fit", keyframe_fit, KEYFRAME_FITS, on="on", default="keyframe_fit")


def _switch(model, name: str, value: str, choices: tuple[str, ...], on: str, default: str) -> bool:
    """Whether a combo of `choices` turns its option on: `value` == `on`, or for "auto" the model's sampling default
    `default` (off for a model without defaults)."""
    if value not in choices:
        raise SpacetimeError(f"{name} {value!r} is unknown; expected one of {', '.join(choices)}.")
    if value == "auto":
        return model.sampling is not None and getattr(model.sampling, default)
    return value == on


def _request_notes(model, conditioning, latent_raw) -> list[str]:
    """The LoRAs the model ran with, how Text Encode reworded the prompts, and for spacetime-mini what in the request
    its world never showed it."""
    notes = [f"LoRA {lora.describe()} at strength {strength:g}" + ("" if expert == "both" else f" ({expert} expert)")
             for lora, strength, expert in model.loras]
    notes += [f"prompt read as {used!r} (typed: {typed!r})" for typed, used in conditioning.recaptioned]
    if model.config.variant == "spacetime-mini":
        height, width = (8 * n for n in latent_raw.shape[-2:])  # its VAE has Wan 2.1's layout: 8x8 pixels a latent
        notes.append(unfamiliar_request(conditioning.prompts, width, height))
    return notes

"""`generate()`: a prompt (and optionally a start image, a clip to extend, keyframes) -> video frames.

It calls the node functions in the order the example workflows wire them (Text Encode -> Empty Latent Video or
Extend Video -> Image to Video / Infill Frames -> Sampler -> VAE Decode), so the CLI, the quality report and a
workflow in ComfyUI run the same code. Settings left as None take the model's own sampling defaults (for the
bundled spacetime-mini they are stored in its file).
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .core.dit_config import SamplingDefaults
from .core.errors import SpacetimeError
from .core.paths import BUNDLED_FILES
from .core.video import read_mp4
from .nodes.conditioning import (SpacetimeExtendVideo, SpacetimeImageToVideo, SpacetimeInfillFrames,
                                 SpacetimeSubjectReference)
from .nodes.latent import SpacetimeEmptyLatentVideo
from .nodes.loaders import (NO_LOW_NOISE_MODEL, SpacetimeLoadCLIPVision, SpacetimeLoadDiffusionModel,
                            SpacetimeLoadLoRA, SpacetimeLoadTextEncoder, SpacetimeLoadVAE)
from .nodes.sampling import SpacetimeSampler
from .nodes.text import SpacetimeTextEncode
from .nodes.vae_nodes import SpacetimeVAEDecode
from .sampler import FIRST_FRAME_CANDIDATES, frames_for_seconds

# for a model whose file names no defaults: the Spacetime Sampler's and Empty Latent Video's widget defaults
FALLBACK_DEFAULTS = SamplingDefaults(shift=8.0, steps=30, cfg=5.0, fps=16, frames=81, width=832, height=480)


@dataclass(frozen=True)
class ModelFiles:
    """Which files to load: names in the model folders or paths; the defaults are the bundled spacetime-mini."""
    dit: str = BUNDLED_FILES["diffusion_models"]
    text_encoder: str = BUNDLED_FILES["text_encoders"]
    vae: str = BUNDLED_FILES["vae"]
    low_noise_dit: str | None = None
    weight_dtype: str = "default"
    attention: str = "sdpa"
    block_swap: int = 0
    loras: tuple[tuple[str, float, str], ...] = ()  # (file in models/loras or a path, strength, expert)
    clip_vision: str | None = None  # Wan 2.1 I2V / FLF2V 14B: clip_vision_h.safetensors


@dataclass(frozen=True)
class Models:
    """Loaded models, to reuse across several `generate` calls."""
    model: object  # SpacetimeModel
    text_encoder: object  # TextEncoder
    vae: object  # WanVAE
    clip_vision: object = None  # ClipVisionEncoder, for Wan 2.1 I2V / FLF2V 14B


def load_models(files: ModelFiles = ModelFiles()) -> Models:
    """Load the three models (and the DiT's LoRAs, and a CLIP-vision encoder if named) through the loader nodes."""
    low_noise = files.low_noise_dit or NO_LOW_NOISE_MODEL
    model = SpacetimeLoadDiffusionModel().load(files.dit, files.weight_dtype, files.attention, files.block_swap,
                                               low_noise)[0]
    for lora in files.loras:
        model = SpacetimeLoadLoRA().load(model, *lora)[0]
    clip_vision = SpacetimeLoadCLIPVision().load(files.clip_vision)[0] if files.clip_vision else None
    return Models(model, SpacetimeLoadTextEncoder().load(files.text_encoder)[0], SpacetimeLoadVAE().load(files.vae)[0],
                  clip_vision)


@dataclass(frozen=True)
class Generation:
    """The video ([T, H, W, 3] in 0..1), its frame rate, what the sampler did, and the settings used."""
    frames: torch.Tensor
    fps: float
    info: str
    settings: dict = field(default_factory=dict)


def generate(prompt: str, negative: str = "", image=None, extend=None, direction: str = "forward", keyframes=(),
             references=(), seconds: float | None = None, frames: int | None = None, fps: float | None = None,
             size=None, seed: int = 0, steps: int | None = None, cfg: float | None = None, shift: float | None = None,
             solver: str | None = None, models: Models | None = None, context_frames: int = 0,
             anchor_first_frame: bool = False, frame_order: str = "auto",
             first_frame_candidates: int = FIRST_FRAME_CANDIDATES, recaption: bool = True,
             drift_control: bool = True, keyframe_fit: str = "auto") -> Generation:
    """Generate a video; `image`, `extend` and keyframe images may be paths or IMAGE tensors.

    `extend`: a clip to extend by `seconds` in `direction`, at its size (and its frame rate unless `fps`).
    `keyframes`: (pixel frame index, image) pairs. `references`: subject reference images (VACE models only).
    `size`: (width, height) or "WxH". Length: `frames`, else `seconds` at `fps`, else the model's default.
    `frame_order`, `first_frame_candidates` (text to video only), `drift_control` (chained windows only) and
    `keyframe_fit` (with keyframes only): as the Sampler node's. `recaption`: as Text Encode's (spacetime-mini's
    prompts into its caption wording).
    """
    models = models or load_models()
    defaults = models.model.sampling or FALLBACK_DEFAULTS
    conditioning = SpacetimeTextEncode().encode(models.text_encoder, prompt, negative, recaption)[0]
    if extend is not None:
        clip, clip_fps = _video(extend)
        fps = fps or clip_fps or defaults.fps
        latent, known = SpacetimeExtendVideo().build(models.vae, clip, direction, seconds or defaults.frames / fps,
                                                     fps, context_frames, anchor_first_frame, models.clip_vision)
    else:
        fps = fps or defaults.fps
        width, height = parse_size(size) if size is not None else (defaults.width, defaults.height)
        length = frames or (frames_for_seconds(seconds, fps) if seconds else defaults.frames)
        latent, known = SpacetimeEmptyLatentVideo().generate(models.vae, width, height, length, 1)[0], None
    length = 4 * (latent["samples"].shape[2] - 1) + 1  # pixel frames of the latent, 4k+1
    known = _add_keyframes(models, known, image, keyframes, length, fps)
    for picture in references:
        known = SpacetimeSubjectReference().build(models.vae, load_image(picture), known)[0]
    settings = dict(seed=seed, steps=steps or defaults.steps, cfg=defaults.cfg if cfg is None else cfg,
                    shift=shift or defaults.shift, solver=solver or defaults.sampler, frame_order=frame_order,
                    first_frame_candidates=first_frame_candidates, drift_control=drift_control,
                    keyframe_fit=keyframe_fit)
    sampled, info = SpacetimeSampler().sample(models.model, conditioning, latent, denoise=1.0, fps=fps,
                                              keyframes=known, vae=models.vae, **settings)["result"]
    video = SpacetimeVAEDecode().decode(models.vae, sampled, False, 256, 64, 0)[0]
    return Generation(video, float(fps), info, {**settings, "frames": length, "fps": fps, "prompt": prompt})


def _add_keyframes(models: Models, known, image, keyframes, length: int, fps: float):
    """Chain a start image (Image to Video) and each (index, image) keyframe (Infill Frames) onto `known`."""
    vae, clip_vision = models.vae, models.clip_vision
    if image is not None:
        known = SpacetimeImageToVideo().build(vae, load_image(image), 1.0, known, clip_vision)[0]
    for index, picture in keyframes:
        known = SpacetimeInfillFrames().build(vae, load_image(picture), str(index), length, fps, 1.0, known,
                                              clip_vision)[0]
    return known


def parse_size(size) -> tuple[int, int]:
    """(width, height) from "WxH" or a pair."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise SpacetimeError(f"size '{size}' is not WIDTHxHEIGHT; expected e.g. 832x480 or 64x64")
        return int(parts[0]), int(parts[1])
    width, height = size
    return int(width), int(height)


def load_image(image) -> torch.Tensor:
    """An IMAGE [1, H, W, 3] in 0..1 from a path (any format PIL reads; alpha dropped) or an IMAGE tensor."""
    if isinstance(image, torch.Tensor):
        return image if image.ndim == 4 else image[None]
    path = Path(image).expanduser()
    if not path.is_file():
        raise SpacetimeError(f"image {path} does not exist; expected a PNG or JPEG file; check the path")
    try:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    except OSError as err:
        raise SpacetimeError(f"{path} could not be read as an image ({err}); expected a PNG or JPEG file") from err
    return torch.from_numpy(pixels)[None]


def _video(video) -> tuple[torch.Tensor, float | None]:
    """IMAGE frames and fps (None for a tensor, whose rate is not known) from a path or IMAGE frames."""
    if isinstance(video, torch.Tensor):
        return video, None
    return read_mp4(video)

"""Spacetime conditioning: keyframes (known pixel frames at frame indices) and the prompt schedule (multi-shot).

Dimensions: pixel frames F = 4(T-1)+1 for T latent frames; pixel frame p lives in latent frame (p+3)//4 (frame 0 alone
in latent frame 0, then groups of 4: latent frame j >= 1 holds pixel frames 4j-3..4j).

A keyframe pins whole latent frames, because the DiT sees nothing finer: every pixel frame 4j-3..4j of a pinned
latent frame j shows the nearest given frame inside it. A single image at pixel frame 30 therefore makes frames
29..32 all that image; a clip of 4k+1 frames starting at 0 maps exactly onto latent frames 0..k.
"""
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import SpacetimeError

RESIZE_POLICY = ("a keyframe image of another size is centre-cropped to the video's aspect ratio, then resized "
                 "(bilinear, antialiased) to the video's size")
FRAME_POLICY = ("frame indices are pixel frames (negative counts from the end); a keyframe pins its whole latent "
                "frame of 4 pixel frames (4j-3..4j; channel-concat models such as Wan 2.1 I2V / FLF2V take just its "
                "own frame), so two keyframes must be at least one latent frame apart")
GRAY = 0.5  # unknown frames in channel-concat and VACE control videos, as the reference pipelines fill them


# ------------------------------------------------------------------ frame arithmetic

def latent_frame_of(pixel: int) -> int:
    """The latent frame holding pixel frame `pixel` (Wan's causal 4x temporal compression)."""
    return (pixel + 3) // 4


def latent_count(pixel_frames: int) -> int:
    return (pixel_frames - 1) // 4 + 1


def pixel_count(latent_frames: int) -> int:
    return 4 * (latent_frames - 1) + 1


def pixel_span(latent: int) -> range:
    """Pixel frames of latent frame `latent`: [0] for 0, else 4j-3..4j."""
    return range(0, 1) if latent == 0 else range(4 * latent - 3, 4 * latent + 1)


# ------------------------------------------------------------------ keyframes

def check_images(p, what: str) -> None:
    """Raise unless `p` is a ComfyUI IMAGE batch [n, H, W, 3] in 0..1 with at least one image."""
    if not isinstance(p, torch.Tensor) or p.dim() != 4 or p.shape[-1] != 3 or p.shape[0] < 1:
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        raise SpacetimeError(f"a {what} image has shape {shape}; expected an IMAGE batch [n, H, W, 3] "
                             "with at least one frame (drop an alpha channel first).")
    if not torch.isfinite(p).all() or p.min() < -1e-3 or p.max() > 1 + 1e-3:
        raise SpacetimeError(f"{what} pixels span {p.min().item():.3g}..{p.max().item():.3g}; expected 0..1 "
                             "(a ComfyUI IMAGE); divide 8-bit images by 255.")


@dataclass(frozen=True, eq=False)
class Keyframe:
    """`pixels` [n, H, W, 3] in 0..1: n consecutive frames, the first at pixel frame `index` (negative: from the end).

    `strength` 1 pins the frames to the end; s < 1 pins them only while the noise level is above 1 - s, after which
    the model refines them freely (like image-to-image with denoise 1 - s); 0 has no effect.
    """
    pixels: torch.Tensor
    index: int
    strength: float = 1.0

    def __post_init__(self):
        check_images(self.pixels, "keyframe")
        if not isinstance(self.index, int) or isinstance(self.index, bool):
            raise SpacetimeError(f"keyframe index {self.index!r} is not an integer pixel frame.")
        if not 0.0 <= self.strength <= 1.0:
            raise SpacetimeError(f"keyframe strength is {self.strength}; expected 0..1 (1 pins the frame exactly).")

    def start(self, frames: int) -> int:
        """The first pixel frame in a video of `frames` frames; raises if the keyframe does not fit inside."""
        start = self.index + frames if self.index < 0 else self.index
        n = self.pixels.shape[0]
        if start < 0 or start + n > frames:
            raise SpacetimeError(
                f"keyframe index {self.index} with {n} frame(s) covers pixel frames {start}..{start + n - 1}, outside "
                f"the video's frames 0..{frames - 1}; use an index from {-frames} to {frames - n}.")
        return start


class Keyframes:
    """Known frames of one video and the VAE that turns them into latents (the SPACETIME_KEYFRAMES node type).

    `length` (pixel frames), when known, checks the placement now rather than at sampling. `overlap_frames` and
    `anchors` (pixel frames of keyframes kept in every window) are chaining settings for long videos that travel
    with the keyframes (Extend Video sets them); `sample()` arguments override them. `clip_vision` (a
    ClipVisionEncoder) makes the image tokens Wan 2.1 I2V / FLF2V also take; other models ignore it.
    `references`: subject reference images [1, H, W, 3], which VACE models see beside every window (not frames of
    the video: they keep a subject's look across windows and shots).
    """

    def __init__(self, items, vae, length: int | None = None, overlap_frames: int | None = None, anchors=(),
                 clip_vision=None, references=()):
        self.items = tuple(items)
        if not all(isinstance(item, Keyframe) for item in self.items):
            raise SpacetimeError("Keyframes takes Keyframe items; build each with Keyframe(pixels, index, strength).")
        self.vae, self.length, self.clip_vision = vae, length, clip_vision
        self.references = tuple(references)
        self.overlap_frames, self.anchors = overlap_frames, tuple(anchors)
        if length is not None:
            self.check_length(length)

    @classmethod
    def from_images(cls, vae, images: torch.Tensor, indices, strength: float = 1.0, base: "Keyframes | None" = None,
                    length: int | None = None, clip_vision=None) -> "Keyframes":
        """One single-frame keyframe per image of the batch `images` [n, H, W, 3], at `indices`, added to `base`."""
        indices = list(indices)
        if len(indices) != images.shape[0]:
            raise SpacetimeError(f"{images.shape[0]} image(s) but {len(indices)} frame index(es) ({indices}); "
                                 "give one index per image, in the batch's order.")
        items = [Keyframe(images[i:i + 1], index, strength) for i, index in enumerate(indices)]
        return cls((base.items if base else ()) + tuple(items), vae, length or (base.length if base else None),
                   base.overlap_frames if base else None, base.anchors if base else (),
                   clip_vision or (base.clip_vision if base else None), base.references if base else ())

    @classmethod
    def extension(cls, vae, video: torch.Tensor, direction: str, add_seconds: float, fps: float,
                  context_frames: int | None = None, anchor_first_frame: bool = False, clip_vision=None):
        """Extend the clip `video` [N, H, W, 3] forwards or backwards by `add_seconds`.

        Returns (raw zero latent [1, C, T, H, W] covering clip + extension, keyframes holding the whole clip).
        The total length is rounded up to 4k+1 frames; `context_frames` is the overlap between chained windows.
        """
        if direction not in ("forward", "backward"):
            raise SpacetimeError(f"extension direction {direction!r} is unknown; expected 'forward' or 'backward'.")
        clip = video.shape[0]
        frames = pixel_count(latent_count(clip + round(add_seconds * fps) + 3))  # round up to 4k+1
        index = 0 if direction == "forward" else frames - clip
        keyframes = cls([Keyframe(video, index)], vae, frames, context_frames, (index,) if anchor_first_frame else (),
                        clip_vision)
        return empty_latent(vae, frames, video.shape[1:3]), keyframes

    def plus(self, other: "Keyframes") -> "Keyframes":
        """These keyframes and `other`'s (chaining nodes); the VAE must be the same object."""
        if other.vae is not self.vae:
            raise SpacetimeError("chained keyframes were encoded for different VAEs; connect the same VAE to each node.")
        return Keyframes(self.items + other.items, self.vae, self.length or other.length,
                         self.overlap_frames or other.overlap_frames, self.anchors + other.anchors,
                         self.clip_vision or other.clip_vision, self.references + other.references)

    def with_references(self, images: torch.Tensor) -> "Keyframes":
        """These keyframes plus each image of the batch `images` [n, H, W, 3] as a subject reference."""
        check_images(images, "subject reference")
        references = tuple(images[i:i + 1] for i in range(images.shape[0]))
        return Keyframes(self.items, self.vae, self.length, self.overlap_frames, self.anchors, self.clip_vision,
                         self.references + references)

    def reference_latents(self, size: tuple[int, int]) -> torch.Tensor:
        """Normalized latents [1, C, R, h, w] of the R subject references, each encoded alone as a one-frame video
        at the video's pixel size (H, W), centre-cropped to its aspect like a keyframe."""
        pixels = [fit_to_size(image, size).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1 for image in self.references]
        return torch.cat([encode_normalized(self.vae, video) for video in pixels], dim=2)

    def check_length(self, frames: int) -> None:
        """Raise when the keyframes were made for another length or do not fit a video of `frames` frames."""
        if self.length is not None and frames != self.length:
            raise SpacetimeError(f"the keyframes were placed in a {self.length}-frame video but the latent has "
                                 f"{frames} frames; make the Empty Latent Video {self.length} frames long.")
        self.placed(frames)

    def placed(self, frames: int) -> list[tuple[int, Keyframe]]:
        """(first pixel frame, keyframe) sorted by frame; raises when two keyframes share a latent frame."""
        placed = sorted(((item.start(frames), item) for item in self.items), key=lambda pair: pair[0])
        for (a, first), (b, second) in zip(placed, placed[1:]):
            last_a = latent_frame_of(a + first.pixels.shape[0] - 1)
            if latent_frame_of(b) <= last_a:
                raise SpacetimeError(
                    f"keyframes at pixel frames {a} and {b} both fall in latent frame {last_a} (pixel frames "
                    f"{pixel_span(last_a).start}..{pixel_span(last_a).stop - 1}); {FRAME_POLICY}. Move the second to "
                    f"frame {pixel_span(last_a).stop} or later, or join them into one clip.")
        return placed

    def pinned_images(self, frames: int, size: tuple[int, int]) -> dict[int, torch.Tensor]:
        """{pixel frame: image [H, W, 3] in 0..1 at the video's size (H, W)} for the single images of strength 1 (the
        sampler keeps them to the end); clips, such as the one Extend Video extends, are left out."""
        return {start: fit_to_size(item.pixels, size)[0] for start, item in self.placed(frames)
                if item.strength == 1.0 and item.pixels.shape[0] == 1}

    def image_tokens(self, frames: int, first_and_last: bool = False) -> torch.Tensor:
        """CLIP-vision tokens [1, L, D] of the first known frame, or [2, L, D] of the first and the last (FLF2V)."""
        if self.clip_vision is None:
            raise SpacetimeError("this model also reads the start image through CLIP vision: load "
                                 "clip_vision_h.safetensors with Spacetime Load CLIP Vision and connect it to the "
                                 "clip_vision input of Image to Video (or Infill Frames / Extend Video).")
        placed = self.placed(frames)
        images = [placed[0][1].pixels[:1]]
        if first_and_last:
            if placed[-1][0] + placed[-1][1].pixels.shape[0] < frames:
                raise SpacetimeError("a first-last-frame model (Wan 2.1 FLF2V) needs the video's last frame too: give "
                                     "Infill Frames the first and last images at frame indices 0,-1.")
            images.append(placed[-1][1].pixels[-1:])
        return torch.cat([self.clip_vision.encode(image) for image in images])  # images may differ in size

    def pixel_strengths(self, latent_frames: int) -> torch.Tensor:
        """[4, T]: per latent frame, the strength of the keyframe giving each of its 4 pixel frames (0 where none),
        the mask channel-concat models take; latent frame 0 holds pixel frame 0 alone, in all 4 of its slots."""
        out = torch.zeros(4, latent_frames)
        for start, item in self.placed(pixel_count(latent_frames)):
            for pixel in range(start, start + item.pixels.shape[0]):
                latent = latent_frame_of(pixel)
                slots = slice(None) if latent == 0 else pixel - pixel_span(latent).start
                out[slots, latent] = item.strength
        return out

    def strengths(self, latent_frames: int) -> torch.Tensor:
        """Per latent frame: the strength of the keyframe pinning it, 0 where none does. [T] float32."""
        out = torch.zeros(latent_frames)
        for start, item in self.placed(pixel_count(latent_frames)):
            out[latent_frame_of(start):latent_frame_of(start + item.pixels.shape[0] - 1) + 1] = item.strength
        return out

    def latents(self, shape: tuple[int, int, int], fill: str) -> torch.Tensor:
        """Normalized latents [1, C, T', H, W] of the video holding the keyframes, T' up to the last pinned frame.

        `fill` says what the unknown pixel frames of that video are: "held" (the last known frame before them,
        so that causal latents of a known prefix are exact), "gray" except in a pinned latent frame, which shows its
        keyframe throughout (VACE), or "exact": gray wherever no frame is given (channel concat, as Wan's reference
        builds its image video: a last frame alone in its latent frame is [gray, gray, gray, last]).
        """
        t, h, w = shape
        stride = self.vae.config.compression
        video = self._pixel_video(t, (h * stride[1], w * stride[2]), fill)  # [F', H, W, 3]
        pixels = video.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1  # [1, 3, F', H, W] in -1..1
        return encode_normalized(self.vae, pixels)

    def _pixel_video(self, latent_frames: int, size: tuple[int, int], fill: str) -> torch.Tensor:
        """[F', H, W, 3] pixels up to the last pinned latent frame, built from the keyframes' frames."""
        frames = pixel_count(latent_frames)
        given = {}
        for start, item in self.placed(frames):
            resized = fit_to_size(item.pixels, size)
            given.update({start + i: resized[i] for i in range(resized.shape[0])})
        sources = _frame_sources(sorted(given), latent_frame_of(max(given)) + 1, fill)
        gray = torch.full((*size, 3), GRAY)
        return torch.stack([gray if s is None else given[s] for s in sources])


def _frame_sources(given: list[int], latent_frames: int, fill: str) -> list[int | None]:
    """For each pixel frame, which given frame it shows (None = gray)."""
    if fill == "exact":
        return [p if p in given else None for p in range(pixel_count(latent_frames))]
    sources, last_known = [], None
    for j in range(latent_frames):
        inside = [p for p in given if p in pixel_span(j)]
        for p in pixel_span(j):
            if inside:
                sources.append(max((q for q in inside if q <= p), default=inside[0]))
            else:
                sources.append(last_known if fill == "held" else None)
        last_known = inside[-1] if inside else last_known
    if fill == "held":  # frames before the first keyframe hold the first keyframe
        sources = [given[0] if s is None else s for s in sources]
    return sources


def encode_normalized(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels [1, 3, F, H, W] in -1..1 -> normalized latents on the CPU, encoded on the VAE's device."""
    with torch.no_grad():
        return vae.normalize(vae.encode(pixels)).cpu()


def empty_latent(vae, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """A raw zero latent [1, C, T, H, W] for `frames` pixel frames of `size` (H, W) pixels."""
    step_t, step_h, step_w = vae.config.compression
    height, width = size
    if height % (2 * step_h) or width % (2 * step_w):  # the DiT cuts latents into 2x2 patches
        near = (max(1, round(width / (2 * step_w))) * 2 * step_w, max(1, round(height / (2 * step_h))) * 2 * step_h)
        raise SpacetimeError(f"the clip is {width}x{height}; this model needs multiples of {2 * step_w}x{2 * step_h}: "
                             f"resize or crop it to {near[0]}x{near[1]} first.")
    return torch.zeros(1, vae.config.latent_channels, latent_count(frames), height // step_h, width // step_w)


def fit_to_size(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[n, h, w, 3] -> [n, H, W, 3]: centre-crop to the target aspect, then bilinear antialiased resize."""
    height, width = size
    h, w = pixels.shape[1:3]
    if (h, w) == (height, width):
        return pixels.float()
    crop_h, crop_w = min(h, round(w * height / width)), min(w, round(h * width / height))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    cropped = pixels[:, top:top + crop_h, left:left + crop_w].permute(0, 3, 1, 2).float()  # [n, 3, h', w']
    resized = F.interpolate(cropped, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1).permute(0, 2, 3, 1)  # [n, H, W, 3]


# ------------------------------------------------------------------ prompt schedule

_SHOT_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*:\s*(.*)$")


def parse_prompt_schedule(text: str) -> list[tuple[float, str]]:
    """One prompt, or one shot per line as "<start seconds>: prompt" -> [(start seconds, prompt)], starting at 0."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise SpacetimeError("the prompt is empty; describe the video (or one shot per line as '0: ...', '20: ...').")
    if not _SHOT_LINE.match(lines[0]):
        return [(0.0, " ".join(lines))]
    shots = []
    for line in lines:
        match = _SHOT_LINE.match(line)
        if not match or not match.group(2).strip():
            raise SpacetimeError(f"prompt line {line!r} is not a shot; with a multi-shot prompt every line must be "
                                 "'<start seconds>: prompt', e.g. '0: a red ball' then '20: a blue ball'.")
        shots.append((float(match.group(1)), match.group(2).strip()))
    _check_starts([start for start, _ in shots])
    return shots


def _check_starts(starts: list[float]) -> None:
    if starts[0] != 0:
        raise SpacetimeError(f"the first shot starts at {starts[0]:g} s; the video starts at 0 s: begin with '0: ...'.")
    for a, b in zip(starts, starts[1:]):
        if b <= a:
            raise SpacetimeError(f"shot starts must increase; {b:g} s follows {a:g} s. Order the lines by time.")


class TextConditioning:
    """Encoded prompts over time (the SPACETIME_CONDITIONING node type).

    `schedule`: [(start seconds, context [1, L, D], prompt)], the first starting at 0. `negative`, when set, is the
    conditioning classifier-free guidance steers away from (`sample()` uses it unless given another).
    `recaptioned`: (as typed, as encoded) for each shot whose prompt was rewritten before encoding.
    """

    def __init__(self, schedule, negative: "TextConditioning | None" = None, recaptioned=()):
        self.schedule = tuple((float(start), context, prompt) for start, context, prompt in schedule)
        self.negative = negative
        self.recaptioned = tuple(recaptioned)
        if not self.schedule:
            raise SpacetimeError("a text conditioning needs at least one prompt.")
        for _, context, prompt in self.schedule:
            if context.dim() != 3 or context.shape[0] != 1:
                raise SpacetimeError(f"the context for {prompt!r} has shape {tuple(context.shape)}; "
                                     "expected [1, L, D] from TextEncoder.encode.")
        _check_starts([start for start, _, _ in self.schedule])

    @classmethod
    def encode(cls, text_encoder, text: str, negative_prompt: str | None = None,
               recaption=None) -> "TextConditioning":
        """Parse `text` (one prompt or one shot per line), encode each shot, and the negative prompt (may be "").

        `recaption`: prompt -> prompt, applied to each shot before encoding (the negative prompt stays as typed).
        """
        shots = parse_prompt_schedule(text)
        encoded = [(start, recaption(prompt) if recaption else prompt) for start, prompt in shots]
        rewritten = [(typed, used) for (_, typed), (_, used) in zip(shots, encoded) if typed != used]
        negative = None
        if negative_prompt is not None:
            negative = cls([(0.0, text_encoder.encode([negative_prompt]), negative_prompt)])
        return cls([(start, text_encoder.encode([prompt]), prompt) for start, prompt in encoded], negative, rewritten)

    def context_at(self, seconds: float) -> torch.Tensor:
        """The context of the shot running at `seconds`."""
        return self.schedule[self.shot_index(seconds)][1]

    def shot_index(self, seconds: float) -> int:
        """Which shot runs at `seconds` (the last one starting at or before it)."""
        return sum(start <= seconds + 1e-9 for start, _, _ in self.schedule) - 1

    @property
    def prompts(self) -> list[str]:
        return [prompt for _, _, prompt in self.schedule]

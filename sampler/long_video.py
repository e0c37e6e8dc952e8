"""Long video: a video longer than the model's window is sampled as a chain of windows, one at a time.

Each window has the model's native length. It starts `overlap` latent frames before the first frame not yet
generated, so it sees the end of the previous window as known frames; windows whose frames are all known are
skipped; when the only keyframes are at the end (backward extension) the chain runs right to left. Anchor frames
(e.g. the first keyframe) are added to every window that does not contain them, at its far end from the new
frames, so the subject stays itself. Each window takes the prompt of the shot running at its first new frame.

Drift control: the new frames of every later window of a shot are shifted, channel by channel, so that their
latent median sits at the shot's reference, so the background's colour and brightness do not wander over a minute.
A median is the background's level whatever the objects do (they cover a few percent of a frame), and a shift
leaves contrast alone: matching mean and std instead, as the pack first did, let a new object move the background
and rescaled each window's artefacts into the next, and a three-shot minute drifted 3-5x as far. The first shot's
reference is its first window (known and generated frames). A new prompt may change the setting, which takes the
DiT a while (the bundled model turned a blue background black over 24 frames), so a later shot's windows are left
free for its first `SETTLE_LATENT_FRAMES` and its reference is the new frames of the first window past them
(docs/EMBEDDED.md).

The whole video lives on the CPU (`Timeline`); only one window at a time is on the compute device.
"""
import math
from dataclasses import dataclass

import torch

from ..core.errors import SpacetimeError
from .conditioning import latent_count, pixel_span

MAX_SECONDS = 60
# latent frames of a later shot left to the DiT before drift control holds the shot: three of the bundled model's
# windows (an earlier set took 6-10 latent frames to change a setting; the present one, turning blue to black, up to
# 12: held from the 8th on, one seed of three stayed dark blue), less than one of a Wan model's 81-frame windows
SETTLE_LATENT_FRAMES = 12


def frames_for_seconds(seconds: float, fps: float) -> int:
    """Pixel frames (4k+1) spanning `seconds` at `fps`, both ends included: 60 s at 16 fps -> 961."""
    if not 0 < seconds <= MAX_SECONDS:
        raise SpacetimeError(f"video length {seconds} s is outside 0..{MAX_SECONDS} s; ask for at most a minute.")
    return 4 * math.ceil(seconds * fps / 4 - 1e-9) + 1


def window_length(window_frames: int, total: int) -> int:
    """Latent frames per window for a native window of `window_frames` pixel frames (the whole video if shorter)."""
    if window_frames < 5 or (window_frames - 1) % 4:
        raise SpacetimeError(f"window_frames is {window_frames}; expected 4k+1 pixel frames with k >= 1 (e.g. 17, 81).")
    return min(total, latent_count(window_frames))


def overlap_length(overlap_frames: int | None, window: int) -> int:
    """Latent frames shared by consecutive windows: `overlap_frames` pixel frames rounded up, default a quarter."""
    overlap = max(1, window // 4) if overlap_frames is None else math.ceil(overlap_frames / 4)
    if not 1 <= overlap < window:
        raise SpacetimeError(f"an overlap of {overlap_frames} frames ({overlap} latent frames) does not fit a window "
                             f"of {window} latent frames; use 1..{4 * (window - 1)} frames.")
    return overlap


# ------------------------------------------------------------------ planning

@dataclass(frozen=True)
class Window:
    """Global latent frames of one window in the order the model sees them (anchor slots included), and the
    frames it writes (those not generated or fully known before it)."""
    frames: tuple[int, ...]
    new: tuple[int, ...]


def plan_windows(done: list[bool], length: int, overlap: int, anchors=(), reverse: bool = False) -> list[Window]:
    """Windows of `length` latent frames covering every frame not `done`, in sampling order."""
    if overlap + len(anchors) >= length:
        raise SpacetimeError(f"a window of {length} latent frames cannot hold an overlap of {overlap} plus "
                             f"{len(anchors)} anchor frame(s); lower the overlap or drop anchors.")
    done, total = list(done), len(done)
    order = list(range(total))[::-1] if reverse else list(range(total))
    windows = []
    while not all(done):
        frontier = next(pos for pos, frame in enumerate(order) if not done[frame])
        tentative = order[max(0, frontier - overlap):][:length]
        span = _span(order, frontier, length - len(_outside(anchors, tentative)), overlap)
        outside = _outside(anchors, span)
        frames = span + outside if reverse else outside + span
        windows.append(Window(tuple(frames), tuple(f for f in span if not done[f])))
        for frame in span:
            done[frame] = True
    return windows


def _span(order: list[int], frontier: int, size: int, overlap: int) -> list[int]:
    """`size` frames of `order` starting `overlap` before the frontier, pulled back to end at the video's end."""
    end = min(len(order), max(0, frontier - overlap) + size)
    return sorted(order[max(0, end - size):end])


def _outside(anchors, span) -> list[int]:
    return [a for a in anchors if a not in span]


def runs_backward(strength: torch.Tensor) -> bool:
    """Backward extension: keyframes exist, the first frame is unknown and the last one known."""
    return bool(strength[0] == 0 and strength[-1] > 0)


# ------------------------------------------------------------------ the whole video on the CPU

@dataclass
class Timeline:
    """A video's normalized latents on the CPU while its windows are sampled ([B, C, T, H, W] unless noted)."""
    latent: torch.Tensor  # keyframe latents, then generated frames as windows finish
    strength: torch.Tensor  # [T] keyframe strength, 0 where unknown
    done: torch.Tensor  # [T] bool: generated, or pinned by a strength-1 keyframe
    noise: torch.Tensor
    source: torch.Tensor  # the input latent, partially kept when denoise < 1
    gray: torch.Tensor | None  # [1, C, T, H, W] latent of an all-gray video (concat / VACE)
    image_tokens: torch.Tensor | None = None  # [1 or 2, L, 1280] CLIP-vision tokens (Wan 2.1 I2V / FLF2V)
    slots: torch.Tensor | None = None  # [4, T] channel concat: strength of each latent frame's 4 pixel frames
    references: torch.Tensor | None = None  # [1, C, R, H, W] VACE subject references, seen beside every window
    reference_noise: torch.Tensor | None = None  # [B, C, R, H, W] their frames' starting noise

    def window_strength(self, window: Window) -> torch.Tensor:
        """[t] strength inside a window: generated frames and anchors are pinned fully."""
        index = torch.tensor(window.frames)
        return torch.where(self.done[index], torch.ones(()), self.strength[index])

    def window_slots(self, window: Window) -> torch.Tensor:
        """[4, t] pixel-frame strengths inside a window (channel concat): generated frames are given whole."""
        index = torch.tensor(window.frames)
        return torch.where(self.done[index], torch.ones(()), self.slots[:, index])

    def take(self, tensor: torch.Tensor, window: Window) -> torch.Tensor:
        return tensor[:, :, list(window.frames)]  # [., C, t, H, W]

    def write(self, window: Window, x: torch.Tensor) -> None:
        """Store the window's new frames ([B, C, t, H, W] in window order) and mark them done."""
        positions = [window.frames.index(f) for f in window.new]
        self.latent[:, :, list(window.new)] = x[:, :, positions].cpu()
        self.done[list(window.new)] = True


def first_new_second(window: Window, fps: float) -> float:
    """When a window's first new frame is shown."""
    return pixel_span(min(window.new)).start / fps


# ------------------------------------------------------------------ drift control

def channel_medians(latent: torch.Tensor) -> torch.Tensor:
    """Per-video, per-channel median over (T, H, W): [B, C, 1, 1, 1]."""
    return latent.flatten(2).median(-1).values[..., None, None, None]


class DriftControl:
    """Keeps the windows of each shot at the per-channel latent median of the shot's reference window."""

    def __init__(self, enabled: bool):
        self.enabled, self.shot, self.shot_start, self.reference = enabled, None, 0, None

    def apply(self, timeline: Timeline, window: Window, shot: int) -> None:
        """Called after each window is sampled, in sampling order; `shot`: the index of the window's shot."""
        if not self.enabled:
            return
        first_window = self.shot is None
        new = list(window.new)
        if shot != self.shot:
            self.shot, self.shot_start, self.reference = shot, new[0], None
        if self.reference is None:
            if first_window:
                self.reference = channel_medians(timeline.take(timeline.latent, window))
            elif abs(new[0] - self.shot_start) >= SETTLE_LATENT_FRAMES:  # abs: backward runs go right to left
                self.reference = channel_medians(timeline.latent[:, :, new])
            return
        timeline.latent[:, :, new] += self.reference - channel_medians(timeline.latent[:, :, new])

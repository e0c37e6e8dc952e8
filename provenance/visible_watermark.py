"""Visible watermark: a text or PNG mark, alpha-blended, that glides around the frame over the clip.

A mark that moves cannot be removed with one static inpainting mask, and it never sits on the same part of
the picture for the whole clip. Frames are ComfyUI IMAGE [T, H, W, 3] in 0..1; the mark is h x w pixels.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from ..core.errors import SpacetimeError


@dataclass(frozen=True)
class VisibleMarkConfig:
    opacity: float = 0.6  # how strongly the mark covers the picture where its alpha is 1
    height_fraction: float = 0.07  # mark height as a share of the frame height
    min_height_px: int = 8  # below this, text is unreadable
    margin_fraction: float = 0.03  # distance kept from the frame border, as a share of the short side
    sweeps: tuple[float, float] = (1.0, 1.5)  # horizontal and vertical back-and-forth sweeps over the clip


DEFAULT_VISIBLE = VisibleMarkConfig()


def add_visible_watermark(frames: torch.Tensor, text: str = "AI-generated", image: str | Path | None = None,
                          config: VisibleMarkConfig = DEFAULT_VISIBLE) -> torch.Tensor:
    """Blend `text` (or the PNG at `image`, using its alpha) onto every frame, moving it over the clip."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise SpacetimeError(f"frames have shape {tuple(frames.shape)}; expected IMAGE [T, H, W, 3] in 0..1")
    t, h, w, _ = frames.shape
    height = max(config.min_height_px, round(h * config.height_fraction))
    mark = _image_mark(Path(image), height) if image else _text_mark(text, height)
    mark = _fit(mark, h, w)
    rgb, alpha = mark[..., :3].to(frames), mark[..., 3:].to(frames) * config.opacity  # (h, w, 3), (h, w, 1)
    out = frames.clone()
    for index, (top, left) in enumerate(_positions(t, h, w, mark.shape[0], mark.shape[1], config)):
        region = out[index, top:top + mark.shape[0], left:left + mark.shape[1]]
        region.mul_(1 - alpha).add_(rgb * alpha)
    return out


def _positions(t: int, h: int, w: int, mark_h: int, mark_w: int, config: VisibleMarkConfig):
    """(top, left) per frame on a bouncing path; frame 0 starts at the bottom-right corner."""
    margin = round(min(h, w) * config.margin_fraction)
    span_y, span_x = max(0, h - mark_h - 2 * margin), max(0, w - mark_w - 2 * margin)
    for index in range(t):
        progress = index / max(1, t - 1)
        left = margin + round(span_x * _triangle(0.5 + config.sweeps[0] * progress / 2))
        top = margin + round(span_y * _triangle(0.5 + config.sweeps[1] * progress / 2))
        yield min(top, h - mark_h), min(left, w - mark_w)


def _triangle(phase: float) -> float:
    """0 at integer phases, 1 at half-integer ones, linear in between."""
    return 1 - abs(2 * (phase % 1) - 1)


def _text_mark(text: str, height: int) -> torch.Tensor:
    """White text with a dark outline as RGBA (h, w, 4) in 0..1; the outline keeps it readable on any picture."""
    font = ImageFont.load_default(size=height)
    stroke = max(1, height // 12)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    canvas = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((-left, -top), text, font=font, fill=(255, 255, 255, 255),
                                stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
    return _to_tensor(canvas)


def _image_mark(path: Path, height: int) -> torch.Tensor:
    try:
        picture = Image.open(path)
        picture.load()
    except (OSError, UnidentifiedImageError) as err:
        raise SpacetimeError(f"could not read the watermark image {path} ({err}); expected a PNG with an alpha "
                             "channel; check the path") from err
    width = max(1, round(picture.width * height / picture.height))
    return _to_tensor(picture.convert("RGBA").resize((width, height), Image.LANCZOS))


def _fit(mark: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Shrink a mark wider or taller than the frame so it fits (keeping its aspect ratio)."""
    scale = min(1.0, w / mark.shape[1], h / mark.shape[0])
    if scale == 1.0:
        return mark
    size = (max(1, int(mark.shape[1] * scale)), max(1, int(mark.shape[0] * scale)))
    picture = Image.fromarray((mark.numpy() * 255).round().astype(np.uint8), "RGBA")
    return _to_tensor(picture.resize(size, Image.LANCZOS))


def _to_tensor(picture: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)  # (h, w, 4)

"""Minimal mp4 frame I/O through imageio-ffmpeg, for the detector CLI and the watermark benchmark.

Frames are ComfyUI IMAGE layout: [T, H, W, 3] float in 0..1 (uint8 on disk).
"""
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from ..core.errors import SpacetimeError


def write_mp4(path: str | Path, frames: torch.Tensor, fps: float, crf: int = 19) -> Path:
    """Encode [T, H, W, 3] frames in 0..1 as h264 yuv420p at the given constant rate factor."""
    pixels = _to_uint8(frames)
    t, h, w, _ = pixels.shape
    if h % 2 or w % 2:
        raise SpacetimeError(f"cannot encode {w}x{h} frames as yuv420p h264; expected even width and height; "
                             "crop or pad the frames by one pixel first")
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        macro_block_size=1, output_params=["-crf", str(crf)])
    writer.send(None)  # the generator starts ffmpeg on the first send
    for frame in pixels:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return Path(path)


def read_mp4(path: str | Path) -> tuple[torch.Tensor, float]:
    """Decode an mp4 to ([T, H, W, 3] float 0..1, fps); a file that is not a readable video raises SpacetimeError."""
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        raw = [np.frombuffer(chunk, dtype=np.uint8) for chunk in reader]
    except (OSError, RuntimeError, StopIteration) as err:
        raise SpacetimeError(f"could not decode {path} as a video ({err}); expected an mp4 file; "
                             "check the path and that the file is not truncated") from err
    if not raw:
        raise SpacetimeError(f"{path} holds no video frames; expected an mp4 with at least one frame")
    pixels = np.stack(raw).reshape(len(raw), h, w, 3)  # (T, H, W, 3)
    return torch.from_numpy(pixels).float() / 255.0, float(meta["fps"])


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise SpacetimeError(f"frames have shape {tuple(frames.shape)}; expected [T, H, W, 3] (ComfyUI IMAGE)")
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

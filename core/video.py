"""mp4 (h264) reading and writing through the ffmpeg binary that imageio-ffmpeg ships, with container metadata.

Frames are ComfyUI IMAGE batches: [T, H, W, 3] float in 0..1 (uint8 on disk). Metadata goes in as an
FFMETADATA side input and is muxed with `-movflags use_metadata_tags`, as ComfyUI's SaveVideo does, so custom
keys (`prompt`, `workflow`) survive in the mp4 and dragging the file onto the canvas restores the graph.
A side file rather than `-metadata k=v` arguments because a workflow's JSON can pass Linux's 128 KiB limit
on one command-line argument.
"""
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from .errors import SpacetimeError

DEFAULT_CRF = 19
_FFMETADATA_SPECIAL = "\\=;#\n"


def write_mp4(path: str | Path, frames: torch.Tensor, fps: float, crf: int = DEFAULT_CRF,
              metadata: dict[str, str] | None = None) -> Path:
    """Encode IMAGE frames [T, H, W, 3] as h264 yuv420p; odd sizes are padded by repeating the last row/column.

    yuv420p stores colour at half resolution, so h264 needs even sizes; padding keeps every given pixel.
    """
    _check_frames(frames)
    if fps <= 0:
        raise SpacetimeError(f"fps is {fps}; expected a positive frame rate such as 16 or 24")
    t, h, w, _ = frames.shape
    even_h, even_w = h + h % 2, w + w % 2
    with tempfile.TemporaryDirectory() as tmp:
        meta_file = Path(tmp) / "metadata.txt"
        meta_file.write_text(_ffmetadata(metadata or {}), encoding="utf-8")
        command = _encode_command(Path(path), even_w, even_h, fps, crf, meta_file)
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for frame in frames:
                process.stdin.write(_frame_bytes(frame, even_h, even_w))
        except BrokenPipeError:
            pass  # ffmpeg stopped early; its exit code and stderr below say why
        _, errors = process.communicate()
    if process.returncode != 0:
        raise SpacetimeError(f"ffmpeg could not write {path}: {errors.decode(errors='replace').strip()[-400:]}")
    return Path(path)


def _encode_command(path: Path, width: int, height: int, fps: float, crf: int, meta_file: Path) -> list[str]:
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:.6g}", "-i", "-",
        "-f", "ffmetadata", "-i", str(meta_file),
        "-map", "0:v", "-map_metadata", "1",
        "-c:v", "libx264", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
        "-movflags", "+use_metadata_tags+faststart", str(path),
    ]


def _frame_bytes(frame: torch.Tensor, height: int, width: int) -> bytes:
    pixels = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # (H, W, 3)
    pad = ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0))
    return np.pad(pixels, pad, mode="edge").tobytes()


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise SpacetimeError(f"video frames have shape {shape}; expected an IMAGE batch [T, H, W, 3]; "
                             f"connect the output of VAE Decode or Load Video")
    if frames.shape[0] == 0:
        raise SpacetimeError("the video has 0 frames; expected at least one; check the node that made it")


def _ffmetadata(metadata: dict[str, str]) -> str:
    lines = [";FFMETADATA1"]
    lines += [f"{_escape(key)}={_escape(value)}" for key, value in metadata.items()]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _FFMETADATA_SPECIAL else c for c in str(text))


def read_mp4(path: str | Path) -> tuple[torch.Tensor, float]:
    """Decode a video file to (IMAGE frames [T, H, W, 3] float 0..1, fps)."""
    path = _existing(path)
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        info = next(reader)
        width, height = info["size"]
        chunks = [np.frombuffer(chunk, dtype=np.uint8) for chunk in reader]
    except (OSError, RuntimeError, StopIteration) as err:
        raise SpacetimeError(f"could not decode {path} as a video ({str(err).strip()[-200:]}); expected a video "
                             f"file such as an mp4; check that the file is complete") from err
    if not chunks:
        raise SpacetimeError(f"{path} holds no video frames; expected a video with at least one frame")
    pixels = np.stack(chunks).reshape(len(chunks), height, width, 3)  # (T, H, W, 3)
    return torch.from_numpy(pixels).float() / 255.0, float(info["fps"])


def read_metadata(path: str | Path) -> dict[str, str]:
    """The container-level metadata tags of a video file (e.g. `prompt` and `workflow` JSON strings)."""
    path = _existing(path)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "ffmetadata", "-"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SpacetimeError(f"could not read metadata from {path}: {result.stderr.strip()[-300:]}")
    return _parse_ffmetadata(result.stdout)


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """Parse FFMETADATA key=value lines; a backslash escapes the next character (also a newline)."""
    entries, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "\n":
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    entries.append("".join(current))
    return dict(_split_entry(e) for e in entries if e and not e.startswith((";", "#", "[")) and "=" in e)


def _split_entry(entry: str) -> tuple[str, str]:
    key, _, value = entry.partition("=")
    return key, value


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SpacetimeError(f"video file {path} does not exist; expected a path to a video file; check the name")
    return path

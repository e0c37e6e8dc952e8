"""Robustness and false-positive rate of the invisible watermark: prints the markdown tables of docs/PROVENANCE.md.

    python benchmarks/bench_watermark.py   (from the repository root; about 20 minutes on 2 busy CPU cores)

Marked clips go through the attacks below; every attacked clip is stored as h264 again (crf 19 unless the row
sets it), as a re-uploaded video would be. A row counts a detection only when the decoded payload is right.
Content: "natural-ish" clips (1/f-spectrum colour texture, panning, a moving disc, sensor noise) and, for the
false-positive rate, also clips of the embedded model's procedural world (embedded/world.py).
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from comfyui_spacetime.core.video import read_mp4, write_mp4
from comfyui_spacetime.embedded.world import make_clip
from comfyui_spacetime.provenance.watermark import detect_invisible_watermark, embed_invisible_watermark

FPS = 8
SIZES = ((64, 64), (480, 832))


# ---------------------------------------------------------------- content

def natural_clip(seed: int, t: int, h: int, w: int) -> torch.Tensor:
    """A panning 1/f-spectrum texture (the power law of natural images) with a moving disc: [T, H, W, 3]."""
    g = torch.Generator().manual_seed(seed)
    big_h, big_w = h + 2 * t, w + 2 * t
    fy, fx = torch.fft.fftfreq(big_h)[:, None], torch.fft.rfftfreq(big_w)[None, :]
    amplitude = 1 / torch.sqrt(fy ** 2 + fx ** 2).clamp(min=1 / max(big_h, big_w))
    spectrum = amplitude * torch.randn(3, big_h, big_w // 2 + 1, dtype=torch.complex64, generator=g)
    texture = torch.fft.irfft2(spectrum, s=(big_h, big_w))  # (3, H+2T, W+2T)
    mixed = 0.7 * texture.mean(0, keepdim=True) + 0.3 * texture  # mostly shared luma, some colour
    mixed = 0.5 + 0.18 * (mixed - mixed.mean()) / mixed.std()
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frames = []
    for i in range(t):
        frame = mixed[:, i:i + h, 2 * i:2 * i + w].clone()  # camera pan: 1 px down, 2 px right per frame
        disc = ((yy - h * 0.5) ** 2 + (xx - w * (0.2 + 0.6 * i / t)) ** 2) < (0.15 * min(h, w)) ** 2
        frame[:, disc] = torch.tensor([0.85, 0.25, 0.2])[:, None]
        frames.append(frame + 0.01 * torch.randn(3, h, w, generator=g))
    return torch.stack(frames).permute(0, 2, 3, 1).clamp(0, 1)  # (T, H, W, 3)


def world_clip(seed: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(make_clip(seed)[0]))


# ---------------------------------------------------------------- attacks

def h264(frames: torch.Tensor, crf: int, folder: Path) -> torch.Tensor:
    return read_mp4(write_mp4(folder / "attack.mp4", frames, FPS, crf=crf))[0]


def resize_half(frames: torch.Tensor) -> torch.Tensor:
    small = F.interpolate(frames.permute(0, 3, 1, 2), scale_factor=0.5, mode="bilinear", antialias=True)
    return small.permute(0, 2, 3, 1)  # (T, H/2, W/2, 3)


def crop_10(frames: torch.Tensor) -> torch.Tensor:
    """Remove 10% of the height and width, off-centre (4% top/left, 6% bottom/right)."""
    _, h, w, _ = frames.shape
    return frames[:, round(0.04 * h):h - round(0.06 * h), round(0.04 * w):w - round(0.06 * w)]


def double_fps(frames: torch.Tensor) -> torch.Tensor:
    """8 -> 16 fps by inserting the blend of each pair of neighbours."""
    blends = (frames[:-1] + frames[1:]) / 2
    return torch.stack([f for pair in zip(frames[:-1], blends) for f in pair] + [frames[-1]])


ATTACKS = {
    "none (float frames)": lambda v, d: v,
    "h264 crf 23": lambda v, d: h264(v, 23, d),
    "h264 crf 28": lambda v, d: h264(v, 28, d),
    "resize 0.5x": lambda v, d: h264(resize_half(v), 19, d),
    "crop 10%": lambda v, d: h264(crop_10(v), 19, d),
    "8 -> 16 fps": lambda v, d: h264(double_fps(v), 19, d),
}


# ---------------------------------------------------------------- measurements

def robustness_rows(sources: dict[str, list[torch.Tensor]], folder: Path) -> list[str]:
    rows = []
    for name, clips in sources.items():
        payloads = [f"S{seed:05d}" for seed in range(len(clips))]
        marked = [embed_invisible_watermark(clean, payload) for clean, payload in zip(clips, payloads)]
        psnr = np.mean([float(-10 * torch.log10(((m - c) ** 2).mean())) for m, c in zip(marked, clips)])
        cells = []
        for attack in ATTACKS.values():
            results = [detect_invisible_watermark(attack(video, folder)) for video in marked]
            hits = sum(r.found and r.payload == payload for r, payload in zip(results, payloads))
            cells.append(f"{hits}/{len(clips)}")
        rows.append(f"| {name} | {psnr:.1f} | " + " | ".join(cells) + " |")
    return rows


def false_positive_rows(sources: dict[str, list[torch.Tensor]], folder: Path) -> list[str]:
    rows = []
    for name, videos in sources.items():
        for label, attack in (("raw", ATTACKS["none (float frames)"]), ("h264 crf 23", ATTACKS["h264 crf 23"])):
            results = [detect_invisible_watermark(attack(video, folder)) for video in videos]
            false = sum(r.found for r in results)
            damaged = sum(r.confidence >= 0.99 and not r.found for r in results)
            rows.append(f"| {name} | {label} | {false}/{len(videos)} | {damaged}/{len(videos)} |")
    return rows


def content(seeds: range, frames: int, world: bool) -> dict[str, list[torch.Tensor]]:
    sources = {f"natural-ish {w}x{h}": [natural_clip(s, frames, h, w) for s in seeds] for h, w in SIZES}
    if world:
        sources["procedural world, 64-96 px"] = [world_clip(s) for s in seeds]
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="marked clips per content kind")
    parser.add_argument("--fp-clips", type=int, default=40, help="unmarked clips per content kind")
    parser.add_argument("--frames", type=int, default=17, help="frames of a natural-ish clip")
    args = parser.parse_args()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        print("| marked content | PSNR dB | " + " | ".join(ATTACKS) + " |")
        print("|---|---|" + "---|" * len(ATTACKS))
        print("\n".join(robustness_rows(content(range(args.clips), args.frames, True), Path(tmp))))
        print("\n| unmarked content | stored as | false positives | sync >= 0.99 but no payload |\n|---|---|---|---|")
        unmarked = content(range(1000, 1000 + args.fp_clips), args.frames, True)
        print("\n".join(false_positive_rows(unmarked, Path(tmp))))
    print(f"\n({time.time() - start:.0f} s, torch {torch.__version__})")


if __name__ == "__main__":
    main()

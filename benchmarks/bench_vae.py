"""Wan VAE decode at a real VAE's width (random weights), untiled and tiled: median time and peak memory.

    python -m comfyui_spacetime.benchmarks.bench_vae --sizes 480x832,720x1280 --latent-frames 2 --repeats 3

Prints markdown table rows. Each row runs in a fresh process so the CPU peak (max RSS, weights included)
belongs to that row alone; on CUDA the peak is torch's max allocated memory.
"""
import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

from comfyui_spacetime.core.host import device_name
from comfyui_spacetime.vae import VAE_PRESETS, WanVAE

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
HEADER = ("| VAE | dtype | device | pixels T x H x W | mode | median decode (s) | peak memory (GiB) |\n"
          "|---|---|---|---|---|---|---|")


def build(preset: str, dtype: torch.dtype, device: str) -> WanVAE:
    """Random weights allocated in place (no float32 detour), scaled to keep activations near unit size."""
    with torch.device("meta"):
        vae = WanVAE(VAE_PRESETS[preset]).to(dtype)
    vae = vae.to_empty(device=device).eval().requires_grad_(False)
    for name, p in vae.named_parameters():
        if name.endswith("gamma"):
            p.fill_(1.0)
        elif p.dim() == 1:
            p.zero_()
        else:
            p.normal_(std=p[0].numel() ** -0.5)
    return vae


def run_row(args) -> str:
    """Time one (size, mode) decode and return its markdown row."""
    device = torch.device(args.device)
    vae = build(args.preset, DTYPES[args.dtype], args.device)
    t_step, s_step, _ = vae.config.compression
    height, width = (int(v) for v in args.row_size.split("x"))
    z = torch.randn(1, vae.config.z_dim, args.latent_frames, height // s_step, width // s_step, device=device)
    tiled = args.row_mode != "untiled"
    decode = ((lambda: vae.decode_tiled(z, args.tile, args.overlap, cache_device=args.cache_device)) if tiled
              else (lambda: vae.decode(z)))
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for _ in range(args.repeats):
            _sync(device)
            start = time.perf_counter()
            decode()
            _sync(device)
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    frames = (args.latent_frames - 1) * t_step + 1
    mode = f"tiled {args.tile}/{args.overlap} latent px" if tiled else "untiled"
    if tiled and args.cache_device:
        mode += f", cache on {args.cache_device}"
    return (f"| {args.preset} | {args.dtype} | {device_name(device)} | {frames} x {height} x {width} | {mode} | "
            f"{statistics.median(times):.2f} | {peak:.2f} |")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="wan2.1", choices=sorted(VAE_PRESETS))
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="480x832,720x1280", help="pixel HxW list")
    parser.add_argument("--latent-frames", type=int, default=2, help="latent frames (pixel frames = 4(T-1)+1)")
    parser.add_argument("--tile", type=int, default=64, help="tile size in latent pixels")
    parser.add_argument("--overlap", type=int, default=16, help="tile overlap in latent pixels")
    parser.add_argument("--cache-device", help='where tiled decoding keeps its temporal cache (default "cpu"; '
                        '"cuda" keeps it on the GPU)')
    parser.add_argument("--modes", default="untiled,tiled", help="which of untiled and tiled to run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--row-size", help=argparse.SUPPRESS)
    parser.add_argument("--row-mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row_size:
        print(run_row(args), flush=True)
        return
    print(HEADER, flush=True)
    for size in args.sizes.split(","):
        for mode in args.modes.split(","):
            subprocess.run([sys.executable, "-m", "comfyui_spacetime.benchmarks.bench_vae", *sys.argv[1:],
                            "--row-size", size, "--row-mode", mode], check=True)


if __name__ == "__main__":
    main()

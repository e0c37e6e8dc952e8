"""End-to-end speed of the bundled spacetime-mini: text encode, sampling, decode and mp4.

    python -m comfyui_spacetime.benchmarks.bench_embedded --repeats 3 --long-seconds 60

Prints markdown table rows: a 64x64, 17-frame clip at 20 steps with CFG (median of the repeats), the same clip as an
infill between two given frames with the keyframe fit off and on, and one minute-long chained clip, on the device
the loaders pick (CUDA when there is one). Models are loaded once, outside the timings.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from comfyui_spacetime.core.host import device_name, get_device
from comfyui_spacetime.pipeline import generate, load_models

PROMPT = "a red circle moving to the right on a blue background"
HEADER = ("| clip | steps | cfg | device | median end to end (s) | runs |\n"
          "|---|---|---|---|---|---|")


def end_to_end(models, out: Path | None, **settings) -> float:
    """Seconds for generate() (text encode, sampling, decode), plus writing the mp4 unless `out` is None."""
    start = time.perf_counter()
    result = generate(PROMPT, models=models, **settings)
    if get_device().type == "cuda":
        torch.cuda.synchronize()
    if out is not None:
        from comfyui_spacetime.core.video import write_mp4  # needs ffmpeg, which --no-mp4 machines lack
        write_mp4(out, result.frames, result.fps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-seconds", type=float, default=60.0, help="0 skips the long clip")
    parser.add_argument("--no-mp4", action="store_true",
                        help="time generation alone, without writing the mp4 (for a machine with no ffmpeg)")
    args = parser.parse_args()
    models = load_models()
    cfg, device = models.model.sampling.cfg, device_name(get_device())
    print(HEADER)
    with tempfile.TemporaryDirectory() as folder:
        out = None if args.no_mp4 else Path(folder) / "bench.mp4"
        end_to_end(models, out, frames=17, steps=2, seed=0)  # warm-up: CUDA kernels load on first use
        times = [end_to_end(models, out, frames=17, steps=20, seed=i) for i in range(args.repeats)]
        print(f"| 64x64, 17 frames | 20 | {cfg} | {device} | {statistics.median(times):.2f} | "
              f"{args.repeats} |")
        ends = generate(PROMPT, models=models, frames=17, seed=0).frames[[0, 16]]  # keyframes [2, H, W, 3]
        for fit in ("off", "on"):
            times = [end_to_end(models, out, frames=17, steps=20, seed=i, keyframes=[(0, ends[:1]), (16, ends[1:])],
                                keyframe_fit=fit) for i in range(args.repeats)]
            print(f"| 64x64, 17 frames, infill of frames 0 and 16, keyframe fit {fit} | 20 | {cfg} | {device} | "
                  f"{statistics.median(times):.2f} | {args.repeats} |")
        if args.long_seconds:
            seconds = end_to_end(models, out, seconds=args.long_seconds, steps=20, seed=0)
            print(f"| 64x64, {args.long_seconds:g} s chained | 20 | {cfg} | {device} | {seconds:.1f} | 1 |")


if __name__ == "__main__":
    main()

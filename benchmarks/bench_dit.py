"""One WanDiT forward at a real model's width and depth (random weights): median time and peak memory.

    python -m comfyui_spacetime.benchmarks.bench_dit --preset wan2.1-t2v-1.3b --latent 16x5x30x52 --repeats 3

Prints one markdown table row (latent 16x5x30x52 = 81 frames' worth of 480x832 at 1/4 the frames). `--layers N`
keeps the first N blocks (a CPU-sized slice of a real width); `--lora-rank R` runs it with a random rank-R LoRA on
every attention and feed-forward Linear of the blocks, applied as the sampler applies LoRAs.
"""
import argparse
import dataclasses
import resource
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from comfyui_spacetime.core.dit import WanDiT
from comfyui_spacetime.core.dit_config import DIT_PRESETS
from comfyui_spacetime.core.host import device_name
from comfyui_spacetime.core.lora import Lora, LoraDiT, ModulePatch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
HEADER = ("| model | dtype | device | latent C x T x H x W | tokens | median forward (s) | peak memory (GiB) |\n"
          "|---|---|---|---|---|---|---|")


def build(config, dtype: torch.dtype, device: str) -> WanDiT:
    """Random weights without a float32 detour (its peak would be the row's): allocate in `dtype` in place, then
    the reference initialization."""
    with torch.device("meta"):
        model = WanDiT(config).to(dtype)
    model = model.to_empty(device=device).init_weights()
    with torch.no_grad():  # init_weights zeroes the head; random values make the forward a fair workload
        model.head.head.weight.normal_(std=0.02)
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif "modulation" in name:
                p.normal_(std=p.shape[-1] ** -0.5)
    return model.requires_grad_(False).eval()


def random_lora(model: WanDiT, rank: int) -> Lora:
    """Rank-`rank` updates (alpha = rank) on every attention and feed-forward Linear of the blocks."""
    patches = {}
    for name, module in model.blocks.named_modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
            patches[f"blocks.{name}"] = ModulePatch(
                up=torch.randn(weight.shape[0], rank, device=weight.device, dtype=weight.dtype) * 0.01,
                down=torch.randn(rank, weight.shape[1], device=weight.device, dtype=weight.dtype) * 0.01,
                alpha=float(rank))
    return Lora(Path(f"random_rank{rank}.safetensors"), patches)


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan2.1-t2v-1.3b", choices=sorted(DIT_PRESETS))
    parser.add_argument("--latent", default="16x5x30x52", help="C x T x H x W of the latent")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context", type=int, default=512, help="text tokens (the encoder pads to 512)")
    parser.add_argument("--layers", type=int, help="keep only the first N blocks")
    parser.add_argument("--lora-rank", type=int, default=0, help="run with a random LoRA of this rank (0: none)")
    args = parser.parse_args(argv)

    config = DIT_PRESETS[args.preset]
    if args.layers:
        config = dataclasses.replace(config, num_layers=args.layers)
    c, t, h, w = (int(n) for n in args.latent.split("x"))
    model = build(config, DTYPES[args.dtype], args.device)
    if args.lora_rank:
        model = LoraDiT(model, [(random_lora(model, args.lora_rank), 1.0)])
    x = torch.randn(1, c, t, h, w, device=args.device)
    timestep = torch.full((1, t) if config.per_frame_timesteps else (1,), 500.0, device=args.device)
    context = torch.randn(1, args.context, config.text_dim, device=args.device)
    times = []
    with torch.no_grad():
        model(x, timestep, context)  # warm-up: kernels load and autotune on first use
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(x, timestep, context)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    tokens = t * (h // 2) * (w // 2)
    print(HEADER)
    name = args.preset + (f" ({args.layers} layers)" if args.layers else "")
    name += f" + LoRA rank {args.lora_rank}" if args.lora_rank else ""
    print(f"| {name} | {args.dtype} | {device_name(args.device)} | {args.latent} | {tokens} | "
          f"{statistics.median(times):.2f} | {peak_memory_gib(args.device):.2f} |")


if __name__ == "__main__":
    main()

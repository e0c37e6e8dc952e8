"""The CLIP-vision encoder of Wan 2.1 I2V / FLF2V at clip_vision_h's size (ViT-H/14, random weights): one image.

    python -m comfyui_spacetime.benchmarks.bench_clip_vision --repeats 3

Prints one markdown table row: the median time of `ClipVisionEncoder.encode` on a 480x832 image (resize included).
"""
import argparse
import statistics
import time

import torch

from comfyui_spacetime.core.clip_vision import ClipVisionConfig, ClipVisionEncoder, VisionModel
from comfyui_spacetime.core.host import device_name

VIT_H = ClipVisionConfig(width=1280, layers=32, heads=16, mlp=5120, patch=14, image_size=224)
HEADER = "| encoder | device | image | median encode (s) |\n|---|---|---|---|"


def build(device: str) -> ClipVisionEncoder:
    with torch.device(device):
        model = VisionModel(VIT_H)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.ones_like(p) if "norm" in name and name.endswith("weight")
                    else torch.randn_like(p) * (p.shape[-1] ** -0.5 if p.dim() > 1 else 0.02))
    return ClipVisionEncoder(model.eval(), "random ViT-H/14")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    encoder = build(args.device)
    image = torch.rand(1, 480, 832, 3)
    encoder.encode(image)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        encoder.encode(image)  # returns on the CPU, so the time includes the device's work
        times.append(time.perf_counter() - start)
    print(HEADER)
    print(f"| ViT-H/14 ({VIT_H.layers - 1} of {VIT_H.layers} blocks run) | {device_name(args.device)} | 480x832 | "
          f"{statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()

"""UMT5 at UMT5-XXL's width (random weights, fewer layers): a prompt padded to 512 tokens, encoded whole vs trimmed.

    python -m comfyui_spacetime.benchmarks.bench_text_encoder --layers 2 --tokens 16,120 --repeats 3

`TextEncoder.encode_ids` runs only the columns up to the batch's last real token and pads zero rows after them;
"whole" is the same model over all 512 columns, as before. Each layer costs the same, so the times scale with
`--layers` to the real 24. Prints one markdown table row per prompt length.
"""
import argparse
import dataclasses
import statistics
import time

import torch

from comfyui_spacetime.core.host import device_name
from comfyui_spacetime.core.text_encoder import TEXT_ENCODER_PRESETS, TextEncoder, UMT5Encoder

HEADER = ("| device | layers | real tokens of 512 | whole (s) | trimmed (s) | whole / trimmed |\n"
          "|---|---|---|---|---|---|")


def build(layers: int, device: str) -> UMT5Encoder:
    """UMT5-XXL's width and heads with `layers` blocks and a small vocabulary (a lookup; it costs no compute)."""
    config = dataclasses.replace(TEXT_ENCODER_PRESETS["umt5-xxl"], num_layers=layers, vocab_size=1024)
    with torch.device(device):
        model = UMT5Encoder(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.ones_like(p) if "layer_norm" in name else torch.randn_like(p) * p.shape[-1] ** -0.5)
    return model.eval()


def median_seconds(run, repeats: int, device: str) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="of UMT5-XXL's 24")
    parser.add_argument("--tokens", default="16,120", help="real tokens per prompt, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    model = build(args.layers, args.device)
    encoder = TextEncoder(model, tokenizer=None)
    length = model.config.min_length
    print(HEADER)
    for real in (int(n) for n in args.tokens.split(",")):
        input_ids = torch.zeros(1, length, dtype=torch.long, device=args.device)
        input_ids[:, :real] = torch.randint(3, model.config.vocab_size, (1, real))
        mask = (input_ids != 0).long()
        with torch.no_grad():
            whole = median_seconds(lambda: model(input_ids, mask), args.repeats, args.device)
        trimmed = median_seconds(lambda: encoder.encode_ids(input_ids, mask), args.repeats, args.device)
        print(f"| {device_name(args.device)} | {args.layers} | {real} | {whole:.3f} | {trimmed:.3f} | "
              f"{whole / trimmed:.1f}x |")


if __name__ == "__main__":
    main()

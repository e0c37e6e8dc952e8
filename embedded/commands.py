"""`spacetime train-embedded` and `spacetime quality`: the embedded model's subcommands for the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.errors import SpacetimeError


def add_embedded_commands(subparsers) -> None:
    """Register `train-embedded` and `quality` on the `spacetime` CLI's subparsers."""
    train = subparsers.add_parser(
        "train-embedded", help="train the bundled spacetime-mini model from scratch on the procedural world",
        description="Trains the tokenizer, text encoder, VAE and DiT of spacetime-mini on a CPU (about 180-230 min on "
                    "2 cores, docs/EMBEDDED.md) and writes the three safetensors files.")
    train.add_argument("--out", type=Path, default=None, help="folder for the model files (default: the bundled "
                                                              "models/spacetime-mini)")
    train.add_argument("--work-dir", type=Path, default=Path("runs/train-embedded"),
                       help="checkpoints and the loss log (losses.jsonl)")
    train.add_argument("--minutes-budget", type=float, default=math.inf,
                       help="wall-clock budget; the DiT stage stops early to finish within it")
    train.add_argument("--threads", type=int, default=1,
                       help="torch threads (default 1, the faster choice on a 2-core machine shared with other jobs; "
                            "2 is faster on a quiet one); the weights do not depend on it beyond float rounding")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work-dir")
    train.set_defaults(func=_train)

    quality = subparsers.add_parser(
        "quality", help="measure the bundled model against the quality targets (colour, direction, I2V, ...)",
        description="Generates held-out prompts through the pipeline and reads the frames with an analytic "
                    "detector; prints the measures against the targets of issue 5, and the same measures on the VAE "
                    "round trips of the true clips (the most any DiT could score through this VAE, except where the "
                    "keyframe fit fits given frames to the decoder; for drift, what the VAE alone adds over a long "
                    "true clip).")
    size = quality.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="full", action="store_false", help="reduced set (default, ~2 min)")
    size.add_argument("--full", dest="full", action="store_true", help="full set (60 prompts, 60 s drift)")
    quality.add_argument("--json", type=Path, help="also write the results as JSON here")
    quality.add_argument("--sheet", type=Path, help="also write a contact sheet PNG of the first text-to-video clips")
    quality.add_argument("--reliance", action="store_true",
                         help="also measure which parts of a prompt the DiT reads: its loss on held-out clips with "
                              "the motion reversed, the colour changed or no caption, against the true captions "
                              "(~30 s; docs/EMBEDDED.md)")
    quality.set_defaults(func=_quality, full=False)


def _train(args) -> int:
    from .train import BUNDLED_DIR, train_embedded

    checkpoints = sorted(p.name for p in args.work_dir.glob("*.pt")) if args.work_dir.is_dir() else []
    if checkpoints and not args.resume:
        raise SpacetimeError(f"{args.work_dir} already holds checkpoints ({', '.join(checkpoints)}); expected an "
                             "empty work directory for a fresh run; pass --resume to continue it, or choose another "
                             "--work-dir")
    paths = train_embedded(args.out or BUNDLED_DIR, args.work_dir, minutes_budget=args.minutes_budget,
                           threads=args.threads)
    for path in paths.values():
        print(path)
    return 0


def _recording(generate, made: list, keep: int):
    """`generate` that also keeps the frames [T, H, W, 3] of its first `keep` calls, in call order."""
    def wrapped(prompt, **kwargs):
        result = generate(prompt, **kwargs)
        if len(made) < keep:
            made.append(result.frames.detach().cpu().numpy())
        return result
    return wrapped


def _quality(args) -> int:
    from functools import partial

    from ..pipeline import generate, load_models
    from .quality import (FULL, QUICK, contact_sheet, format_error_by_latent_frame, format_report, quality_report,
                          round_trip_ceiling, round_trip_error_by_latent_frame)
    from .reliance import format_reliance, prompt_reliance

    made: list = []
    models = load_models()
    config = FULL if args.full else QUICK
    generate = partial(generate, models=models)
    if args.sheet:  # the first clips are text-to-video ones
        generate = _recording(generate, made, keep=8)
    results = quality_report(generate, config)
    ceiling = round_trip_ceiling(models.vae, config)
    print(format_report(results, ceiling))
    lost = round_trip_error_by_latent_frame(models.vae, config)
    print("\nVAE round trip: mean error (0..1) on the true clips' object pixels, by latent frame")
    print(format_error_by_latent_frame(lost))
    reliance = prompt_reliance(models) if args.reliance else {}
    if reliance:
        print("\nDiT loss with altered captions, as a multiple of its loss with the true ones (1.00x: not read)")
        print(format_reliance(reliance))
    if args.sheet:
        contact_sheet(made, args.sheet)
    if args.json:
        rows = {k: {"value": v, "cases": n} | ({"vae_round_trip": ceiling[k][0]} if k in ceiling else {})
                for k, (v, n) in results.items()}
        rows["vae_object_error_by_latent_frame"] = {name: {"errors": values.tolist(), "clips": clips}
                                                    for name, (values, clips) in lost.items()}
        if reliance:
            rows["reliance"] = [{"task": task, "noise": sigma, **row} for (task, sigma), row in reliance.items()]
        args.json.write_text(json.dumps(rows, indent=1))
    return 0

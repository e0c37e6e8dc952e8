"""The `spacetime` command: generate a video, run a workflow, and the teammates' subcommands.

Every subcommand sets `func(args) -> int` (the exit code). Errors the user can fix (SpacetimeError) print one
`error: ...` message without a traceback and exit 2.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .core.download import add_download_command
from .core.errors import SpacetimeError
from .core.paths import INPUT_DIR_ENV, MODELS_DIR_ENV, OUTPUT_DIR_ENV, output_dir, safe_output_path
from .core.video import DEFAULT_CRF
from .embedded.commands import add_embedded_commands
from .nodes.loaders import ATTENTION_BACKENDS, WEIGHT_DTYPES
from .nodes.sampling import FRAME_ORDERS, KEYFRAME_FITS
from .nodes.video_io import WATERMARKS, Signing, save_video
from .pipeline import ModelFiles, generate, load_models
from .sampler import FIRST_FRAME_CANDIDATES
from .provenance.commands import add_provenance_commands
from .workflow import run_workflow

USAGE_ERROR = 2
INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return USAGE_ERROR
    try:
        return args.func(args) or 0
    except SpacetimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spacetime", description="ComfyUI-Spacetime: spacetime-patch video "
                                     "generation (Wan 2.1/2.2 and the bundled spacetime-mini) from the command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_generate(subparsers)
    _add_run(subparsers)
    add_download_command(subparsers)
    add_provenance_commands(subparsers)
    add_embedded_commands(subparsers)
    return parser


# ---- generate -----------------------------------------------------------------------------------------------

def _add_generate(subparsers) -> None:
    gen = subparsers.add_parser("generate", help="generate a video from a prompt (bundled model by default)",
                                description="Generate a video. Without model flags the bundled spacetime-mini "
                                            "runs, offline, on the CPU.")
    gen.add_argument("--prompt", required=True, help="the prompt; or one shot per line as '<start seconds>: ...'")
    gen.add_argument("--negative", default="", help="negative prompt")
    gen.add_argument("--image", help="start image (image to video)")
    gen.add_argument("--reference", action="append", default=[], metavar="IMAGE",
                     help="a subject reference image, kept beside every window (Wan 2.1 VACE); repeatable")
    gen.add_argument("--extend", help="a clip to extend by --seconds")
    gen.add_argument("--direction", choices=["forward", "backward"], default="forward", help="for --extend")
    gen.add_argument("--keyframe", action="append", default=[], metavar="FRAME:IMAGE",
                     help="a keyframe image at a pixel frame; repeatable; negative counts from the end "
                          "(write --keyframe=-1:last.png)")
    gen.add_argument("--seconds", type=float, help="length (or, with --extend, the time to add)")
    gen.add_argument("--frames", type=int, help="length in frames, 4k+1 (instead of --seconds)")
    gen.add_argument("--fps", type=float, help="frame rate (default: the model's)")
    gen.add_argument("--size", help="WIDTHxHEIGHT (default: the model's)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg", type=float)
    gen.add_argument("--shift", type=float)
    gen.add_argument("--solver", help="unipc, euler or dpmpp_2m")
    gen.add_argument("--frame-order", choices=FRAME_ORDERS, default="auto",
                     help="text to video: sample the first frame first, then the clip from it (twice the time), or "
                          "all frames together; auto: the model's default (first frame first for spacetime-mini)")
    gen.add_argument("--first-frame-candidates", type=int, default=FIRST_FRAME_CANDIDATES, metavar="N",
                     help="with the first frame first: sample N first clips and keep the start of the one the model "
                          f"finds its prompt explains best (default {FIRST_FRAME_CANDIDATES}: the seed's own)")
    gen.add_argument("--no-drift-control", dest="drift_control", action="store_false",
                     help="videos longer than one window: let the background drift instead of holding each shot's "
                          "(for a setting that should change within a shot)")
    gen.add_argument("--keyframe-fit", choices=KEYFRAME_FITS, default="auto",
                     help="with --image or --keyframe: fit the latent frames holding those images so the VAE "
                          "decodes them as given (auto: on for spacetime-mini, off for Wan)")
    gen.add_argument("--no-recaption", dest="recaption", action="store_false",
                     help="spacetime-mini: encode the prompt as typed instead of rewritten into the caption wording "
                          "it was trained on")
    gen.add_argument("--crf", type=int, default=DEFAULT_CRF, help="h264 quality (lower is better)")
    _add_model_flags(gen)
    marks = gen.add_argument_group("provenance")
    marks.add_argument("--watermark", choices=WATERMARKS, default="none")
    marks.add_argument("--watermark-text", default="AI-generated", help="text of the visible watermark")
    marks.add_argument("--sign", action="store_true", help="embed a signed C2PA manifest")
    marks.add_argument("--cert", help="PEM certificate chain for --sign (default: a local self-signed identity)")
    marks.add_argument("--key", help="PEM private key for --cert")
    marks.add_argument("--include-prompt", action="store_true", help="write the prompt into the C2PA manifest")
    gen.add_argument("--out", type=Path, help="the mp4 to write (default: a new file in ./output)")
    gen.set_defaults(func=_generate)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models (file names in --models-dir, or paths; default: spacetime-mini)")
    group.add_argument("--models-dir", type=Path, help=f"ComfyUI-style models folder (or ${MODELS_DIR_ENV})")
    group.add_argument("--dit", help="diffusion model file")
    group.add_argument("--low-noise-dit", help="Wan 2.2 A14B low-noise expert file")
    group.add_argument("--text-encoder", help="UMT5 text encoder file")
    group.add_argument("--vae", help="VAE file")
    group.add_argument("--clip-vision", help="CLIP-vision file (clip_vision_h), for Wan 2.1 I2V / FLF2V 14B")
    group.add_argument("--weight-dtype", choices=list(WEIGHT_DTYPES), default="default")
    group.add_argument("--attention", choices=ATTENTION_BACKENDS, default="sdpa")
    group.add_argument("--block-swap", type=int, default=0, help="DiT blocks kept on the CPU")
    group.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH[:EXPERT]]",
                       help="a Wan LoRA (in --models-dir/loras or a path) at a strength (default 1); EXPERT "
                            "high_noise or low_noise for one of Wan 2.2 A14B's experts; repeat for several")


def _generate(args: argparse.Namespace) -> int:
    _set_dir(MODELS_DIR_ENV, args.models_dir)
    keyframes = [parse_keyframe(k) for k in args.keyframe]
    if args.out is not None and args.out.suffix.lower() != ".mp4":
        raise SpacetimeError(f"--out {args.out} does not end in .mp4; expected a path like clip.mp4")
    files = _model_files(args)
    models = load_models(files)
    result = generate(args.prompt, args.negative, image=args.image, extend=args.extend, direction=args.direction,
                      keyframes=keyframes, references=args.reference, seconds=args.seconds, frames=args.frames,
                      fps=args.fps, size=args.size, seed=args.seed, steps=args.steps, cfg=args.cfg, shift=args.shift,
                      solver=args.solver, frame_order=args.frame_order,
                      first_frame_candidates=args.first_frame_candidates,
                      recaption=args.recaption, drift_control=args.drift_control,
                      keyframe_fit=args.keyframe_fit, models=models)
    signing = None
    if args.sign:
        prompt = args.prompt if args.include_prompt else None
        signing = Signing.for_model(models.model, prompt, args.cert or "", args.key or "")
    out = _new_output(args.out)
    used = {"models": [files.dit, files.text_encoder, files.vae]} | (
        {"loras": [f"{name}:{strength:g}:{expert}" for name, strength, expert in files.loras]} if files.loras else {})
    metadata = {"spacetime": json.dumps({**result.settings, **used})}
    save_video(out, result.frames, result.fps, args.crf, args.watermark, args.watermark_text, metadata, signing)
    t, h, w, _ = result.frames.shape
    print(f"wrote {out.resolve()} ({t} frames, {w}x{h}, {result.fps:g} fps; {result.info})")
    return 0


def _model_files(args: argparse.Namespace) -> ModelFiles:
    """The files named by flags; those not given stay the bundled spacetime-mini's."""
    named = {"dit": args.dit, "text_encoder": args.text_encoder, "vae": args.vae, "low_noise_dit": args.low_noise_dit,
             "clip_vision": args.clip_vision}
    return ModelFiles(**{name: value for name, value in named.items() if value}, weight_dtype=args.weight_dtype,
                      attention=args.attention, block_swap=args.block_swap,
                      loras=tuple(parse_lora(text) for text in args.lora))


def parse_lora(text: str) -> tuple[str, float, str]:
    """'style.safetensors' -> (file, 1.0, 'both'); 'style.safetensors:0.8', 'fast.safetensors:1:low_noise'."""
    parts = text.split(":")
    expert = parts.pop() if len(parts) > 1 and parts[-1] in ("both", "high_noise", "low_noise") else "both"
    strength = 1.0
    if len(parts) > 1:
        try:
            strength = float(parts[-1])
            parts.pop()
        except ValueError:
            pass
    if not parts[0]:
        raise SpacetimeError(f"--lora '{text}' names no file; expected FILE[:STRENGTH[:EXPERT]], e.g. "
                             "--lora style.safetensors:0.8")
    return ":".join(parts), strength, expert


def parse_keyframe(text: str) -> tuple[int, str]:
    """'32:b.png' -> (32, 'b.png'); the index may be negative ('-1:last.png')."""
    index, sep, path = text.partition(":")
    if not sep or not path or not index.strip().lstrip("-").isdigit():
        raise SpacetimeError(f"--keyframe '{text}' is not FRAME:IMAGE; expected e.g. --keyframe 32:b.png")
    return int(index), path


def _new_output(out: Path | None) -> Path:
    if out is None:
        return safe_output_path("spacetime", "mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


# ---- run ----------------------------------------------------------------------------------------------------

def _add_run(subparsers) -> None:
    run = subparsers.add_parser("run", help="execute a ComfyUI workflow JSON (UI or API format) with the pack's "
                                            "nodes")
    run.add_argument("workflow", type=Path, help="e.g. example_workflows/spacetime_mini_text_to_video.json")
    run.add_argument("--out", type=Path, help=f"output folder (default ./output, or ${OUTPUT_DIR_ENV})")
    run.add_argument("--input-dir", type=Path, help=f"where Load Video finds files (default ./input, "
                                                    f"or ${INPUT_DIR_ENV})")
    run.add_argument("--models-dir", type=Path, help=f"ComfyUI-style models folder (or ${MODELS_DIR_ENV})")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    _set_dir(OUTPUT_DIR_ENV, args.out)
    _set_dir(INPUT_DIR_ENV, args.input_dir)
    _set_dir(MODELS_DIR_ENV, args.models_dir)
    outputs = run_workflow(args.workflow)
    for node_id, ui in outputs.items():
        for line in _describe_output(ui):
            print(f"node {node_id}: {line}")
    return 0


def _describe_output(ui: dict) -> list[str]:
    files = [output_dir() / item.get("subfolder", "") / item["filename"] for item in ui.get("images", [])]
    texts = [str(text) for text in ui.get("text", [])]
    return [f"wrote {path.resolve()}" for path in files] + texts


def _set_dir(variable: str, value: Path | None) -> None:
    """Flags become the environment the pack's path functions read, so nodes see them too."""
    if value is not None:
        os.environ[variable] = str(value)


if __name__ == "__main__":
    sys.exit(main())

"""`spacetime provenance FILE.mp4` and `spacetime detect-watermark FILE.mp4`: registered on the CLI's subparsers.

Each subcommand sets `func(args) -> int`, the process exit code.
"""
import argparse
import json
import sys

from ..core.video import read_mp4
from .c2pa_manifest import read_provenance
from .watermark import describe_detection, detect_invisible_watermark


def add_provenance_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the `provenance` and `detect-watermark` subcommands."""
    show = subparsers.add_parser("provenance", help="validate a video's C2PA manifest and print what it says "
                                                    "(exit 0 valid, 1 invalid or no manifest)")
    show.add_argument("file", help="an mp4 file")
    show.add_argument("--json", action="store_true", help="print the whole manifest store as JSON")
    show.set_defaults(func=_provenance)
    detect = subparsers.add_parser("detect-watermark", help="look for the pack's invisible watermark "
                                                            "(exit 0 and print the payload when found, 1 when not)")
    detect.add_argument("file", help="an mp4 file")
    detect.set_defaults(func=_detect_watermark)


def _provenance(args: argparse.Namespace) -> int:
    report = read_provenance(args.file)
    print(report.text())
    if args.json and report.has_manifest:
        print(json.dumps(report.manifest, indent=2))
    return 0 if report.valid else 1


def _detect_watermark(args: argparse.Namespace) -> int:
    frames, _ = read_mp4(args.file)
    result = detect_invisible_watermark(frames)
    if result.found:
        print(result.payload)
    print(describe_detection(result), file=sys.stderr)
    return 0 if result.found else 1

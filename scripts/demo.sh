#!/usr/bin/env bash
# Set up .venv, then generate a video with the bundled spacetime-mini model: offline, on the CPU.
# Extra arguments go to `spacetime generate` (e.g. --seed 3 --seconds 4 --out my.mp4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/spacetime generate \
  --prompt "${PROMPT:-a red circle moving right on a blue background}" \
  --out output/demo.mp4 "$@"

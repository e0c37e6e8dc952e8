#!/usr/bin/env bash
# Create .venv and install the pack into it, editable, with the test tools. Safe to run again.
# torch is installed only when the venv has none: `torch==2.13.0` is the version the project is tested with
# (a CPU build on the project's machines; set TORCH_SPEC, e.g. to "torch" plus an --index-url, to choose another).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_SPEC may hold several words (a version and pip options)
  .venv/bin/pip install --quiet ${TORCH_SPEC:-torch==2.13.0}
fi
.venv/bin/pip install --quiet -e ".[test]"

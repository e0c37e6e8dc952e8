#!/usr/bin/env bash
# Set up .venv, then run the Python tests and, when web/tests exists, the frontend unit tests (Node.js 18+).
# Arguments go to pytest (e.g. scripts/test.sh tests/test_nodes.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --rootdir=tests: the repository root is itself a package (it is the ComfyUI node pack), and pytest >= 9.2 would
# otherwise try to import its __init__.py as a test package, where the pack's relative imports cannot resolve.
.venv/bin/python -m pytest --rootdir=tests -q "$@"
if [ -d web/tests ] && [ $# -eq 0 ]; then
  if ! command -v node >/dev/null; then
    echo "node is not installed: the web/tests unit tests need Node.js 18 or newer" >&2
    exit 1
  fi
  node --test web/tests/
fi

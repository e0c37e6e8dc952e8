#!/usr/bin/env bash
# Set up .venv, then run the Python tests and, when web/tests exists, the frontend unit tests (Node.js 18+).
# Arguments go to pytest (e.g. scripts/test.sh tests/test_nodes.py -x); then the web tests are skipped.
# Both suites run even when the first fails; the exit status is non-zero when either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
# --rootdir=tests: the repository root is itself a package (it is the ComfyUI node pack), and pytest >= 9.2 would
# otherwise try to import its __init__.py as a test package, where the pack's relative imports cannot resolve.
.venv/bin/python -m pytest --rootdir=tests "$@"
status=$?
if [ -d web/tests ] && [ $# -eq 0 ]; then
  if command -v node >/dev/null; then
    node --test web/tests/ || status=1
  else
    echo "node is not installed: the web/tests unit tests need Node.js 18 or newer" >&2
    status=1
  fi
fi
exit $status

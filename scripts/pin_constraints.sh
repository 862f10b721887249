#!/usr/bin/env bash
# Regenerate constraints.txt from the current venv (exact pins of everything installed).
# Run after changing dependencies in pyproject.toml: make setup, then this, then commit.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
{
  echo "# Exact versions for CI and \`make setup\` (regenerate with scripts/pin_constraints.sh)."
  echo "# torch==2.13.0 resolves to the CPU wheel kept on the course machines' local disk; an"
  echo "# unpinned torch would pull a multi-GB CUDA build."
  "$VENV/bin/python" -m pip freeze --exclude-editable | grep -viE '^(mmcourse|pip|setuptools|wheel)==' \
    | sed -E 's/^torch==2\.13\.0\+cpu$/torch==2.13.0/'
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"

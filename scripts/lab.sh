#!/usr/bin/env bash
# `make lab`: JupyterLab on notebooks/ from the course's venv. tests/test_lab.py starts exactly
# this script, so what the test checks is what a learner runs. Extra arguments go to JupyterLab
# (e.g. scripts/lab.sh --port=8899, or make lab LAB_ARGS=--port=8899).
# - As root (Docker, classroom images) JupyterLab refuses to start without --allow-root: pass it
#   then, and only then.
# - Every start trusts the course's notebooks again and keeps the course's Lab settings
#   (scripts/prepare_lab.py says why: saved widgets show only in trusted notebooks, and
#   `make execute` or a `git pull` rewrites them).
# - On a machine without a display no browser can open: say so, and JupyterLab prints the URL
#   with its token ("http://127.0.0.1:8888/lab?token=...") to open from another machine or a tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
args=(lab notebooks/)
[ "$(id -u)" != 0 ] || args+=(--allow-root)
if [ "$(uname -s)" = Linux ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  args+=(--no-browser)
  echo "== no display: open the http://127.0.0.1:.../lab?token=... URL printed below in a browser (Ctrl-C stops JupyterLab)"
fi
"$VENV/bin/python" scripts/prepare_lab.py notebooks
exec "$VENV/bin/jupyter" "${args[@]}" "$@"

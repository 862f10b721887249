#!/usr/bin/env bash
# `make setup`: the course's virtual environment in three steps.
#   1. check the interpreter ($PYTHON): supported version, can make a venv; one line if not
#   2. torch alone, the CPU build, before anything else (so no later step can swap it for the
#      multi-GB CUDA build); stop with a message when no CPU wheel is found
#   3. everything else, pinned by constraints.txt, with torch pinned to what step 2 installed
# then the torchvision compatibility hook (tests/_torchvision_compat.py) goes into the venv, and
# scripts/prepare_lab.py trusts the notebooks and installs the course's Lab settings.
#
# Variables (all optional):
#   PYTHON=python3       interpreter for a new venv (3.10-3.13, see pyproject.toml)
#   VENV=.venv           where the venv lives
#   INSTALLER=auto       auto: uv (on PATH, in the venv, or installed into it), else pip;
#                        or uv / pip to insist
#   TORCH_INDEX_URL=...  extra index to look for torch in. Default: only pip's configured
#                        sources, then https://download.pytorch.org/whl/cpu (10 s timeout)
#   TORCH_SPEC=...       take this torch instead of the CPU build, deliberately, e.g.
#                        TORCH_SPEC='torch==2.13.0' (PyPI's build: the CUDA one on Linux, ~3 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
INSTALLER=${INSTALLER:-auto}
TORCH_SPEC=${TORCH_SPEC:-}
PYTORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
PY=$VENV/bin/python
start=$(date +%s)

die() { echo "make setup: $*" >&2; exit 1; }
say() { echo "== setup: $*"; }

# --- 1. interpreter -------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "'$PYTHON' not found: install Python 3.10-3.13 and run 'make setup PYTHON=/path/to/python3.x'."
  "$PYTHON" scripts/check_python.py || exit 1
  say "creating $VENV with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; die "'$PYTHON -m venv $VENV' failed (see above)."; }
else
  "$PY" scripts/check_python.py || die "$VENV was made with an unsupported Python: remove it, then 'make setup PYTHON=...'."
fi

# --- installer: uv when it is there or can be had (about 3x faster), pip otherwise -------------
UV=
if [ "$INSTALLER" != pip ]; then
  UV=$(command -v uv || true)
  [ -n "$UV" ] || [ ! -x "$VENV/bin/uv" ] || UV=$VENV/bin/uv
  if [ -z "$UV" ]; then
    say "installing uv into $VENV (INSTALLER=pip to do without)"
    if "$PY" -m pip install -q uv; then UV=$VENV/bin/uv
    elif [ "$INSTALLER" = uv ]; then die "could not install uv (INSTALLER=uv)."
    else say "no uv: falling back to pip"; fi
  fi
fi
uv_args=()
if [ -n "$UV" ]; then
  # uv does not read pip's configuration: pass on pip's sources and constraints. Compile .pyc
  # files at install time as pip does, or the first notebook run pays for it.
  while IFS= read -r flag; do uv_args+=("$flag"); done < <("$PY" scripts/uv_flags.py)
  uv_args+=(--compile-bytecode)
  say "installing with $("$UV" --version)"
else
  say "installing with pip"
  "$PY" -m pip install -q --upgrade pip
fi

install() {  # install ARGS... with the chosen installer into the venv
  if [ -n "$UV" ]; then "$UV" pip install --python "$PY" "${uv_args[@]}" "$@"
  else "$PY" -m pip install "$@"; fi
}

# --- 2. torch, alone --------------------------------------------------------------------------
pinned=$(sed -nE 's/^torch==([^ ;]+).*/\1/p' constraints.txt | head -1)
platform=$("$PY" -c 'import platform, sys; print(sys.platform, platform.machine(), "%d.%d" % sys.version_info[:2])')
read -r os arch pyver <<<"$platform"
have=$("$PY" -W ignore -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null || true)
if [ -n "$TORCH_SPEC" ]; then
  # Deliberate choice: exactly what the user asked for, from where they said.
  say "torch: $TORCH_SPEC (TORCH_SPEC)"
  index=()
  [ -z "${TORCH_INDEX_URL:-}" ] || index=(--extra-index-url "$TORCH_INDEX_URL")
  install "${index[@]}" "$TORCH_SPEC"
elif [ "$have" = "$pinned+cpu None" ] || { [ "$os" = darwin ] && [ "$have" = "$pinned None" ]; }; then
  say "torch: $have (CPU build) already installed"
else
  # PyTorch labels its Linux and Windows CPU wheels +cpu (PyPI has none, its Linux torch is the
  # CUDA build), so asking for ==X+cpu can never fetch a CUDA wheel. macOS wheels are CPU-only.
  spec="torch==$pinned+cpu"
  [ "$os" != darwin ] || spec="torch==$pinned"
  say "torch: $spec for Python $pyver on $os $arch, alone, from pip's configured sources"
  if ! install -c constraints.txt "$spec"; then
    url=${TORCH_INDEX_URL:-$PYTORCH_CPU_INDEX}
    say "torch: not there; trying $url"
    if [ -n "$UV" ]; then
      UV_HTTP_TIMEOUT=10 UV_HTTP_RETRIES=0 install -c constraints.txt --extra-index-url "$url" "$spec"
    else
      install --timeout 10 --retries 0 -c constraints.txt --extra-index-url "$url" "$spec"
    fi || die "no CPU build of torch $pinned for Python $pyver on $os $arch in pip's sources or $url.
  No torch was downloaded. Either make that index reachable (or name another with TORCH_INDEX_URL=...),
  put the CPU wheel (torch-$pinned+cpu-cp${pyver/./}-...whl) in a pip --find-links directory, or choose
  another build deliberately: make setup TORCH_SPEC='torch==$pinned' (on Linux that is PyPI's CUDA build, ~3 GB)."
  fi
fi
torch_version=$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))')
cuda=$("$PY" -W ignore -c 'import torch; print(torch.version.cuda)')
if [ "$cuda" != None ] && [ -z "$TORCH_SPEC" ]; then
  die "torch $torch_version in $VENV is a CUDA build ($cuda); the course expects the CPU build: remove $VENV and run make setup again."
fi

# --- 3. the rest, pinned; torch pinned to what is installed -----------------------------------
grep -vE '^torch==' constraints.txt > "$VENV/mmcourse-constraints.txt"
echo "torch==$torch_version" >> "$VENV/mmcourse-constraints.txt"
say "the course and its tools (constraints.txt, torch==$torch_version)"
install -c "$VENV/mmcourse-constraints.txt" -e ".[lab,test]"
[ "$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))')" = "$torch_version" ] \
  || die "the install replaced torch $torch_version; please report this."

# --- the torchvision compatibility hook (see the file's docstring) ----------------------------
"$PY" tests/_torchvision_compat.py --install
# --- nbgrader (teachers' grading, from the command line) stays out of the learner's JupyterLab:
# its server extensions slow Lab's start by seconds and its menus are not for learners. Re-enable
# with `jupyter server extension enable --sys-prefix nbgrader.server_extensions.formgrader` etc.
"$PY" - "$VENV" <<'PYEOF'
import json, sys
from pathlib import Path
etc = Path(sys.argv[1]) / "etc" / "jupyter"
if (etc / "jupyter_server_config.d" / "nbgrader.json").exists():
    for ext in ("formgrader", "assignment_list", "course_list", "validate_assignment"):
        name = f"nbgrader.server_extensions.{ext}"  # the file `jupyter server extension disable` writes
        conf = {"ServerApp": {"jpserver_extensions": {name: False}}}
        (etc / "jupyter_server_config.d" / f"{name}.json").write_text(json.dumps(conf, indent=2))
    page = etc / "labconfig" / "page_config.json"
    conf = json.loads(page.read_text()) if page.exists() else {}
    conf.setdefault("disabledExtensions", {})["@jupyter/nbgrader"] = True
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(json.dumps(conf, indent=2))
    print("nbgrader: command line only (its JupyterLab extensions are disabled in this venv)")
PYEOF

# --- the course's notebooks trusted, its Lab settings (make lab does this again each start) ----
"$PY" scripts/prepare_lab.py notebooks

say "done in $(( $(date +%s) - start )) s: $VENV (Python $pyver, torch $torch_version, CUDA $cuda)"

#!/usr/bin/env bash
# Regenerate constraints.txt: exact pins that resolve on every Python that pyproject.toml's
# requires-python admits (one universal resolution with environment markers, by uv).
# Run after changing dependencies in pyproject.toml, then commit constraints.txt.
#   scripts/compile_constraints.sh            keep current pins where they still fit
#   scripts/compile_constraints.sh --upgrade  move every pin to the newest release that fits
# torch is pinned to the version of the CPU wheel that `make setup` installs first
# (TORCH_VERSION); the CUDA stack that PyPI's Linux torch would pull (nvidia-*, cuda-*,
# triton) is left out, since the CPU build needs none of it.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=$(sed -nE 's/^torch==([^ ;]+).*/\1/p' constraints.txt | head -1)
TORCH_VERSION=${TORCH_VERSION:-$pinned}
: "${TORCH_VERSION:?cannot read the torch pin in constraints.txt, set TORCH_VERSION}"

UV=${UV:-$(command -v uv || true)}
if [ -z "$UV" ]; then
  # No uv on PATH: a private copy from PyPI in build/ (a few seconds, once).
  [ -x build/uv/bin/uv ] || { python3 -m venv build/uv && build/uv/bin/pip install -q uv; }
  UV=build/uv/bin/uv
fi

seed=$(mktemp); out=$(mktemp); trap 'rm -f "$seed" "$out"' EXIT
echo "torch==$TORCH_VERSION" > "$seed"
# Keep the current pins as preferences (uv reads them from the output file).
cp constraints.txt "$out"
"$UV" pip compile --quiet --universal --no-header --no-annotate --python-version 3.10 \
  --extra lab --extra test pyproject.toml -c "$seed" -o "$out" "$@"
# The CUDA stack, whatever its names in this release: every package only torch's CUDA build needs.
grep -vE '^(nvidia-|cuda-|triton==)' "$out" > "$out.pins" || true
{
  echo "# Exact pins for \`make setup\` and CI on every supported Python (see requires-python),"
  echo "# one universal resolution with environment markers: regenerate with"
  echo "# scripts/compile_constraints.sh. torch==$TORCH_VERSION is installed first, alone, as the CPU build"
  echo "# (scripts/setup.sh); PyPI's CUDA stack (nvidia-*, cuda-*, triton) is deliberately absent."
  cat "$out.pins"
} > constraints.txt
rm -f "$out.pins"
npins=$(grep -c '==' constraints.txt); nmarked=$(grep -c ';' constraints.txt)
echo "constraints.txt: $npins pins, $nmarked of them with environment markers"

"""Run every benchmark module in bench/ (or the ones named): ``python -m bench [name ...]``.

Each module exposes ``run()``, prints its own table and may store results under bench/results/
for notebooks to show. Benchmarks measure; they do not assert (unit tests do that).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {names}")
        return 2
    for name in chosen:
        print(f"\n## bench.{name}\n", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"bench.{name}").run()
        print(f"\n(bench.{name} took {time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Re-run notebooks and store their outputs: ``python -m mmcourse.tools.execute notebooks/NN_*.py``.

Inputs come from the ``.py`` source (the source of truth); the executed notebook, with outputs
and widget state, is written to the paired ``.ipynb``. Prints each notebook's wall time and size,
and records the time in ``timings.json`` beside the sources (only the rows of the notebooks run;
``--no-record`` skips it). The README's run-time column is made from that file:
``python -m mmcourse.tools.timings readme``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

BUDGET_S = 60.0
MAX_BYTES = 3 * 1024 * 1024


def execute(src: Path, timeout: int = 600) -> tuple[float, int]:
    """Execute ``src`` (a .py percent notebook) and write its .ipynb; return (seconds, bytes)."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(src)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(src.parent)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    dest = src.with_suffix(".ipynb")
    jupytext.write(nb, dest, fmt="ipynb")
    # Its translations (notebooks/<lang>/NN_topic.ipynb) take the new code cells and outputs now,
    # so they never drift from it; a changed Markdown cell stays English there (and fails the
    # catalog check) until `make translations` and the translator catch up.
    from mmcourse.tools.translations import rebuild_for

    for translated in rebuild_for(dest):
        print(f"  rebuilt {translated}", flush=True)
    return seconds, dest.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", type=Path)
    p.add_argument("--no-record", action="store_true", help="do not update timings.json")
    args = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mmcourse.tools.calibrate import describe, slowdown

    step_ms, factor = slowdown()  # the budget scales with this machine's slowdown (clamped to [1, 3])
    print(describe(step_ms, factor, BUDGET_S), flush=True)
    rows, bad = [], []
    for src in args.sources:
        if src.suffix != ".py":
            p.error(f"expected a notebook source NN_topic.py, got {src}")
        seconds, size = execute(src)
        rows.append((src.stem, seconds, size))
        print(f"{src.stem}: {seconds:.1f} s, {size / 1024:.0f} KiB", flush=True)
        if not args.no_record and re.fullmatch(r"\d\d_\w+", src.stem):  # one row, written at once
            from mmcourse.tools.timings import machine_load, record

            load = machine_load()
            load["slowdown"] = round(factor, 2)
            record(src.parent / "timings.json", {src.stem: seconds}, by="make execute", extra=load)
            if load and load["load"] > load["cpus"]:
                print(f"  (recorded at load {load['load']} on {load['cpus']} CPUs: this time is inflated; "
                      "re-run on a quiet machine before updating the README, or use --no-record)")
        if seconds > BUDGET_S * factor or size > MAX_BYTES:
            bad.append(src.stem)
    print("\n| notebook | wall time (s) | size (KiB) |\n|---|---:|---:|")
    for name, s, b in rows:
        print(f"| {name} | {s:.1f} | {b / 1024:.0f} |")
    if bad:
        print(f"over budget ({BUDGET_S * factor:.0f} s here or 3 MB): {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Notebook run times: recorded by ``make execute`` and ``make test``, shown in the README.

- ``notebooks/timings.json`` (committed) holds one row per notebook: the wall time of its last
  ``make execute`` run (``mmcourse.tools.execute`` records it), the date, what measured it, and
  the machine's load average and CPU count at the end of the run (a time measured beside other
  work is inflated). Running one notebook updates only its row.
- ``build/nbval-timings.json`` (not committed) holds the times ``make test`` measured under nbval
  (the root ``conftest.py`` records them), in the same format.
- The README's syllabus table has a run-time column between the markers ``<!-- timings:start -->``
  and ``<!-- timings:end -->``; :func:`rewrite_readme` fills it from the recorded times, and
  ``tests/test_timings.py`` fails when the two disagree.

Usage::

    python -m mmcourse.tools.timings readme                     # README column <- notebooks/timings.json
    python -m mmcourse.tools.timings readme --from build/nbval-timings.json   # merge nbval's first
    python -m mmcourse.tools.timings check                      # exit 1 if README and timings differ
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = ROOT / "notebooks" / "timings.json"
NBVAL_TIMINGS = ROOT / "build" / "nbval-timings.json"
README = ROOT / "README.md"
START, END = "<!-- timings:start -->", "<!-- timings:end -->"
_ROW = re.compile(r"^\|\s*`(?P<name>\d\d_\w+)`\s*\|")


def read(path: Path) -> dict[str, dict]:
    """The recorded rows ``{notebook stem: {"seconds": float, "date": str, "by": str}}`` ({} if none)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "seconds" in v for v in data.values()):
        raise ValueError(f"{path}: expected {{notebook: {{'seconds': ...}}}}, got {str(data)[:200]}")
    return data


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the CPU count: a time measured at load 7 on 2 CPUs is
    inflated several times, and the row says so."""
    import os

    try:
        load = round(os.getloadavg()[0], 1)
    except OSError:  # pragma: no cover - not on every platform
        return {}
    return {"load": load, "cpus": os.cpu_count() or 0}


def record(path: Path, seconds: Mapping[str, float], by: str, date: str | None = None,
           extra: Mapping[str, float] | None = None) -> dict[str, dict]:
    """Merge ``{notebook stem: seconds}`` into the file at ``path``: only those rows change.
    ``extra`` (e.g. :func:`machine_load`) is stored in each row too."""
    for name, s in seconds.items():
        if not re.fullmatch(r"\d\d_\w+", name):
            raise ValueError(f"notebook names look like NN_topic, got {name!r}")
        if not s >= 0:
            raise ValueError(f"{name}: seconds must be a non-negative number, got {s!r}")
    date = date or _dt.date.today().isoformat()
    rows = read(path)
    for name, s in seconds.items():
        rows[name] = {"seconds": round(float(s), 1), "date": date, "by": by, **dict(extra or {})}
    write(path, rows)
    return rows


def write(path: Path, rows: Mapping[str, Mapping]) -> None:
    """Write the rows sorted by notebook, one line each (small diffs when one notebook changes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(dict(rows[k]), ensure_ascii=False)}" for k in sorted(rows))
    path.write_text("{\n" + body + "\n}\n")


def fmt(row: Mapping | float) -> str:
    """The README's form of a recorded row: whole seconds, ``"31 s"``; when the machine was busier
    than its CPUs, the load goes with it, ``"217 s (load 7.6 on 2 CPUs)"``."""
    if not isinstance(row, Mapping):
        return f"{round(row):d} s"
    text = f"{round(row['seconds']):d} s"
    load, cpus, slow = row.get("load"), row.get("cpus"), row.get("slowdown")
    notes = []
    if slow is not None and slow > 1.2:  # mmcourse.tools.calibrate: a slower machine than the reference
        notes.append(f"on a machine {slow:g}x slower than the reference: about "
                     f"{round(row['seconds'] / slow):d} s there")
    if load is not None and cpus and load > cpus:
        notes.append(f"load {load:g} on {cpus} CPUs")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _table(text: str, where: str) -> tuple[int, int, list[str]]:
    lines = text.splitlines()
    try:
        a, b = lines.index(START), lines.index(END)
    except ValueError:
        raise ValueError(f"{where}: the syllabus table must sit between {START} and {END}") from None
    if b < a:
        raise ValueError(f"{where}: {END} comes before {START}")
    return a, b, lines


def readme_times(text: str, where: str = "README.md") -> dict[str, str]:
    """``{notebook: run-time cell}`` from the table between the markers (the last column)."""
    a, b, lines = _table(text, where)
    out = {}
    for line in lines[a + 1 : b]:
        m = _ROW.match(line)
        if m:
            out[m["name"]] = line.rstrip().rstrip("|").rsplit("|", 1)[-1].strip()
    return out


def rewrite_readme(text: str, timings: Mapping[str, Mapping], where: str = "README.md") -> str:
    """``text`` with each row's last cell set to its notebook's recorded time.

    Raises ValueError naming the notebooks that have a row but no recorded time.
    """
    a, b, lines = _table(text, where)
    missing = []
    for i in range(a + 1, b):
        m = _ROW.match(lines[i])
        if not m:
            continue
        row = timings.get(m["name"])
        if row is None:
            missing.append(m["name"])
            continue
        head = lines[i].rstrip().rstrip("|").rsplit("|", 1)[0]
        lines[i] = f"{head}| {fmt(row)} |"
    if missing:
        raise ValueError(f"{where}: no recorded time for {', '.join(missing)}: run "
                         f"`python -m mmcourse.tools.execute notebooks/<name>.py` (make execute)")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def disagreements(text: str, timings: Mapping[str, Mapping], notebooks: list[str]) -> list[str]:
    """Why the README table and the recorded times disagree (empty when they agree)."""
    shown = readme_times(text)
    problems = []
    for name in notebooks:
        if name not in shown:
            problems.append(f"{name}: no row in the README's syllabus table")
        if name not in timings:
            problems.append(f"{name}: no recorded time in notebooks/timings.json (run make execute)")
    for name, cell in shown.items():
        if name in timings and cell != fmt(timings[name]):
            problems.append(f"{name}: README says {cell!r}, recorded {fmt(timings[name])!r} "
                            f"({timings[name].get('by', '?')}, {timings[name].get('date', '?')})")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["readme", "check"])
    p.add_argument("--from", dest="source", type=Path, default=None,
                   help="merge these timings (e.g. build/nbval-timings.json) into notebooks/timings.json first")
    p.add_argument("--timings", type=Path, default=TIMINGS)
    p.add_argument("--readme", type=Path, default=README)
    args = p.parse_args(argv)
    if args.command == "readme":
        if args.source is not None:
            new = read(args.source)
            if not new:
                p.error(f"{args.source} has no timings")
            rows = read(args.timings)
            rows.update(new)
            write(args.timings, rows)
        text = args.readme.read_text()
        out = rewrite_readme(text, read(args.timings), where=str(args.readme))
        if out != text:
            args.readme.write_text(out)
        print(f"{args.readme}: run-time column from {args.timings}")
        return 0
    notebooks = sorted(p.stem for p in (args.timings.parent).glob("[0-9][0-9]_*.py"))
    problems = disagreements(args.readme.read_text(), read(args.timings), notebooks)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Write student versions of the notebooks: every solution replaced by a NotImplementedError.

In a notebook source, a solution is the lines between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (markers included). The student version keeps everything else and puts,
at the indentation of the BEGIN marker::

    raise NotImplementedError("exercise: <function name>")

Usage: ``python -m mmcourse.tools.student notebooks/*.py --out build/student``
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")


def strip_solutions(source: str, where: str = "<source>") -> tuple[str, int]:
    """Replace each solution block in ``source``; return (new source, number of blocks).

    Raises ValueError on an unmatched or nested marker, naming ``where`` and the line.
    """
    out: list[str] = []
    inside = False
    current_def = "exercise"
    n = 0
    for lineno, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}:{lineno}: nested {BEGIN!r}")
            inside = True
            n += 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("exercise: {current_def}")\n')
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"{where}:{lineno}: {END!r} without a matching {BEGIN!r}")
            inside = False
            continue
        if inside:
            continue
        m = _DEF.match(line)
        if m:
            current_def = m.group(1)
        out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN!r} is never closed by {END!r}")
    return "".join(out), n


def build_student(sources: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<name>.ipynb`` (no outputs) for every notebook source; return the paths."""
    import jupytext

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        text, n = strip_solutions(src.read_text(), where=str(src))
        nb = jupytext.reads(text, fmt="py:percent")
        nb.metadata.pop("jupytext", None)  # the student copy is a plain notebook, not a pair
        dest = out_dir / f"{src.stem}.ipynb"
        jupytext.write(nb, dest, fmt="ipynb")
        written.append(dest)
        print(f"{dest}: {n} exercise(s)")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("build/student"))
    args = p.parse_args(argv)
    build_student(args.sources, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

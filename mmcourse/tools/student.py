"""Write student versions of the notebooks, in the form nbgrader uses.

In a notebook source, a solution is the lines between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (markers included; they are nbgrader's). The student version keeps everything
else and puts, at the indentation of the BEGIN marker::

    raise NotImplementedError("exercise: <function name>")

nbgrader. Each exercise cell (``def f(...)`` with the solution, then ``check_f(f)``) becomes two
cells marked with nbgrader's cell metadata (schema version 3):

- the *answer* cell (imports and the function): an autograded answer, ``solution: true``,
  ``grade_id`` ``<notebook>-<function>``;
- the *checker* cell: ``assert check_f(f), ...`` (a failing checker raises, which is how
  nbgrader's autograder sees a failed test), ``grade: true``, ``locked: true``, ``points: 1``,
  ``grade_id`` ``<notebook>-<function>-check``.

Two forms are written:

- ``--out`` (``build/student/NN_topic.ipynb``): the *release* form handed to students, what
  ``nbgrader generate_assignment`` makes (solutions stripped, outputs cleared, locked cells not
  editable or deletable, nbgrader's checksums), with the stub above instead of nbgrader's
  ``# YOUR CODE HERE``;
- ``--nbgrader`` (``build/nbgrader/source/NN_topic/NN_topic.ipynb``): the *source* form, the
  teacher notebooks with solutions and the same metadata, one assignment per notebook, ready for
  ``nbgrader generate_assignment NN_topic`` in a course directory whose ``source/`` it is.

A translated edition has no .py: its generated notebooks are read instead
(``python -m mmcourse.tools.student notebooks/zh_CN/*.ipynb --out build/student/zh_CN``).

Usage: ``python -m mmcourse.tools.student notebooks/*.py --out build/student --nbgrader build/nbgrader``
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


SCHEMA_VERSION = 3  # nbgrader's cell metadata schema
POINTS = 1  # per exercise
_ID_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_CHECK_CALL = re.compile(r"^check_\w+$")
_DELIMITER = re.compile(r"\b(BEGIN|END) (SOLUTION|HIDDEN TESTS|MARK SCHEME)\b")


def grade_id(stem: str, function: str) -> str:
    """nbgrader's grade_id for an exercise: ``<notebook>-<function>``, letters, digits, _ and -."""
    return _ID_BAD.sub("_", f"{stem}-{function}")


def split_exercise(source: str, where: str = "<cell>") -> tuple[str, str, str]:
    """Split an exercise cell into (answer, checker, function name).

    The answer is everything up to the end of the top-level ``def`` (or ``class``) holding the
    solution; the checker is the rest, with each top-level ``check_...(...)`` call turned into
    an ``assert`` so that a failed check raises. The checker part is "" when there is none.
    """
    import ast

    tree = ast.parse(source)
    lines = source.splitlines()
    begins = [i for i, line in enumerate(lines, start=1) if line.strip() == BEGIN]
    holders = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
               and any(n.lineno <= b <= n.end_lineno for b in begins)]
    inside = sum(n.lineno <= b <= n.end_lineno for n in holders for b in begins)
    if not begins or inside < len(begins):
        raise ValueError(f"{where}: every solution must be inside a top-level def or class")
    holder, name = holders[-1], holders[0].name  # the answer runs to the end of the last one
    # the def ends at its last statement; trailing comments (the END marker) belong to it too
    stop = holder.end_lineno
    while stop < len(lines) and lines[stop].strip().startswith("#") and (
            lines[stop].strip() == END or len(lines[stop]) - len(lines[stop].lstrip()) > holder.col_offset):
        stop += 1
    answer = "\n".join(lines[:stop]).rstrip() + "\n"
    rest = lines[stop:]
    for node in reversed([n for n in tree.body if n.lineno > stop]):
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and _CHECK_CALL.match(call.func.id):
            a, b = node.lineno - 1 - stop, node.end_lineno - 1 - stop
            message = f', "{call.func.id} failed: see its message above"'
            # ast offsets count UTF-8 bytes; insert at the end first, then at the start
            end_line = rest[b].encode()
            rest[b] = (end_line[: node.end_col_offset] + message.encode() + end_line[node.end_col_offset:]).decode()
            start_line = rest[a].encode()
            rest[a] = (start_line[: node.col_offset] + b"assert " + start_line[node.col_offset:]).decode()
    checker = "\n".join(rest).strip()
    return answer, (checker + "\n" if checker else ""), name


def _meta(gid: str, *, solution: bool, grade: bool, locked: bool) -> dict:
    meta = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution}
    if grade:
        meta["points"] = POINTS
    return meta


def mark_for_nbgrader(nb, stem: str):
    """Split every exercise cell of ``nb`` (a teacher notebook) into nbgrader answer and checker
    cells, with nbgrader metadata; returns ``nb`` (changed in place)."""
    from nbformat.v4 import new_code_cell

    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            # nbgrader takes "BEGIN SOLUTION" anywhere in any cell for a marker, prose included
            # (00 explains the markers): a no-break space keeps the text and defuses it.
            cell.source = _DELIMITER.sub(lambda m: f"{m[1]}\u00a0{m[2]}", cell.source)
            cells.append(cell)
            continue
        answer, checker, function = split_exercise(cell.source, where=f"{stem} cell {i}")
        gid = grade_id(stem, function)
        cell.source = answer.rstrip("\n")
        cell.metadata["nbgrader"] = _meta(gid, solution=True, grade=False, locked=False)
        cells.append(cell)
        if checker:
            test = new_code_cell(checker.rstrip("\n"))
            test.metadata["nbgrader"] = _meta(f"{gid}-check", solution=False, grade=True, locked=True)
            cells.append(test)
    nb.cells = cells
    for i, cell in enumerate(cells):  # stable ids: the same build gives the same files
        meta = cell.metadata.get("nbgrader")
        cell.id = meta["grade_id"][-64:] if meta else f"{stem[:2]}-{i:03d}"
    return nb


def compute_checksum(cell) -> str:
    """nbgrader's checksum of a marked cell (nbgrader.utils.compute_checksum, schema 3): md5 of
    the source, the cell type, the grade/solution/locked flags, the grade_id and the points."""
    import hashlib

    meta = cell.metadata["nbgrader"]
    m = hashlib.md5()
    m.update(cell.source.encode("utf-8"))
    m.update(cell.cell_type.encode("utf-8"))
    for flag in ("grade", "solution", "locked"):
        m.update(str(bool(meta.get(flag, False))).encode("utf-8"))
    m.update(meta["grade_id"].encode("utf-8"))
    if meta.get("grade"):
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def release(nb, stem: str):
    """The student (release) form of a marked teacher notebook, as ``nbgrader generate_assignment``
    makes it: solutions stripped, outputs cleared, locked and solution cells not deletable,
    locked cells not editable, checksums added. Returns ``nb`` (changed in place)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        if meta.get("solution"):
            stripped, _ = strip_solutions(cell.source, where=f"{stem} cell {i}")
            cell.source = stripped if cell.source.endswith("\n") else stripped.rstrip("\n")
        if meta.get("locked") or meta.get("solution"):
            cell.metadata["deletable"] = False
        if meta.get("locked"):
            cell.metadata["editable"] = False
        meta["checksum"] = compute_checksum(cell)
        meta["cell_type"] = cell.cell_type
    return nb


def _read_teacher(src: Path):
    """The teacher notebook from its jupytext source (NN_topic.py) or, for a translated edition
    without one (notebooks/zh_CN/NN_topic.ipynb), from the generated .ipynb."""
    import jupytext

    if src.suffix == ".ipynb":  # what the .py would give: no outputs, cell metadata or widget state
        nb = jupytext.read(src, fmt="ipynb")
        nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language")}
        for cell in nb.cells:
            cell.metadata = {}
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    else:
        nb = jupytext.reads(src.read_text(), fmt="py:percent")
    nb.metadata.pop("jupytext", None)  # the copies are plain notebooks, not pairs
    return mark_for_nbgrader(nb, src.stem)


def _solution_blocks(src: Path) -> int:
    """How many solution blocks the source holds (a marker error names the cell or line)."""
    if src.suffix != ".ipynb":
        return strip_solutions(src.read_text(), where=str(src))[1]
    import json

    cells = json.loads(src.read_text(encoding="utf-8"))["cells"]
    return sum(strip_solutions("".join(c["source"]), where=f"{src} cell {i}")[1]
               for i, c in enumerate(cells) if c["cell_type"] == "code")


NBGRADER_CONFIG = """\
# An nbgrader course directory written by `make student` (mmcourse.tools.student).
# source/NN_topic/NN_topic.ipynb are the teacher notebooks with nbgrader's cell metadata.
# From this directory: nbgrader generate_assignment NN_topic   (writes release/NN_topic/)
# Autograding runs the notebooks, so its kernel needs the course installed (pip install -e <repo>).
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "mmcourse"
"""


def build_student(sources: list[Path], out_dir: Path, nbgrader_dir: Path | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>.ipynb`` (the release form, no outputs) for every notebook source
    and, with ``nbgrader_dir``, ``<nbgrader_dir>/source/<name>/<name>.ipynb`` (the source form);
    return the release paths."""
    import jupytext

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        n = _solution_blocks(src)  # marker errors name the line
        nb = _read_teacher(src)
        if nbgrader_dir is not None:
            dest = nbgrader_dir / "source" / src.stem / f"{src.stem}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            jupytext.write(nb, dest, fmt="ipynb")
        dest = out_dir / f"{src.stem}.ipynb"
        jupytext.write(release(nb, src.stem), dest, fmt="ipynb")
        written.append(dest)
        print(f"{dest}: {n} exercise(s)")
    if nbgrader_dir is not None:
        (nbgrader_dir / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
        print(f"nbgrader source form: {nbgrader_dir / 'source'} (one assignment per notebook)")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("build/student"), help="release form (student notebooks)")
    p.add_argument("--nbgrader", type=Path, default=Path("build/nbgrader"),
                   help="nbgrader course directory for the source form ('' to skip)")
    args = p.parse_args(argv)
    build_student(args.sources, args.out, args.nbgrader if str(args.nbgrader) not in ("", ".") else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

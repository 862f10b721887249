"""Find exercises in a notebook and check that no cell above one gives its answer away.

An exercise is a code cell with a solution between ``### BEGIN SOLUTION`` and ``### END
SOLUTION`` inside a function (``def add_noise(...)``) and, usually, a checker call
(``check_add_noise(add_noise)``). Its *answer names* are:

- the function the learner writes (``add_noise``; a ``my_``/``your_`` prefix is dropped, so
  ``my_ddpm_step`` also names ``ddpm_step``);
- what its checker checks (``check_clip_loss(...)`` names ``clip_loss``);
- the functions whose source the cells right after it show as "the course's version"
  (``show_source(eps_loss)`` below the exercise, up to the next heading or exercise);
- any name listed on an ``# answers: name, other`` comment line in the exercise cell.

A cell above the exercise gives the answer away when

1. its source displays the source of an answer name: ``show_source(x)``, ``inspect.getsource(x)``,
   ``getsource(x)``, ``x??`` / ``??x`` or ``%psource x`` / ``%pinfo2 x`` (``x`` may be dotted:
   ``NoiseSchedule.add_noise`` names ``add_noise``); or
2. its stored outputs contain a line of the solution (compared without spaces and comments, with
   ``1.0`` read as ``1``, allowing a 10 % difference), for lines of at least
   ``MIN_LINE_CHARS`` characters.

Usage: ``python -m mmcourse.tools.exercises notebooks/NN_*.py`` checks each .py (sources) and
its paired .ipynb (stored outputs); exit status 1 lists every give-away.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
MIN_LINE_CHARS = 20  # shorter solution lines ("return mean") say too little to count
SIMILARITY = 0.9  # difflib ratio above which an output line counts as the solution line

_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")
_CHECKER = re.compile(r"^\s*(?:\w+\s*=\s*)?(check_\w+)\s*\(", re.M)
_ANSWERS = re.compile(r"^\s*#\s*answers?\s*:\s*(.+)$", re.M | re.I)
_PREFIXES = ("my_", "your_", "student_")
_SHOW_FUNCS = {"show_source", "getsource", "getsourcelines"}
_SHOW_MAGICS = {"pinfo2", "psource", "pfile"}
_TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "text/x-python", "text/latex")

Cell = Mapping  # an nbformat cell: cell_type, source, and outputs for code cells


@dataclass(frozen=True)
class Exercise:
    """One solution block: where it is and which names answer it."""

    cell: int  # index of the exercise cell in the notebook
    function: str  # the function the learner writes
    checker: str | None  # e.g. "check_add_noise"
    solution: str  # the lines between the markers
    answers: frozenset[str]


@dataclass(frozen=True)
class Giveaway:
    """A cell above an exercise that shows its answer."""

    exercise: Exercise
    cell: int
    how: str

    def __str__(self) -> str:
        return (f"cell {self.cell} (above the exercise `{self.exercise.function}` in cell "
                f"{self.exercise.cell}) {self.how}")


def _src(cell: Cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _strip_prefix(name: str) -> str:
    for p in _PREFIXES:
        if name.startswith(p) and len(name) > len(p):
            return name[len(p):]
    return name


def shown_names(source: str) -> list[str]:
    """Dotted names whose source a code cell displays, in order.

    Understands ``show_source(x)``, ``inspect.getsource(x)``, ``getsource(x)``, ``x??``, ``??x``,
    ``%psource x``, ``%pinfo2 x`` and ``%pfile x``; comments and strings are ignored. A cell
    that does not parse gives no names.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if fname in _SHOW_FUNCS and node.args:
            try:
                names.append(ast.unparse(node.args[0]))
            except Exception:  # pragma: no cover - ast.unparse handles every expression
                pass
        elif fname == "run_line_magic" and len(node.args) >= 2:
            magic, arg = node.args[0], node.args[1]
            if (isinstance(magic, ast.Constant) and magic.value in _SHOW_MAGICS
                    and isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                names.append(arg.value.strip())
    # ast.walk is breadth first; report in source order
    return sorted(names, key=source.find)


def _leaf(dotted: str) -> str:
    """``NoiseSchedule.add_noise`` -> ``add_noise``; ``mod.f`` -> ``f``."""
    return dotted.strip().rstrip(")").split(".")[-1].split("(")[0].strip()


def _is_heading(cell: Cell) -> bool:
    return cell.get("cell_type") == "markdown" and any(
        line.lstrip().startswith("#") for line in _src(cell).splitlines())


def find_exercises(cells: Sequence[Cell]) -> list[Exercise]:
    """Every solution block of a notebook, with its answer names.

    Raises ValueError on unbalanced markers, naming the cell.
    """
    found: list[tuple[int, str, str | None, str, set[str]]] = []
    for i, cell in enumerate(cells):
        source = _src(cell)
        if cell.get("cell_type") != "code" or (BEGIN not in source and END not in source):
            continue
        checkers = _CHECKER.findall(source)
        declared = {n.strip() for m in _ANSWERS.findall(source) for n in m.split(",") if n.strip()}
        function, inside, block = "exercise", False, []
        for line in source.splitlines():
            s = line.strip()
            if s == BEGIN:
                if inside:
                    raise ValueError(f"cell {i}: nested {BEGIN!r}")
                inside, block = True, []
            elif s == END:
                if not inside:
                    raise ValueError(f"cell {i}: {END!r} without a matching {BEGIN!r}")
                inside = False
                checker = checkers[0] if checkers else None
                names = {function, _strip_prefix(function)} | declared
                if checker:
                    names.add(checker[len("check_"):])
                found.append((i, function, checker, "\n".join(block), names))
            elif inside:
                block.append(line)
            else:
                m = _DEF.match(line)
                if m:
                    function = m.group(1)
        if inside:
            raise ValueError(f"cell {i}: {BEGIN!r} is never closed by {END!r}")

    exercise_cells = {f[0] for f in found}
    out = []
    for i, function, checker, solution, names in found:
        # "Compare with the course's version": what the cells right after the exercise show.
        for j in range(i + 1, len(cells)):
            if j in exercise_cells or _is_heading(cells[j]):
                break
            if cells[j].get("cell_type") == "code":
                names |= {_leaf(n) for n in shown_names(_src(cells[j]))}
        out.append(Exercise(i, function, checker, solution, frozenset(n for n in names if n)))
    return out


def _drop_comment(line: str) -> str:
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:k]
    return line


def normalize(line: str) -> str:
    """A code line without comments and spaces, with ``1.0`` read as ``1``."""
    s = re.sub(r"\s+", "", _drop_comment(line))
    return re.sub(r"(?<![\w.])(\d+)\.0(?![\d])", r"\1", s)


def solution_lines(solution: str) -> list[str]:
    """The normalized solution lines long enough to identify it."""
    lines = [normalize(line) for line in solution.splitlines()]
    return [s for s in lines if len(s) >= MIN_LINE_CHARS]


def output_text(cell: Cell) -> str:
    """The text of a code cell's stored outputs (streams, text/markdown/html/plain, errors)."""
    parts = []
    for out in cell.get("outputs", []) or []:
        if out.get("output_type") == "stream":
            parts.append(_src({"source": out.get("text", "")}))
        elif out.get("output_type") == "error":
            parts.extend(out.get("traceback", []))
        for mime in _TEXT_MIMES:
            data = (out.get("data") or {}).get(mime)
            if data is not None:
                text = _src({"source": data})
                if mime == "text/html":
                    text = html.unescape(re.sub(r"<[^>]+>", "", text))
                parts.append(text)
    return "\n".join(parts)


def matching_line(solution: Iterable[str], text: str) -> str | None:
    """The first normalized solution line that ``text`` contains (up to SIMILARITY), or None."""
    lines = {normalize(t) for t in text.splitlines()}
    lines.discard("")
    for want in solution:
        for have in lines:
            if want == have or want in have and len(want) >= 0.9 * len(have):
                return want
            if abs(len(have) - len(want)) <= 0.2 * len(want):
                if difflib.SequenceMatcher(None, want, have).ratio() >= SIMILARITY:
                    return want
    return None


def find_giveaways(source_cells: Sequence[Cell], output_cells: Sequence[Cell] | None = None) -> list[Giveaway]:
    """Cells above an exercise that show its answer.

    ``source_cells``: the notebook as written (the jupytext .py read as a notebook), searched for
    calls that display an answer's source. ``output_cells``: the executed notebook (the paired
    .ipynb), whose stored outputs are searched for solution lines; defaults to ``source_cells``.
    """
    found = []
    for ex in find_exercises(source_cells):
        for i in range(ex.cell):
            cell = source_cells[i]
            if cell.get("cell_type") != "code":
                continue
            for dotted in shown_names(_src(cell)):
                if _leaf(dotted) in ex.answers:
                    found.append(Giveaway(ex, i, f"shows the source of `{dotted}`, an answer to it"))
    outputs = source_cells if output_cells is None else output_cells
    for ex in find_exercises(outputs):
        want = solution_lines(ex.solution)
        for i in range(ex.cell):
            cell = outputs[i]
            if cell.get("cell_type") != "code":
                continue
            line = matching_line(want, output_text(cell))
            if line is not None:
                found.append(Giveaway(ex, i, f"has a stored output with the solution line `{line}`"))
    return found


def check_pair(py: Path, ipynb: Path | None = None) -> list[Giveaway]:
    """Give-aways in a jupytext .py notebook and (if it exists) its paired .ipynb."""
    import jupytext
    import nbformat

    src = jupytext.read(py)
    ipynb = py.with_suffix(".ipynb") if ipynb is None else ipynb
    executed = nbformat.read(ipynb, as_version=4) if ipynb.exists() else src
    return find_giveaways(src.cells, executed.cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+", type=Path, help="notebooks/NN_topic.py files")
    args = p.parse_args(argv)
    bad = 0
    for py in args.sources:
        for g in check_pair(py):
            print(f"{py}: {g}")
            bad += 1
    if bad:
        print(f"{bad} exercise answer(s) shown before the exercise: move the show_source/?? after it")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

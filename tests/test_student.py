"""Student versions: solutions are stripped, and each exercise raises NotImplementedError.

Exercise cells are self-contained (they import their checker), so each can be executed here on
its own, after a prelude of the imports every notebook has, without running the whole notebook.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mmcourse.tools.student import BEGIN, END, build_student, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
PRELUDE = "import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def solution_lines(source: str) -> list[str]:
    """The non-trivial lines between the markers in a teacher source."""
    lines, inside = [], False
    for line in source.splitlines():
        s = line.strip()
        if s == BEGIN:
            inside = True
        elif s == END:
            inside = False
        elif inside and len(s) > 12:
            lines.append(s)
    return lines


def count_markers(source: str) -> int:
    return sum(line.strip() == BEGIN for line in source.splitlines())


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    build_student(SOURCES, out)
    return out


def exercise_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and "NotImplementedError(\"exercise:" in c.source]


def test_strip_solutions_keeps_indentation_and_names_the_function():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nprint(f)\n"
    out, n = strip_solutions(src)
    assert n == 1
    assert out == 'def f(x):\n    y = 1\n    raise NotImplementedError("exercise: f")\n\nprint(f)\n'


@pytest.mark.parametrize("bad, msg", [
    (f"{BEGIN}\nx\n", "never closed"),
    (f"x\n{END}\n", "without a matching"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "nested"),
])
def test_unbalanced_markers_are_errors_with_a_line_number(bad, msg):
    with pytest.raises(ValueError, match=msg):
        strip_solutions(bad, where="nb.py")


def test_every_notebook_with_exercises_gets_a_student_version(student_dir):
    for src in SOURCES:
        assert (student_dir / f"{src.stem}.ipynb").exists()
    assert any(count_markers(s.read_text()) for s in SOURCES), "the course should have exercises"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_no_solution_text_survives(src, student_dir):
    nb = nbformat.read(student_dir / f"{src.stem}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert BEGIN not in text and END not in text
    for line in solution_lines(src.read_text()):
        assert line not in text, f"solution line survived in the student {src.stem}: {line!r}"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_each_student_exercise_cell_raises_not_implemented(src, student_dir, capsys):
    nb = nbformat.read(student_dir / f"{src.stem}.ipynb", as_version=4)
    cells = exercise_cells(nb)
    assert len(cells) == count_markers(src.read_text())
    for cell in cells:
        with pytest.raises(NotImplementedError, match="exercise"):
            exec(compile(PRELUDE + cell, f"<{src.stem} exercise>", "exec"), {"__name__": "__exercise__"})


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_each_teacher_exercise_cell_passes_its_checker(src, capsys):
    import jupytext

    nb = jupytext.read(src)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(cells) == count_markers(src.read_text())
    for cell in cells:
        exec(compile(PRELUDE + cell, f"<{src.stem} solution>", "exec"), {"__name__": "__exercise__"})
        out = capsys.readouterr().out
        assert "✓" in out and "✗" not in out, out

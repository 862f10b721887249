"""Student versions: solutions are stripped, each exercise raises NotImplementedError, and both
forms (release in build/student, source in build/nbgrader) are what nbgrader expects.

Exercise cells are self-contained (they import their checker), so each can be executed here on
its own, after a prelude of the imports every notebook has, without running the whole notebook.

nbgrader itself is used when it is importable in this venv or when MMCOURSE_NBGRADER names its
command (e.g. a scratch venv: ``python -m venv /tmp/nbg && /tmp/nbg/bin/pip install -c
constraints.txt nbgrader``, then ``MMCOURSE_NBGRADER=/tmp/nbg/bin/nbgrader``); without it those
tests skip and the metadata is checked against nbgrader's schema (version 3) written out below.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mmcourse.tools.student import (
    BEGIN,
    END,
    build_student,
    compute_checksum,
    grade_id,
    mark_for_nbgrader,
    release,
    split_exercise,
    strip_solutions,
)

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
def built(tmp_path_factory):
    """(release dir, nbgrader course dir) from one build of every notebook."""
    out = tmp_path_factory.mktemp("student")
    build_student(SOURCES, out / "student", out / "nbgrader")
    return out / "student", out / "nbgrader"


@pytest.fixture(scope="module")
def student_dir(built):
    return built[0]


def exercise_cells(nb) -> list[str]:
    """Each exercise as one runnable text: its answer cell and the checker cell after it."""
    cells = nb.cells
    out = []
    for i, c in enumerate(cells):
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"):
            nxt = cells[i + 1] if i + 1 < len(cells) else None
            check = nxt.source if nxt is not None and nxt.metadata.get("nbgrader", {}).get("grade") else ""
            out.append(c.source + "\n\n" + check)
    return out


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
        assert 'NotImplementedError("exercise: ' in cell
        with pytest.raises(NotImplementedError, match="exercise"):
            exec(compile(PRELUDE + cell, f"<{src.stem} exercise>", "exec"), {"__name__": "__exercise__"})


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_each_teacher_exercise_cell_passes_its_checker(src, capsys):
    import jupytext

    nb = jupytext.read(src)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(cells) == count_markers(src.read_text())
    # the nbgrader source form: the answer cell, then the checker cell with its assert
    cells += exercise_cells(mark_for_nbgrader(nb, src.stem))
    for cell in cells:
        exec(compile(PRELUDE + cell, f"<{src.stem} solution>", "exec"), {"__name__": "__exercise__"})
        out = capsys.readouterr().out
        assert "✓" in out and "✗" not in out, out


# ------------------------------------------------------------------------------------- nbgrader

NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution"}  # schema 3, required
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def exercise_source(extra_after: str = "check_f(f)\n") -> str:
    return ("import torch\n\nfrom mmcourse.checks import check_f\n\n\n"
            "def f(x):\n    \"\"\"Double x.\"\"\"\n    " + BEGIN + "\n    return 2 * x\n    " + END + "\n\n\n" + extra_after)


def test_split_exercise_keeps_the_answer_and_turns_the_check_into_an_assert():
    answer, checker, name = split_exercise(exercise_source())
    assert name == "f"
    assert answer.endswith(f"    {END}\n") and "check_f(f)" not in answer
    assert checker == 'assert check_f(f), "check_f failed: see its message above"\n'


def test_split_exercise_multi_line_and_non_ascii_checks_and_other_statements():
    after = "check_f(\n    f,\n)\nprint('é', check_f(f))  # not a bare call: kept as it is\nv = check_f(f); check_f(f)\n"
    _, checker, _ = split_exercise(exercise_source(after))
    assert checker.splitlines() == [
        "assert check_f(",
        "    f,",
        ')' + ', "check_f failed: see its message above"',
        "print('é', check_f(f))  # not a bare call: kept as it is",
        'v = check_f(f); assert check_f(f), "check_f failed: see its message above"',
    ]
    compile(checker, "<checker>", "exec")


def test_split_exercise_without_a_checker_and_with_a_stray_solution():
    answer, checker, _ = split_exercise(exercise_source(""))
    assert checker == "" and END in answer
    with pytest.raises(ValueError, match="inside a top-level def"):
        split_exercise(f"{BEGIN}\nx = 1\n{END}\n", where="nb cell 3")


def test_checksum_agrees_with_nbgrader():
    """Values from nbgrader 0.9.6's nbgrader.utils.compute_checksum on the same two cells."""
    from nbformat.v4 import new_code_cell

    check = new_code_cell('assert check_f(f), "check_f failed: see its message above"')
    check.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                  "grade_id": "00_x-f-check", "points": 1, "schema_version": 3}
    answer = new_code_cell('def f(x):\n    raise NotImplementedError("exercise: f")')
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                   "grade_id": "00_x-f", "schema_version": 3}
    assert compute_checksum(check) == "82de6180e38b516d6310c840c841b65c"
    assert compute_checksum(answer) == "92246b74d5f427b328f9bdec93742180"


def validate_nbgrader_v3(nb) -> list[str]:
    """nbgrader's metadata rules for schema 3 (nbgrader/nbgraderformat/v3.py), as a list of problems."""
    problems, seen = [], set()
    for i, c in enumerate(nb.cells):
        meta = c.metadata.get("nbgrader")
        if meta is None:
            continue
        missing = NBGRADER_KEYS - set(meta)
        if missing:
            problems.append(f"cell {i}: missing {sorted(missing)}")
            continue
        if meta["schema_version"] != 3:
            problems.append(f"cell {i}: schema_version {meta['schema_version']}")
        if not GRADE_ID.match(meta["grade_id"]):
            problems.append(f"cell {i}: bad grade_id {meta['grade_id']!r}")
        if meta["grade"] and "points" not in meta:
            problems.append(f"cell {i}: grade cell without points")
        if c.cell_type == "markdown" and meta["grade"] != meta["solution"]:
            problems.append(f"cell {i}: markdown cell must be grade and solution together")
        if "cell_type" in meta and meta["cell_type"] != c.cell_type:
            problems.append(f"cell {i}: cell_type {meta['cell_type']} in metadata, {c.cell_type} in fact")
        if meta["grade_id"] in seen:
            problems.append(f"cell {i}: duplicate grade_id {meta['grade_id']}")
        seen.add(meta["grade_id"])
        if meta["solution"] and not meta["grade"] and meta["locked"]:
            problems.append(f"cell {i}: a locked solution cell cannot be answered")
    return problems


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_both_forms_carry_nbgrader_metadata(src, built):
    student, course = built
    source = nbformat.read(course / "source" / src.stem / f"{src.stem}.ipynb", as_version=4)
    handout = nbformat.read(student / f"{src.stem}.ipynb", as_version=4)
    n = count_markers(src.read_text())
    for nb, form in ((source, "source"), (handout, "release")):
        nbformat.validate(nb)
        assert validate_nbgrader_v3(nb) == [], form
        ids = [c.id for c in nb.cells]
        assert len(set(ids)) == len(ids) and all(CELL_ID.match(i) for i in ids), form
        marked = [c for c in nb.cells if "nbgrader" in c.metadata]
        answers = [c for c in marked if c.metadata.nbgrader["solution"]]
        checks = [c for c in marked if c.metadata.nbgrader["grade"]]
        assert len(answers) == n and len(checks) == n, form
        for a in answers:
            assert a.metadata.nbgrader["grade_id"].startswith(f"{src.stem}-")
            assert a.metadata.nbgrader["locked"] is False
        for c in checks:
            assert c.metadata.nbgrader["locked"] is True and c.metadata.nbgrader["points"] == 1
            assert c.source.startswith("assert check_"), c.source
        # outside the solution cells nbgrader must find no marker (it matches "BEGIN SOLUTION" anywhere)
        for c in nb.cells:
            if c not in answers:
                assert "BEGIN SOLUTION" not in c.source and "END SOLUTION" not in c.source, (form, c.source[:200])
    for a in (c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")):
        assert BEGIN in a.source and END in a.source
    for c in handout.cells:
        meta = c.metadata.get("nbgrader")
        if meta:
            assert meta["checksum"] == compute_checksum(c)
            assert c.metadata["deletable"] is False
            assert c.metadata.get("editable", True) is (not meta["locked"])
    # the release is the source with its solutions stripped (cell by cell)
    assert [c.cell_type for c in source.cells] == [c.cell_type for c in handout.cells]
    assert (course / "nbgrader_config.py").exists()


def test_release_of_a_marked_notebook_is_deterministic():
    import jupytext

    src = next(s for s in SOURCES if count_markers(s.read_text()))
    a = release(mark_for_nbgrader(jupytext.read(src), src.stem), src.stem)
    b = release(mark_for_nbgrader(jupytext.read(src), src.stem), src.stem)
    assert nbformat.writes(a) == nbformat.writes(b)
    assert grade_id("01_x", "my fn") == "01_x-my_fn"


def nbgrader_command() -> list[str]:
    env = os.environ.get("MMCOURSE_NBGRADER")
    if env:
        return [env]
    if importlib.util.find_spec("nbgrader") is not None:
        return [sys.executable, "-m", "nbgrader"]
    pytest.skip("nbgrader is not installed: `pip install -c constraints.txt nbgrader` (or set "
                "MMCOURSE_NBGRADER to an nbgrader command) to test the forms with nbgrader itself")


def run_nbgrader(course: Path, *args: str, env: dict | None = None) -> str:
    cmd = nbgrader_command()
    bin_dir = str(Path(cmd[0]).parent)  # nbgrader runs alembic from its own venv's bin
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), **(env or {}))
    r = subprocess.run([*cmd, *args], cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def nbgrader_course(built, tmp_path_factory):
    """A copy of build/nbgrader after `nbgrader generate_assignment` of every notebook."""
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(built[1], course, dirs_exist_ok=True)
    for src in SOURCES:
        run_nbgrader(course, "generate_assignment", src.stem, "--force")
    return course


STUB = re.compile(r'raise NotImplementedError\("exercise: \w+"\)|# YOUR CODE HERE\n\s*raise NotImplementedError\(\)')


@pytest.mark.slow  # one nbgrader run per notebook, ~5-15 s each
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_nbgrader_generates_our_release_form(src, built, nbgrader_course):
    """nbgrader's generate_assignment on the source form gives build/student's notebook, up to
    the stub: ours says which function to write, nbgrader's is `# YOUR CODE HERE`."""
    ours = nbformat.read(built[0] / f"{src.stem}.ipynb", as_version=4)
    theirs = nbformat.read(nbgrader_course / "release" / src.stem / f"{src.stem}.ipynb", as_version=4)
    assert len(ours.cells) == len(theirs.cells)
    for a, b in zip(ours.cells, theirs.cells):
        assert (a.cell_type, a.id) == (b.cell_type, b.id)
        assert STUB.sub("STUB", a.source) == STUB.sub("STUB", b.source)
        ma, mb = dict(a.metadata), dict(b.metadata)
        if "nbgrader" in ma and ma["nbgrader"]["solution"]:  # checksums of different stubs
            ma["nbgrader"] = {k: v for k, v in ma["nbgrader"].items() if k != "checksum"}
            mb["nbgrader"] = {k: v for k, v in mb["nbgrader"].items() if k != "checksum"}
        assert ma == mb
        assert not b.get("outputs")


@pytest.mark.slow
def test_nbgrader_autogrades_a_solved_and_an_unsolved_submission(built, nbgrader_course, tmp_path):
    """The teacher notebook scores full points, the release scores 0 (01: one exercise, a quick run)."""
    stem = "01_diffusion_forward"
    course = nbgrader_course
    kernels = tmp_path / "jupyter"
    (kernels / "kernels" / "python3").mkdir(parents=True)
    (kernels / "kernels" / "python3" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mmcourse", "language": "python"}))
    for student, nb in (("solved", course / "source" / stem), ("unsolved", course / "release" / stem)):
        dest = course / "submitted" / student / stem
        dest.mkdir(parents=True)
        shutil.copyfile(nb / f"{stem}.ipynb", dest / f"{stem}.ipynb")
    run_nbgrader(course, "autograde", stem, "--force",
                 env={"JUPYTER_PATH": str(kernels), "MPLBACKEND": "Agg", "OMP_WAIT_POLICY": "PASSIVE"})
    run_nbgrader(course, "export", "--to", str(tmp_path / "grades.csv"))
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())
            if r["assignment"] == stem}
    n = count_markers((ROOT / "notebooks" / f"{stem}.py").read_text())
    assert float(rows["solved"]["max_score"]) == n
    assert float(rows["solved"]["score"]) == n
    assert float(rows["unsolved"]["score"]) == 0

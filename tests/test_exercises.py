"""No exercise's answer is shown above the exercise (mmcourse.tools.exercises).

Unit tests on small synthetic notebooks, then the rule over the course's notebooks: the .py
sources (no show_source/??/getsource of an answer above its exercise) and the stored outputs of
the paired .ipynb (no solution line printed above its exercise).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from mmcourse.tools.exercises import (
    BEGIN,
    END,
    check_pair,
    find_exercises,
    find_giveaways,
    main,
    matching_line,
    normalize,
    shown_names,
    solution_lines,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def exercise(name: str = "add_noise", checker: str | None = "check_add_noise", extra: str = "") -> str:
    call = f"\n{checker}({name})\n" if checker else ""
    return (f"{extra}def {name}(x0, noise, a):\n"
            f"    {BEGIN}\n"
            f"    a = a.reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ...)\n"
            f"    return a.sqrt() * x0 + (1 - a).sqrt() * noise\n"
            f"    {END}\n{call}")


def shown(text: str):
    """A code cell whose stored output is ``text`` as show_source displays it (Markdown)."""
    cell = new_code_cell("show_source(something)")
    cell.outputs = [new_output("display_data", data={"text/markdown": f"```python\n{text}\n```",
                                                     "text/plain": "<IPython.core.display.Markdown object>"})]
    return cell


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("source, names", [
    ("show_source(NoiseSchedule.add_noise)", ["NoiseSchedule.add_noise"]),
    ("import inspect\nprint(inspect.getsource(fit))", ["fit"]),
    ("from inspect import getsource\ngetsource(mm.fit)", ["mm.fit"]),
    ("fit??", ["fit"]),
    ("??mmcourse.train.fit", ["mmcourse.train.fit"]),
    ("%psource fit", ["fit"]),
    ("x = 1\nshow_source(a)\nb??", ["a", "b"]),
    ("# show_source(fit) is in a comment; so is fit??\nprint('show_source(fit)')", []),
    ("fit?", []),  # the signature and docstring only: no source
    ("def broken(:\n", []),
])
def test_shown_names_finds_every_way_to_display_source(source, names):
    assert shown_names(source) == names


def test_find_exercises_names_the_function_the_checker_and_the_compare_cell():
    cells = [
        new_markdown_cell("## 5. Exercise"),
        new_code_cell(exercise("my_ddpm_step", "check_ddpm_step")),
        new_markdown_cell("Compare with the course's version:"),
        new_code_cell("show_source(samplers.ddpm_reference_step)"),
        new_markdown_cell("## 6. Next section"),
        new_code_cell("show_source(unrelated)"),
    ]
    (ex,) = find_exercises(cells)
    assert ex.cell == 1 and ex.function == "my_ddpm_step" and ex.checker == "check_ddpm_step"
    assert ex.answers == {"my_ddpm_step", "ddpm_step", "ddpm_reference_step"}
    assert "return a.sqrt()" in ex.solution and BEGIN not in ex.solution


def test_declared_answers_and_two_exercises_in_one_notebook():
    cells = [new_code_cell(exercise("f", None, extra="# answers: eps_loss, other\n")),
             new_code_cell(exercise("g", "check_h"))]
    a, b = find_exercises(cells)
    assert a.answers == {"f", "eps_loss", "other"} and a.checker is None
    assert (b.cell, b.answers) == (1, {"g", "h"})


@pytest.mark.parametrize("bad, msg", [
    (f"def f():\n    {BEGIN}\n    pass\n", "never closed"),
    (f"def f():\n    pass\n    {END}\n", "without a matching"),
])
def test_unbalanced_markers_name_the_cell(bad, msg):
    with pytest.raises(ValueError, match=f"cell 1: .*{msg}"):
        find_exercises([new_code_cell("x = 1"), new_code_cell(bad)])


def test_normalize_ignores_spaces_comments_and_float_ones():
    assert normalize("  return (1.0 - a).sqrt() * x  # the noise part") == "return(1-a).sqrt()*x"
    assert normalize("x = '#not a comment'") == "x='#notacomment'"
    assert normalize("y = 10.05 + 2.0") == "y=10.05+2"
    assert solution_lines("    return mean\n    a = alphas_cumprod[t].reshape(-1, 1)\n") == \
        ["a=alphas_cumprod[t].reshape(-1,1)"]


def test_matching_line_tolerates_small_differences_only():
    want = solution_lines("return a.sqrt() * x0 + (1 - a).sqrt() * noise")
    assert matching_line(want, "    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise\n")
    assert matching_line(want, "    return a.sqrt()*x0 + (1 - a).sqrt()*noise  # closed form\n")
    assert matching_line(want, "return torch.sqrt(alpha_bar) * x0 + torch.sqrt(1 - alpha_bar) * eps") is None
    assert matching_line(want, "") is None


# ---------------------------------------------------------------------------- the give-aways


@pytest.mark.parametrize("above", [
    "show_source(NoiseSchedule.add_noise)",
    "add_noise??",
    "import inspect\nprint(inspect.getsource(mmcourse.diffusion.add_noise))",
])
def test_showing_an_answer_above_its_exercise_is_found(above):
    cells = [new_code_cell("import torch"), new_code_cell(above), new_code_cell(exercise())]
    (g,) = find_giveaways(cells)
    assert g.cell == 1 and g.exercise.cell == 2 and "add_noise" in str(g)


def test_showing_it_after_the_exercise_or_showing_other_functions_is_fine():
    cells = [new_code_cell("show_source(NoiseSchedule.q_step)\nfit??"), new_code_cell(exercise()),
             new_markdown_cell("Compare:"), new_code_cell("show_source(NoiseSchedule.add_noise)")]
    assert find_giveaways(cells) == []


def test_the_course_version_shown_after_counts_as_an_answer_above():
    """02's case: the course's function has another name (eps_loss for diffusion_loss)."""
    cells = [new_code_cell("show_source(eps_loss)"), new_code_cell(exercise("diffusion_loss", "check_diffusion_loss")),
             new_code_cell("show_source(eps_loss)  # compare with the course's version")]
    (g,) = find_giveaways(cells)
    assert g.cell == 0 and "eps_loss" in g.how


def test_a_stored_output_with_the_solution_is_found_even_without_a_call():
    """The source was printed some other way (a helper, a print of a string): the outputs tell."""
    source = [new_code_cell("helper()"), new_code_cell(exercise())]
    executed = [shown("def f(x0, noise, t):\n    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise"),
                new_code_cell(exercise())]
    (g,) = find_giveaways(source, executed)
    assert g.cell == 0 and "stored output" in g.how and "return" in g.how
    # the same output below the exercise is the intended "compare with the course's version"
    assert find_giveaways(source[::-1][:1] + source[:1], executed[::-1]) == []


def test_outputs_of_unrelated_code_are_fine():
    executed = [shown("def q_step(x, t, noise):\n    return (1 - b).sqrt() * x + b.sqrt() * noise"),
                new_code_cell(exercise())]
    assert find_giveaways(executed) == []


def test_main_reports_and_fails(tmp_path, capsys):
    import jupytext

    nb = jupytext.reads("# %%\nshow_source(add_noise)\n\n# %%\n" + exercise(), fmt="py:percent")
    py = tmp_path / "01_x.py"
    jupytext.write(nb, py, fmt="py:percent")
    assert main([str(py)]) == 1
    assert "shows the source of `add_noise`" in capsys.readouterr().out
    good = tmp_path / "02_y.py"
    jupytext.write(jupytext.reads("# %%\n" + exercise(), fmt="py:percent"), good, fmt="py:percent")
    assert main([str(good)]) == 0


# --------------------------------------------------------------------- the course's notebooks


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_no_exercise_answer_is_shown_above_its_exercise(src):
    found = check_pair(src)
    assert not found, (f"{src.name}: an exercise's answer is shown before the exercise asks for it; "
                       "show the course's version after the exercise instead:\n"
                       + "\n".join(f"  {g}" for g in found))


def test_the_course_has_exercises_to_check():
    import jupytext

    counts = {src.stem: len(find_exercises(jupytext.read(src).cells)) for src in SOURCES}
    assert sum(counts.values()) >= 5, counts

"""Recorded notebook times and the README's run-time column (mmcourse.tools.timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcourse.tools import timings as tm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

TABLE = f"""# Course

{tm.START}
| notebook | topic | run time |
|---|---|---:|
| `00_welcome` | a | b \\| c | 9 s |
| `01_forward` | x | 20 s |
{tm.END}

Text after.
"""


def test_record_merges_one_notebook_without_touching_the_others(tmp_path):
    path = tmp_path / "timings.json"
    tm.record(path, {"00_welcome": 5.84, "01_forward": 20.0}, by="make execute", date="2026-01-01")
    tm.record(path, {"01_forward": 7.25}, by="make test (nbval)", date="2026-01-02")
    rows = json.loads(path.read_text())
    assert rows == {"00_welcome": {"seconds": 5.8, "date": "2026-01-01", "by": "make execute"},
                    "01_forward": {"seconds": 7.2, "date": "2026-01-02", "by": "make test (nbval)"}}
    assert len(path.read_text().splitlines()) == 4  # one line per notebook: small diffs
    tm.record(path, {"00_welcome": 6.0}, by="x", date="d", extra={"load": 7.6, "cpus": 2})
    assert tm.read(path)["00_welcome"] == {"seconds": 6.0, "date": "d", "by": "x", "load": 7.6, "cpus": 2}
    assert set(tm.machine_load()) <= {"load", "cpus"}


@pytest.mark.parametrize("bad, msg", [({"welcome": 1.0}, "NN_topic"), ({"00_x": -1.0}, "non-negative"),
                                      ({"00_x": float("nan")}, "non-negative")])
def test_record_rejects_bad_rows(tmp_path, bad, msg):
    with pytest.raises(ValueError, match=msg):
        tm.record(tmp_path / "t.json", bad, by="x")


def test_read_rejects_a_file_of_another_shape(tmp_path):
    (tmp_path / "t.json").write_text('{"00_x": 5}')
    with pytest.raises(ValueError, match="seconds"):
        tm.read(tmp_path / "t.json")
    assert tm.read(tmp_path / "missing.json") == {}


def test_rewrite_sets_only_the_last_column_between_the_markers():
    rows = {"00_welcome": {"seconds": 5.6}, "01_forward": {"seconds": 31.4}}
    out = tm.rewrite_readme(TABLE, rows)
    assert "| `00_welcome` | a | b \\| c | 6 s |" in out and "| `01_forward` | x | 31 s |" in out
    assert out.replace("6 s", "9 s").replace("31 s", "20 s") == TABLE
    assert tm.readme_times(out) == {"00_welcome": "6 s", "01_forward": "31 s"}
    assert tm.rewrite_readme(out, rows) == out


def test_a_time_measured_on_a_busy_machine_says_so():
    assert tm.fmt({"seconds": 216.8, "load": 7.6, "cpus": 2}) == "217 s (load 7.6 on 2 CPUs)"
    assert tm.fmt({"seconds": 31.4, "load": 1.5, "cpus": 2}) == "31 s"
    assert tm.fmt({"seconds": 31.4}) == "31 s" == tm.fmt(31.4)
    assert tm.fmt({"seconds": 66.0, "slowdown": 2.2, "load": 1.0, "cpus": 2}) == (
        "66 s (on a machine 2.2x slower than the reference: about 30 s there)")
    assert tm.fmt({"seconds": 31.4, "slowdown": 1.1}) == "31 s"


def test_rewrite_names_rows_without_a_time_and_missing_markers():
    with pytest.raises(ValueError, match="no recorded time for 01_forward"):
        tm.rewrite_readme(TABLE, {"00_welcome": {"seconds": 1.0}})
    with pytest.raises(ValueError, match="between"):
        tm.rewrite_readme("| `00_x` | 1 s |\n", {})


def test_disagreements_name_the_notebook_and_both_values():
    rows = {"00_welcome": {"seconds": 9.2, "by": "make execute", "date": "d"},
            "01_forward": {"seconds": 25.0, "by": "make execute", "date": "d"}}
    problems = tm.disagreements(TABLE, rows, ["00_welcome", "01_forward", "02_new"])
    assert problems == ["02_new: no row in the README's syllabus table",
                        "02_new: no recorded time in notebooks/timings.json (run make execute)",
                        "01_forward: README says '20 s', recorded '25 s' (make execute, d)"]


def test_main_readme_merges_nbval_times_then_check_passes(tmp_path, capsys):
    readme, timings, nbval = tmp_path / "README.md", tmp_path / "timings.json", tmp_path / "nbval.json"
    readme.write_text(TABLE)
    tm.record(timings, {"00_welcome": 6.0, "01_forward": 20.0}, by="make execute")
    tm.record(nbval, {"01_forward": 41.0}, by="make test (nbval)")
    assert tm.main(["readme", "--from", str(nbval), "--timings", str(timings), "--readme", str(readme)]) == 0
    assert tm.readme_times(readme.read_text()) == {"00_welcome": "6 s", "01_forward": "41 s"}
    assert tm.read(timings)["01_forward"]["by"] == "make test (nbval)"


def test_readme_run_times_are_the_recorded_ones():
    """Fails when a notebook was re-executed (or added) and the README's column was not updated:
    run `python -m mmcourse.tools.timings readme` and commit README.md with notebooks/timings.json."""
    problems = tm.disagreements(tm.README.read_text(), tm.read(tm.TIMINGS), NOTEBOOKS)
    assert not problems, "README run-time column out of date:\n" + "\n".join(problems)


@pytest.mark.slow
def test_execute_records_the_time_of_the_notebook_it_ran(tmp_path, monkeypatch):
    import jupytext

    from mmcourse.tools import execute

    src = tmp_path / "07_tiny.py"
    jupytext.write(jupytext.reads("# %%\nprint(6 * 7)\n", fmt="py:percent"), src, fmt="py:percent")
    tm.record(tmp_path / "timings.json", {"00_other": 3.0}, by="make execute", date="2026-01-01")
    assert execute.main([str(src)]) == 0
    rows = tm.read(tmp_path / "timings.json")
    assert rows["00_other"]["seconds"] == 3.0 and rows["00_other"]["date"] == "2026-01-01"
    assert 0 < rows["07_tiny"]["seconds"] < 60 and rows["07_tiny"]["by"] == "make execute"
    assert rows["07_tiny"]["cpus"] >= 1 and rows["07_tiny"]["load"] >= 0
    assert "42" in src.with_suffix(".ipynb").read_text()

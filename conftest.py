"""Repository-wide pytest hooks: time each notebook run by nbval and enforce the 60 s budget.

nbval turns every cell into a test item; summing the items of one .ipynb (kernel start-up
included) gives the notebook's wall time. The table is printed at the end of the run, and a
notebook over budget fails the session: the course promises each notebook runs in a minute
on a 2-core CPU. Shared CI machines run slower than that reference (see
``mmcourse.tools.calibrate``): the machine is measured once before the notebooks run, and the
budget is scaled by its slowdown, clamped to [1, 3]; both the raw time and the scaled budget are
printed.

The times of the notebooks that ran completely (every cell collected for them has run) are also
merged into ``build/nbval-timings.json`` (one row per notebook, the format of
``notebooks/timings.json``), so a maintainer can update the README's run-time column from them:
``python -m mmcourse.tools.timings readme --from build/nbval-timings.json``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOK_BUDGET_S = float(os.environ.get("MMCOURSE_NOTEBOOK_BUDGET", "60"))
NBVAL_TIMINGS = Path(__file__).resolve().parent / "build" / "nbval-timings.json"
_times: dict[str, float] = defaultdict(float)
_collected: dict[str, int] = defaultdict(int)
_ran: dict[str, int] = defaultdict(int)
_speed: dict[str, float] = {}  # step_ms and slowdown, measured once when notebooks are collected


def _budget() -> float:
    return NOTEBOOK_BUDGET_S * _speed.get("slowdown", 1.0)


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::")[0]
    return path if path.endswith(".ipynb") else None


def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        path = _notebook(item.nodeid)
        if path:
            _collected[path] += 1
    if _collected and not _speed:
        from mmcourse.tools.calibrate import from_env, slowdown

        measured = from_env()  # `make test` measures the machine alone, before the browser test starts
        _speed["step_ms"], _speed["slowdown"] = measured if measured else slowdown()
        _speed["alone"] = measured is not None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = _notebook(report.nodeid)
    if path:
        _times[path] += report.duration
        if report.when == "call" or (report.when == "setup" and report.skipped):
            _ran[path] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _times:
        return
    tr = terminalreporter
    tr.section("notebook wall time (2-core CPU budget: %.0f s each)" % NOTEBOOK_BUDGET_S)
    if _speed:
        from mmcourse.tools.calibrate import describe

        tr.write_line(describe(_speed["step_ms"], _speed["slowdown"], NOTEBOOK_BUDGET_S)
                      + ("; measured alone before the notebooks started" if _speed.get("alone") else ""))
    for path, seconds in sorted(_times.items()):
        flag = "" if seconds <= _budget() else "   OVER BUDGET"
        tr.write_line(f"{path:45s} {seconds:6.1f} s{flag}")
    # translations (notebooks/zh_CN/NN_topic.ipynb) are timed above but not recorded: their rows
    # would overwrite the English notebook's (same stem, same code)
    complete = {Path(p).stem: s for p, s in _times.items()
                if _ran[p] and _ran[p] >= _collected[p] and Path(p).parent.name == "notebooks"}
    if complete:
        try:
            from mmcourse.tools.timings import machine_load, record

            extra = {**machine_load(), **({"slowdown": round(_speed["slowdown"], 2)} if _speed else {})}
            record(NBVAL_TIMINGS, complete, by="make test (nbval)", extra=extra)
            tr.write_line(f"recorded in {NBVAL_TIMINGS} (to update the README's run-time column: "
                          f"python -m mmcourse.tools.timings readme --from {NBVAL_TIMINGS})")
        except Exception as e:  # recording is a convenience; never fail the run for it
            tr.write_line(f"could not record notebook times: {e}")


def pytest_sessionfinish(session, exitstatus) -> None:
    over = [p for p, s in _times.items() if s > _budget()]
    if over and session.exitstatus == 0:
        session.exitstatus = 1
        print(f"\nnotebooks over the {_budget():.0f} s budget: {', '.join(over)}")

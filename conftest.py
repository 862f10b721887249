"""Repository-wide pytest hooks: time each notebook run by nbval and enforce the 60 s budget.

nbval turns every cell into a test item; summing the items of one .ipynb (kernel start-up
included) gives the notebook's wall time. The table is printed at the end of the run, and a
notebook over budget fails the session: the course promises each notebook runs in a minute
on a 2-core CPU.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

NOTEBOOK_BUDGET_S = float(os.environ.get("MMCOURSE_NOTEBOOK_BUDGET", "60"))
_times: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _times[path] += report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _times:
        return
    tr = terminalreporter
    tr.section("notebook wall time (2-core CPU budget: %.0f s each)" % NOTEBOOK_BUDGET_S)
    for path, seconds in sorted(_times.items()):
        flag = "" if seconds <= NOTEBOOK_BUDGET_S else "   OVER BUDGET"
        tr.write_line(f"{path:45s} {seconds:6.1f} s{flag}")


def pytest_sessionfinish(session, exitstatus) -> None:
    over = [p for p, s in _times.items() if s > NOTEBOOK_BUDGET_S]
    if over and session.exitstatus == 0:
        session.exitstatus = 1
        print(f"\nnotebooks over the {NOTEBOOK_BUDGET_S:.0f} s budget: {', '.join(over)}")

"""``make weights-check``: measure every shipped checkpoint again on fresh draws and compare.

    python -m mmcourse.weights.check                  # every checkpoint, the protocol's check draws
    python -m mmcourse.weights.check vit_shapes       # some of them
    python -m mmcourse.weights.check --record NAME    # measure on the test draws, store in the registry

Each module that registers BUILDERS (``mmcourse/weights/build.py`` for the foundation,
``mmcourse/<topic>/checkpoints.py`` for the topics) also defines ``EVALUATORS`` (checkpoint ->
``evaluate(part) -> {metric: Estimate}``, which loads the SHIPPED file and measures it, without
training) and ``TARGETS`` (checkpoint -> metric -> ``{"min": x}`` or ``{"max": x}``). This runs each
evaluator on the protocol's "check" draws (``mmcourse.protocol``: seeds no builder ever used) and
fails when a number

* lies more than three standard errors of the difference from the registry's (measured by the
  builder on the "test" draws: :meth:`Estimate.agrees_with`), or
* misses its target,

or when a registry row has no standard error for a metric its evaluator returns (the number was
not measured under the protocol: ``--record`` it). Checkpoints whose module has no evaluator yet
are listed as "not checked". A proportion of 0 or 1 has a binomial standard error of 0, which
would make any other value "disagree"; such a standard error is counted as 1/n (the order of the
uncertainty of a share that was never wrong in n tries).

The table goes to stdout; the exit status is 1 when any row fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..protocol import Estimate
from . import REGISTRY_ENV, available, entry, record, registry_path

AGREEMENT_K = 3.0


@dataclass
class Result:
    """One checkpoint's outcome: a row per metric, and what went wrong."""

    name: str
    part: str = "check"
    status: str = "ok"                       # "ok", "FAIL" or "not checked"
    seconds: float = 0.0                     # CPU seconds of its evaluator
    rows: list[dict] = field(default_factory=list)
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def conventions() -> tuple[dict[str, Callable[[str], dict]], dict[str, dict[str, dict[str, float]]], list[str]]:
    """All modules' EVALUATORS and TARGETS (see the module docstring), and a list of problems with
    how a module states them (a TARGETS not in the checkpoint -> metric -> {"min": x} form)."""
    from .build import topic_modules

    evaluators: dict[str, Callable[[str], dict]] = {}
    targets: dict[str, dict[str, dict[str, float]]] = {}
    problems: list[str] = []
    for module in topic_modules():
        ev = getattr(module, "EVALUATORS", None)
        if not ev:
            continue  # a topic that has not written its evaluators yet: its checkpoints are "not checked"
        evaluators.update(ev)
        for name, bounds in getattr(module, "TARGETS", {}).items():
            ok = isinstance(bounds, dict) and all(
                isinstance(b, dict) and len(b) == 1 and set(b) <= {"min", "max"} for b in bounds.values())
            if not ok:
                problems.append(f"{module.__name__}.TARGETS[{name!r}] must map metrics to {{'min': x}} or "
                                f"{{'max': x}}, got {bounds!r}")
                continue
            targets[name] = bounds
    return evaluators, targets, problems


def _floored(est: Estimate) -> Estimate:
    """A share measured as exactly 0 or 1 has a binomial standard error of 0: count it as 1/n there
    (only there: a small, real standard error, such as an AP's over five draws, is kept as it is)."""
    return Estimate(est.value, 1.0 / est.n, est.n) if est.se == 0 and est.n else est


def _meets(value: float, bound: dict[str, float]) -> bool:
    return bound.get("min", -float("inf")) <= value <= bound.get("max", float("inf"))


def _bound_text(bound: dict[str, float] | None) -> str:
    if not bound:
        return ""
    return f"≥ {bound['min']:g}" if "min" in bound else f"≤ {bound['max']:g}"


def check_one(name: str, evaluate: Callable[[str], dict] | None, targets: dict[str, dict[str, float]],
              part: str = "check", k: float = AGREEMENT_K) -> Result:
    """Measure checkpoint ``name`` with ``evaluate(part)`` and compare each metric with the registry."""
    res = Result(name, part)
    if evaluate is None:
        res.status, res.note = "not checked", "its module has no evaluator yet"
        return res
    try:
        e = entry(name)
        t0 = time.process_time()
        measured = evaluate(part)
        res.seconds = time.process_time() - t0
    except Exception as err:  # noqa: BLE001  (one broken evaluator must not hide the others' results)
        res.status, res.note = "FAIL", f"could not be measured: {type(err).__name__}: {err}"
        return res
    bounds = {**e.targets, **targets}
    for metric, est in measured.items():
        if not isinstance(est, Estimate):
            res.rows.append(dict(metric=metric, registry="", measured=repr(est), z="", target="", ok=False,
                                 why="the evaluator must return Estimates"))
            continue
        bound = bounds.get(metric)
        row = dict(metric=metric, measured=str(est), target=_bound_text(bound), registry="", z="", ok=True, why="")
        if metric in e.errors:
            stored = e.estimate(metric)
            a, b = _floored(stored), _floored(est)
            diff_se = (est.value - stored.value) / max(1e-12, (a.se ** 2 + b.se ** 2) ** 0.5)
            row.update(registry=str(stored), z=f"{diff_se:+.1f}")
            if not b.agrees_with(a, k):
                row.update(ok=False, why=f"more than {k:g} standard errors from the registry")
        else:
            row.update(registry=str(e.metrics.get(metric, "—")), ok=False,
                       why="the registry has no standard error for it (record it: --record)")
        if bound is not None and not _meets(est.value, bound):
            row.update(ok=False, why=(row["why"] + "; " if row["why"] else "") + f"misses its target {_bound_text(bound)}")
        res.rows.append(row)
    for metric in sorted(set(bounds) - set(measured)):
        res.rows.append(dict(metric=metric, registry="", measured="(not measured)", z="", target=_bound_text(bounds[metric]),
                             ok=False, why="a target the evaluator does not measure"))
    if any(not r["ok"] for r in res.rows):
        res.status = "FAIL"
    return res


def check(names: list[str] | None = None, part: str = "check", k: float = AGREEMENT_K,
          progress: Callable[[Result], None] | None = None) -> tuple[list[Result], list[str]]:
    """Check ``names`` (default: every registered checkpoint). Returns the results and the
    problems found in the modules' conventions (each one a failure)."""
    evaluators, targets, problems = conventions()
    results = []
    for name in names or available():
        r = check_one(name, evaluators.get(name), targets.get(name, {}), part, k)
        results.append(r)
        if progress:
            progress(r)
    return results, problems


def format_result(r: Result) -> str:
    head = f"{r.name}: {r.status}" + (f" ({r.seconds:.1f} s CPU)" if r.seconds else "") + (f" — {r.note}" if r.note else "")
    lines = [head]
    if r.rows:
        w = max(len(row["metric"]) for row in r.rows)
        lines.append(f"  {'metric':<{w}}  {'registry (test draws)':<22} {f'now ({r.part} draws)':<22} {'z':>5}  {'target':<8}")
        for row in r.rows:
            mark = "ok" if row["ok"] else "FAIL: " + row["why"]
            lines.append(f"  {row['metric']:<{w}}  {row['registry']:<22} {row['measured']:<22} {row['z']:>5}  "
                         f"{row['target']:<8} {mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="checkpoints to check (default: every registered one)")
    p.add_argument("--part", default="check", choices=("check", "test"),
                   help="the protocol's draws to measure on (default: check)")
    p.add_argument("--registry", type=Path, help="a registry.json to check instead of the shipped one")
    p.add_argument("--record", action="store_true",
                   help="measure on the test draws and store the numbers (with their targets) in the registry, "
                        "without retraining; for checkpoints built before the protocol")
    args = p.parse_args(argv)
    saved_env, saved_threads = os.environ.get(REGISTRY_ENV), torch.get_num_threads()
    if args.registry is not None:
        os.environ[REGISTRY_ENV] = str(args.registry.resolve())  # the evaluators load from it
    torch.set_num_threads(1)  # the course's measuring budget is one thread per checkpoint
    try:
        return _run(p, args)
    finally:
        torch.set_num_threads(saved_threads)
        if saved_env is None:
            os.environ.pop(REGISTRY_ENV, None)
        else:
            os.environ[REGISTRY_ENV] = saved_env


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    known = available()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        p.error(f"unknown checkpoint(s) {unknown}; the registry {registry_path()} has {known}")

    if args.record:
        evaluators, targets, problems = conventions()
        for name in args.names or known:
            if name not in evaluators:
                print(f"{name}: not recorded (its module has no evaluator yet)")
                continue
            t0 = time.process_time()
            metrics = evaluators[name]("test")
            e = record(name, metrics, targets.get(name))
            print(f"{name}: recorded in {time.process_time() - t0:.1f} s CPU: "
                  + ", ".join(f"{m} {e.describe(m)}" for m in metrics), flush=True)
        return 0

    t0, w0 = time.process_time(), time.perf_counter()
    print(f"weights-check: the protocol's {args.part!r} draws against {registry_path()} "
          f"(fails beyond {AGREEMENT_K:g} standard errors or past a target)", flush=True)
    results, problems = check(args.names or None, args.part, progress=lambda r: print(format_result(r), flush=True))
    for msg in problems:
        print(f"FAIL: {msg}")
    failed = [r.name for r in results if r.failed]
    unchecked = [r.name for r in results if r.status == "not checked"]
    print(f"weights-check: {len(results) - len(failed) - len(unchecked)} ok, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else "")
          + f", {len(unchecked)} not checked" + (f" ({', '.join(unchecked)})" if unchecked else "")
          + f"; {time.process_time() - t0:.0f} s CPU, {time.perf_counter() - w0:.0f} s wall")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())

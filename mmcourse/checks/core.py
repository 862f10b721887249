"""The engine behind every ``check_<name>``: run cases, compare, explain the first difference."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..protocol import Estimate


@dataclass
class Case:
    """One input to try: positional ``args`` and a short human description of them."""

    args: tuple
    description: str


def describe(x: Any, limit: int = 6) -> str:
    """A short description of a value for feedback: shape and dtype, and the values if few."""
    if isinstance(x, torch.Tensor):
        if x.numel() <= limit:
            return f"tensor {x.tolist()} (dtype {x.dtype})"
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape}, dtype {x.dtype}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__} of {len(x)}: (" + ", ".join(describe(v, limit) for v in x) + ")"
    return repr(x)


def _compare(got: Any, want: Any, atol: float, rtol: float, path: str = "the result") -> str | None:
    """None if ``got`` matches ``want``; otherwise a sentence saying how it differs."""
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{path} should be a {type(want).__name__} of {len(want)} values, got {describe(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            msg = _compare(g, w, atol, rtol, f"{path}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{path} should be a torch.Tensor, got {type(got).__name__}"
        if got.shape != want.shape:
            return f"{path} should have shape {tuple(want.shape)}, got shape {tuple(got.shape)}"
        if want.dtype == torch.bool or not want.is_floating_point():
            if not torch.equal(got.to(want.dtype), want):
                bad = (got.to(want.dtype) != want).nonzero()[0].tolist()
                return f"{path} differs at index {bad}: expected {want[tuple(bad)].item()}, got {got[tuple(bad)].item()}"
            return None
        got_f = got.detach().to(want.dtype)
        if not torch.isfinite(got_f).all():
            return f"{path} contains NaN or inf"
        err = (got_f - want).abs()
        tol = atol + rtol * want.abs()
        if (err > tol).any():
            i = int((err > tol).flatten().nonzero()[0])  # the first differing element
            idx = tuple(int(v) for v in np.unravel_index(i, tuple(want.shape))) if want.ndim else ()
            return (f"{path} differs at index {list(idx)}: expected {want[idx].item():.6g}, "
                    f"got {got_f[idx].item():.6g} (max abs error {err.max().item():.3g})")
        return None
    if isinstance(want, float):
        if not isinstance(got, (float, int)) or abs(got - want) > atol + rtol * abs(want):
            return f"{path} should be {want:.6g}, got {describe(got)}"
        return None
    if got != want:
        return f"{path} should be {describe(want)}, got {describe(got)}"
    return None


class Verdict:
    """A checker's result: truthy when every case matched. Shows nothing extra in a notebook,
    since the checker has already printed its message."""

    def __init__(self, passed: bool, message: str) -> None:
        self.passed = passed
        self.message = message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:
        pass


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def check(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    atol: float = 1e-5,
    rtol: float = 1e-4,
    quiet: bool = False,
) -> Verdict:
    """Run ``fn`` and ``reference`` on every case; print the verdict; return a :class:`Verdict`
    that is truthy if all match.

    The learner's function gets its own copy of each input, and is told if it modifies its inputs
    in place (a common, silent bug).
    """
    if not callable(fn):
        raise TypeError(f"{name}: pass your function itself (e.g. {name}(my_function)), got {type(fn).__name__}")
    for i, case in enumerate(cases, start=1):
        want = reference(*copy.deepcopy(case.args))
        args = copy.deepcopy(case.args)
        where = f"case {i} of {len(cases)} ({case.description})"
        try:
            got = fn(*args)
        except NotImplementedError:
            print(f"✗ {name}: not implemented yet. Replace the `raise NotImplementedError` line with your code.")
            raise
        except Exception as err:  # report the learner's error with the input that caused it
            return _fail(f"✗ {name}: {where}: your function raised {type(err).__name__}: {err}")
        if not _same(args, case.args):
            return _fail(f"✗ {name}: {where}: your function changed its input in place; work on a copy instead.")
        msg = _compare(got, want, atol, rtol)
        if msg:
            return _fail(f"✗ {name}: {where}: {msg}.")
    message = f"✓ {name}: all {len(cases)} cases match the reference."
    if not quiet:
        print(message)
    return Verdict(True, message)


def _fail(message: str) -> Verdict:
    print(message)
    return Verdict(False, message)


# Printed measurements: a value with its target, for the notebooks' checked cells.
_OPS = {"≥": float.__ge__, "≤": float.__le__, ">": float.__gt__, "<": float.__lt__, "=": float.__eq__}


def format_bound(value: float) -> str:
    """A tiny non-negative error, rounded *up* to a power of ten: 3.2e-07 -> "≤ 1e-6", 0 -> "0".

    Rounding to the order of magnitude keeps a printed check stable across machines, whose float
    round-off differs in the last digits."""
    if value < 0:
        raise ValueError(f"value must be >= 0 for a bound, got {value!r}")
    if value == 0:
        return "0"
    return f"≤ 1e{math.ceil(math.log10(value))}"


def _parse_target(target: str) -> tuple[str, float]:
    """``"≥ 0.95"`` -> ("≥", 0.95); ValueError naming ``target`` otherwise."""
    op, _, number = target.strip().partition(" ")
    if op not in _OPS:
        raise ValueError(f"target must start with one of {' '.join(_OPS)} and a space, got {target!r}")
    try:
        threshold = float(number)
    except ValueError:
        raise ValueError(f"target must end with a number, got {target!r}") from None
    return op, threshold


def _shown(value: "float | Estimate", op: str, fmt: str, k_se: float, label: str) -> tuple[str, float]:
    """What ``expect``/``report`` print before the target, and the number they compare with it.

    A plain number prints with ``fmt``. An :class:`~mmcourse.protocol.Estimate` prints as
    ``0.976 ± 0.003``; with ``k_se`` > 0 the number checked is ``k_se`` standard errors on the
    cautious side of the value (below it for ≥ and >, above it for ≤ and <), and it is shown:
    ``0.976 ± 0.003; minus 2 SE = 0.969``."""
    if isinstance(k_se, bool) or not isinstance(k_se, (int, float)) or not 0 <= k_se < math.inf:
        raise ValueError(f"k_se must be a number >= 0, got {k_se!r}")
    if not isinstance(value, Estimate):
        if k_se:
            raise ValueError(f"k_se needs an Estimate (a value with its standard error), got {type(value).__name__}")
        value = float(value)
        return (format_bound(abs(value)) if fmt == "bound" else format(value, fmt)), value
    if not k_se:
        return str(value), value.value
    if op == "=":
        raise ValueError(f"k_se cannot be used with an = target ({label})")
    sign = -1.0 if op in ("≥", ">") else 1.0
    checked = value.value + sign * k_se * value.se
    d = value.decimals()
    return f"{value}; {'minus' if sign < 0 else 'plus'} {k_se:g} SE = {checked:.{d}f}", checked


def expect(label: str, value: "float | Estimate", target: str, fmt: str = ".3f", k_se: float = 0.0) -> None:
    """Print ``label value (target ...)`` and raise AssertionError if ``value`` misses ``target``.

    Args:
        label: what was measured, e.g. "digits test accuracy".
        value: the measurement (a number or a 0-d tensor), or an
            :class:`~mmcourse.protocol.Estimate`, printed with its standard error.
        target: an operator (≥, ≤, >, <, =) and a number, e.g. "≥ 0.95" or "≤ 1e-5".
        fmt: format of a plain number; "bound" prints a small error as a power of ten (format_bound).
        k_se: for an Estimate, require the target to hold ``k_se`` standard errors away from the
            value (a target met "by two standard errors": ``k_se=2``).
    Returns None, so that a cell ending with it shows only the printed line.

    >>> expect("accuracy", 0.9666, "≥ 0.95")
    accuracy 0.967 (target ≥ 0.95)
    >>> expect("captions right", Estimate(0.9755, 0.0034, 2000), "≥ 0.95", k_se=2)
    captions right 0.976 ± 0.003; minus 2 SE = 0.969 (target ≥ 0.95)
    """
    op, threshold = _parse_target(target)
    shown, checked = _shown(value, op, fmt, k_se, label)
    print(f"{label} {shown} (target {target})")
    if not _OPS[op](checked, threshold):
        raise AssertionError(f"{label}: {checked!r} misses the target {target}")


def report(label: str, value: "float | Estimate", target: str, fmt: str = ".3f", k_se: float = 0.0) -> None:
    """Print ``label value (target ...: met / MISSED)``, like ``expect`` but without raising.

    For measurements that depend on the machine (timings), where a miss is news, not a bug.

    >>> report("seconds", 0.25, "≤ 0.2")
    seconds 0.250 (target ≤ 0.2: MISSED)
    """
    op, threshold = _parse_target(target)
    shown, checked = _shown(value, op, fmt, k_se, label)
    met = _OPS[op](checked, threshold)
    print(f"{label} {shown} (target {target}: {'met' if met else 'MISSED'})")

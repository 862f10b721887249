"""Hostile values for the public entry points: what a learner might pass by mistake.

Every public function a notebook or widget calls must answer a bad argument with a ``ValueError``
that names the argument (and says what is allowed), or with a valid result: never a silent wrong
answer, never a crash deep inside torch. This module holds the shared table, so each topic's tests
can run their entry points through the same values:

    from _hostile import check_hostile, hostile_numbers, hostile_tensors   # tests/ is on sys.path

    def test_predict_rejects_hostile_points(model):
        check_hostile(lambda p: model.predict(points=p), "points", hostile_tensors(torch.rand(1, 2) * 64),
                      valid=lambda out: torch.isfinite(out).all())

``check_hostile`` calls the function on every value: a ``ValueError`` must name the argument; any
other exception fails the test with the value that caused it; a returned result must pass ``valid``
(by default: no NaN or inf anywhere in the tensors it returns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch


@dataclass(frozen=True)
class Hostile:
    """One bad (or odd but legal) value and a label saying what it is."""

    label: str
    value: Any


HUGE = 1e30  # finite, but far past any pixel coordinate, logit or image value


def hostile_numbers(good: float = 0.5) -> list[Hostile]:
    """A scalar argument (a threshold, a scale, a count) replaced by each odd value."""
    return [
        Hostile("NaN", float("nan")),
        Hostile("inf", float("inf")),
        Hostile("-inf", float("-inf")),
        Hostile("negative", -abs(good) - 1.0),
        Hostile("zero", 0.0),
        Hostile("huge", HUGE),
        Hostile("a string", str(good)),
        Hostile("None", None),
        Hostile("a bool", True),
        Hostile("a complex number", complex(good, 1.0)),
        Hostile("a 2-element tensor", torch.tensor([good, good])),
    ]


def hostile_ints(good: int = 4) -> list[Hostile]:
    """An integer argument (a count, a seed, a size) replaced by each odd value."""
    return [
        Hostile("negative", -abs(good) - 1),
        Hostile("zero", 0),
        Hostile("huge", 10**12),
        Hostile("a float", good + 0.5),
        Hostile("NaN", float("nan")),
        Hostile("a string", str(good)),
        Hostile("None", None),
        Hostile("a bool", True),
    ]


def hostile_tensors(good: torch.Tensor) -> list[Hostile]:
    """A tensor argument replaced by each odd variant of a valid value ``good``: NaN, inf, wrong
    dtype, wrong rank, empty, huge, and a numpy array / nested list of the same numbers."""
    good = torch.as_tensor(good)
    out: list[Hostile] = []
    if good.is_floating_point() and good.numel():
        for label, v in (("one NaN", float("nan")), ("one inf", float("inf")), ("one -inf", float("-inf"))):
            x = good.clone()
            x.view(-1)[0] = v
            out.append(Hostile(label, x))
        out.append(Hostile("all NaN", torch.full_like(good, float("nan"))))
        out.append(Hostile("huge", good * 0 + HUGE))
        out.append(Hostile("huge negative", good * 0 - HUGE))
        out.append(Hostile("float16", good.half()))
        out.append(Hostile("int64", good.round().long()))
        out.append(Hostile("uint8 0-255", (good.clamp(0, 1) * 255).round().to(torch.uint8)))
    out.append(Hostile("bool", good != 0))
    out.append(Hostile("complex", good.to(torch.complex64)))
    out.append(Hostile("one more dimension", good[None]))
    if good.ndim:
        out.append(Hostile("one dimension fewer", good.flatten()[: max(1, good.shape[-1])] if good.ndim > 1 else good[0]))
        out.append(Hostile("empty (first axis 0)", good[:0]))
        out.append(Hostile("last axis one too long", torch.cat([good, good[..., :1]], -1)))
    out.append(Hostile("a 0-d tensor", good.flatten()[0] if good.numel() else torch.tensor(0.0)))
    out.append(Hostile("a numpy array", good.numpy().copy()))
    out.append(Hostile("a nested list", good.tolist()))
    out.append(Hostile("a string", "not a tensor"))
    out.append(Hostile("None", None))
    return out


def finite_tensors(result: Any) -> bool:
    """True when every tensor or array in ``result`` (nested in tuples, lists, dicts) is finite."""
    if isinstance(result, torch.Tensor):
        return not (result.is_floating_point() or result.is_complex()) or bool(torch.isfinite(result).all())
    if isinstance(result, np.ndarray):
        return not np.issubdtype(result.dtype, np.floating) or bool(np.isfinite(result).all())
    if isinstance(result, float):
        return math.isfinite(result)
    if isinstance(result, dict):
        return all(finite_tensors(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return all(finite_tensors(v) for v in result)
    return True


def check_hostile(fn: Callable[[Any], Any], argument: str | tuple[str, ...], values: Iterable[Hostile],
                  valid: Callable[[Any], bool] = finite_tensors, must_reject: Iterable[str] = ()) -> dict[str, str]:
    """Call ``fn(value)`` for every hostile value. Each call must either raise a ``ValueError``
    whose message names ``argument`` (or one of several names, when an entry point passes the
    value on to a function that names it its own way), or return a result for which
    ``valid(result)`` is true. Labels listed in ``must_reject`` must raise. Returns
    {label: "rejected" | "valid"} (for a test that wants to say more). Fails with the label and
    the exception otherwise."""
    names = (argument,) if isinstance(argument, str) else tuple(argument)
    argument = " or ".join(names)
    must_reject = set(must_reject)
    outcome: dict[str, str] = {}
    for h in values:
        try:
            result = fn(h.value)
        except ValueError as err:
            assert any(n in str(err) for n in names), f"{argument} = {h.label}: the ValueError does not name {argument!r}: {err}"
            outcome[h.label] = "rejected"
            continue
        except Exception as err:  # noqa: BLE001  (any other exception is the failure we look for)
            raise AssertionError(f"{argument} = {h.label}: raised {type(err).__name__} instead of a ValueError "
                                 f"naming {argument!r}: {err}") from err
        assert h.label not in must_reject, f"{argument} = {h.label}: accepted, but it must be rejected"
        assert valid(result), f"{argument} = {h.label}: returned an invalid result (NaN/inf or wrong) instead of a ValueError"
        outcome[h.label] = "valid"
    return outcome

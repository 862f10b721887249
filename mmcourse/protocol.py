"""The evaluation protocol: which draws train a model, which choose its recipe, which report it.

A number that was used to choose something (a recipe, a guidance scale, a threshold, a number of
steps) is optimistic about that choice. So every shipped number follows one rule:

* **train** draws come from ShapesWorld's ``split="train"`` stream (any seed: that stream never
  meets the evaluation streams);
* **val** draws (``split="test"`` or ``"heldout"`` at the topic's validation seeds) are the only
  ones a choice may look at;
* **test** draws (the topic's test seeds) give the numbers stored in the checkpoint registry,
  measured once, after every choice is fixed;
* **check** draws (more seeds, never used by a builder) are fresh data for ``make weights-check``,
  which re-measures the shipped checkpoints and compares them with the registry.

Each topic has its own seeds, so one topic's draws are never another's. A reported number is an
:class:`Estimate`: its value, its standard error and the number of independent items behind it,
printed as ``0.958 ± 0.005 (target ≥ 0.95)``.

Example::

    from mmcourse.protocol import seeds, proportion
    right = torch.cat([judge(model, world.sample(500, seed=s, split="test")) for s in seeds("blip", "test")])
    est = proportion(right)            # Estimate(value=0.958, se=0.0045, n=2500)
    print(est.describe(target=0.95))   # 0.958 ± 0.004 (target ≥ 0.95)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

# Topics that measure shipped numbers, each with a block of 10,000 seeds far from the small seeds
# (0-10) the notebooks, training runs and earlier evaluations use.
TOPICS: tuple[str, ...] = ("digits", "diffusion", "vit", "clip", "blip", "sam", "glip", "text2image")
PARTS: tuple[str, ...] = ("val", "test", "check")
SEEDS_PER_PART = 5
_OFFSET = {"val": 100, "test": 200, "check": 300}


def seeds(topic: str, part: str, k: int = SEEDS_PER_PART) -> tuple[int, ...]:
    """The ``k`` seeds of ``topic``'s ``part`` (``"val"``, ``"test"`` or ``"check"``).

    Draw ``n`` scenes at each seed (``world.sample(n, seed=s, split="test")``) and pool the items:
    several seeds, not one, so that no number rests on one draw. ``k`` may be at most 100 (a part's
    block); ask for fewer seeds in a quick look, the same first ones come back.
    """
    if topic not in TOPICS:
        raise ValueError(f"topic must be one of {', '.join(TOPICS)}, got {topic!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise ValueError(f"k must be an int in 1..100, got {k!r}")
    base = 10_000 * (TOPICS.index(topic) + 1) + _OFFSET[part]
    return tuple(range(base, base + k))


@dataclass(frozen=True)
class Estimate:
    """A measured value with its standard error and the number of independent items behind it."""

    value: float
    se: float
    n: int

    def decimals(self) -> int:
        """Decimals that show the standard error to one or two significant digits (1 to 4)."""
        if self.se <= 0 or not math.isfinite(self.se):
            return 4
        return min(4, max(1, math.ceil(-math.log10(self.se))))

    def __str__(self) -> str:
        d = self.decimals()
        return f"{self.value:.{d}f} ± {self.se:.{d}f}"

    def describe(self, target: float | None = None, higher_is_better: bool = True) -> str:
        """``0.958 ± 0.005 (target ≥ 0.95)``; without a target, ``0.958 ± 0.005 (n = 2500)``."""
        if target is None:
            return f"{self} (n = {self.n})"
        return f"{self} (target {'≥' if higher_is_better else '≤'} {target:g})"

    def clears(self, target: float, k: float = 2.0, higher_is_better: bool = True) -> bool:
        """True when the value lies at least ``k`` standard errors on the right side of ``target``."""
        margin = self.value - target if higher_is_better else target - self.value
        return margin >= k * self.se

    def agrees_with(self, other: "Estimate", k: float = 3.0) -> bool:
        """True when the two values differ by at most ``k`` standard errors of their difference."""
        return abs(self.value - other.value) <= k * math.hypot(self.se, other.se)

    def to_dict(self) -> dict[str, float | int]:
        return {"value": round(self.value, 4), "se": round(self.se, 4), "n": self.n}


def proportion(outcomes: torch.Tensor | Iterable[bool]) -> Estimate:
    """The share of true outcomes and its binomial standard error sqrt(p (1 - p) / n)."""
    x = torch.as_tensor(list(outcomes) if not isinstance(outcomes, torch.Tensor) else outcomes).flatten()
    if x.numel() == 0:
        raise ValueError("outcomes must hold at least one item")
    if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("outcomes must be booleans (or 0/1 values)")
    return binomial(float(x.double().mean()), x.numel())


def binomial(share: float, n: int) -> Estimate:
    """A share of ``n`` independent yes/no items, stored without the items, with its binomial
    standard error sqrt(p (1 - p) / n).

    When every item agrees (p = 0 or 1) that formula gives 0, which would claim certainty from a
    finite sample; there the error is Agresti and Coull's: the same formula with two successes
    and two failures added, sqrt(p~ (1 - p~) / (n + 4)) with p~ = (k + 2) / (n + 4) (130 of 130:
    ± 0.01)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    if share in (0.0, 1.0):
        p = (share * n + 2) / (n + 4)
        return Estimate(share, math.sqrt(p * (1 - p) / (n + 4)), n)
    return Estimate(share, math.sqrt(share * (1 - share) / n), n)


def difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the standard error of two independent measurements, hypot(se_a, se_b).

    Two models measured on the same scenes are positively correlated, and then this error is
    too large, not too small (a paired difference, counted per item, is tighter). n is the
    smaller of the two."""
    return Estimate(a.value - b.value, math.hypot(a.se, b.se), min(a.n, b.n))


def share_of_gap(low: Estimate, mid: Estimate, high: Estimate) -> Estimate:
    """How much of the gap from ``low`` to ``high`` ``mid`` closes, (mid - low) / (high - low), with a
    delta-method standard error that treats the three measurements as independent:

        se^2 = (se_mid^2 + r^2 se_high^2 + (1 - r)^2 se_low^2) / (high - low)^2,   r the share.

    (CapFilt: the noisy, bootstrapped and clean models.) n is the smallest of the three. Only a
    gap several standard errors wide gives a share worth reading; the error says how wide."""
    gap = high.value - low.value
    if gap == 0:
        raise ValueError("high and low must differ: the gap is 0")
    r = (mid.value - low.value) / gap
    se = math.sqrt(mid.se**2 + r**2 * high.se**2 + (1 - r) ** 2 * low.se**2) / abs(gap)
    return Estimate(r, se, min(low.n, mid.n, high.n))


def mean(values: torch.Tensor | Iterable[float]) -> Estimate:
    """The mean of per-item values (IoUs, scores) and its standard error std / sqrt(n).

    Items must be independent: for a number that exists only per draw or per training run (an AP
    over a draw, a run's accuracy), pass one value per seed and this is the mean over seeds."""
    x = torch.as_tensor(list(values) if not isinstance(values, torch.Tensor) else values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("values must hold at least one item")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("values must be finite")
    n = x.numel()
    se = float(x.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    return Estimate(float(x.mean()), se, n)


def paired_difference(a: torch.Tensor | Iterable[float], b: torch.Tensor | Iterable[float]) -> Estimate:
    """The mean of ``a - b`` over paired items and its standard error std(a - b) / sqrt(n).

    Item i of ``a`` and of ``b`` must measure the same thing two ways (the same prompt and noise
    draw at two guidance scales, the same scene under two models): what the two share cancels in
    each difference, so this error is the one for the difference, not the two errors combined."""
    x = torch.as_tensor(list(a) if not isinstance(a, torch.Tensor) else a).double().flatten()
    y = torch.as_tensor(list(b) if not isinstance(b, torch.Tensor) else b).double().flatten()
    if x.numel() == 0:
        raise ValueError("a must hold at least one item")
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair item for item, got {x.numel()} and {y.numel()} items")
    return mean(x - y)


RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def load_results(name: str) -> dict:
    """A stored measurement, ``bench/results/<name>.json``: runs too long for a notebook (the
    README says which benchmark writes which file)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in RESULTS.glob("*.json"))
        raise FileNotFoundError(f"no stored result {name!r} ({path} is missing); known: {known}")
    return json.loads(path.read_text())

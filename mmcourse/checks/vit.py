"""Checkers for notebook 03 (Vision Transformer)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Case, check


def scaled_dot_product_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """PyTorch's own kernel: softmax(q kᵀ / sqrt(d) [masked]) v, with mask True = may attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g)

    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    # Key padding per sequence: sequence b may only look at its first 6 - 2b keys.
    padding = (torch.arange(6) < torch.tensor([6, 4, 2])[:, None]).reshape(3, 1, 1, 6)
    big = r(1, 3, 8, scale=12.0)
    return [
        Case((r(4, 8), r(4, 8), r(4, 8)), "unbatched q, k, v of shape (4, 8)"),
        Case((r(2, 3, 5, 8), r(2, 3, 5, 8), r(2, 3, 5, 8)), "batch 2, 3 heads, 5 tokens, head dim 8"),
        Case((r(1, 2, 3, 16), r(1, 2, 7, 16), r(1, 2, 7, 16)),
             "3 queries attending to 7 keys (Nq != Nk, as in cross-attention)"),
        Case((r(2, 4, 6), r(2, 5, 6), r(2, 5, 3)), "values narrower than keys: v is (2, 5, 3), q and k have dim 6"),
        Case((r(1, 1, 4, 64), r(1, 1, 4, 64), r(1, 1, 4, 64)),
             "head dim 64: a wrong scale (not 1 / sqrt(64)) shows clearly here"),
        Case((r(2, 5, 8), r(2, 5, 8), r(2, 5, 8), causal),
             "a causal boolean mask (5, 5): True = may attend, query i sees keys 0..i"),
        Case((r(3, 2, 4, 8), r(3, 2, 6, 8), r(3, 2, 6, 8), padding),
             "a key-padding mask (3, 1, 1, 6), broadcast over heads and queries"),
        Case((big, big.clone(), r(1, 3, 8)),
             "huge scores (keys equal to the queries, scores in the hundreds): exp() overflows "
             "unless you use softmax, which subtracts each row's maximum first"),
    ]


def check_scaled_dot_product_attention(fn) -> bool:
    """Check ``fn(q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv), mask=None) -> (..., Nq, dv)``
    against ``torch.nn.functional.scaled_dot_product_attention``."""
    return check("check_scaled_dot_product_attention", fn, scaled_dot_product_attention_reference, _cases())


# ---------------------------------------------------------------------------------------------
# Measured values against their targets (notebooks 03 and 04)
# ---------------------------------------------------------------------------------------------

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


def expect(label: str, value: float, target: str, fmt: str = ".3f") -> None:
    """Print ``label value (target ...)`` and raise AssertionError if ``value`` misses ``target``.

    Args:
        label: what was measured, e.g. "digits test accuracy".
        value: the measurement (a number or a 0-d tensor).
        target: an operator (≥, ≤, >, <, =) and a number, e.g. "≥ 0.95" or "≤ 1e-5".
        fmt: format of the value; "bound" prints a small error as a power of ten (format_bound).
    Returns None, so that a cell ending with it shows only the printed line.

    >>> expect("accuracy", 0.9666, "≥ 0.95")
    accuracy 0.967 (target ≥ 0.95)
    """
    op, _, number = target.strip().partition(" ")
    if op not in _OPS:
        raise ValueError(f"target must start with one of {' '.join(_OPS)} and a space, got {target!r}")
    try:
        threshold = float(number)
    except ValueError:
        raise ValueError(f"target must end with a number, got {target!r}") from None
    value = float(value)
    shown = format_bound(abs(value)) if fmt == "bound" else format(value, fmt)
    print(f"{label} {shown} (target {target})")
    if not _OPS[op](value, threshold):
        raise AssertionError(f"{label}: {value!r} misses the target {target}")

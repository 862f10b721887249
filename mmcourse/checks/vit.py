"""Checkers for notebook 03 (Vision Transformer)."""

from __future__ import annotations


import torch
import torch.nn.functional as F

from .core import Case, check, expect, format_bound  # noqa: F401  (expect/format_bound: re-exported)


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

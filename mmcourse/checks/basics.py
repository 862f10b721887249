"""Checkers for the welcome notebook's warm-up exercise."""

from __future__ import annotations

import torch

from .core import Case, Verdict, check


def box_from_mask_reference(mask: torch.Tensor) -> torch.Tensor:
    """Tight xyxy box of a (H, W) boolean mask: pixels x0..x1-1 and y0..y1-1; zeros if empty."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return torch.zeros(4)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def _cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    one = torch.zeros(8, 8, dtype=torch.bool)
    one[3, 5] = True
    full = torch.ones(6, 10, dtype=torch.bool)
    wide = torch.zeros(5, 12, dtype=torch.bool)
    wide[1:3, 2:11] = True
    cases = [
        Case((one,), "an 8x8 mask with the single pixel (row 3, column 5)"),
        Case((full,), "a 6x10 mask that is all True"),
        Case((wide,), "a 5x12 mask with rows 1-2 and columns 2-10 set (not square)"),
        Case((torch.zeros(4, 4, dtype=torch.bool),), "an empty 4x4 mask (expected all zeros)"),
    ]
    for _ in range(3):
        m = torch.rand(16, 20, generator=g) > 0.97
        cases.append(Case((m,), "a random sparse 16x20 mask"))
    return cases


def check_box_from_mask(fn) -> Verdict:
    """Check ``fn(mask (H, W) bool) -> (4,) float xyxy`` against the reference."""
    return check("check_box_from_mask", fn, box_from_mask_reference, _cases())

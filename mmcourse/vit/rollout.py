"""Attention rollout (Abnar & Zuidema, 2020): which patches the class token draws on, across layers.

One layer's attention map says where each token looks *in that layer*, but after layer 1 a token
is already a mix of many patches. Rollout follows the mixing through the stack: average the heads,
account for the residual connection (a token also keeps itself: ``0.5 A + 0.5 I``), renormalise
the rows, and multiply the layers' matrices, first layer on the right. Row 0 of the product says
how much of each input token ends up in the class token's final representation.

Shapes: B = batch, H = heads, T = tokens (class token first), gh x gw = patch grid.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

HEAD_FUSIONS = ("mean", "max", "min")


def attention_rollout(
    attns: Sequence[torch.Tensor], head_fusion: str = "mean", residual: bool = True
) -> torch.Tensor:
    """Roll attention out through the layers.

    Args:
        attns: per layer, weights (B, H, T, T) whose rows sum to one (first layer first), as
            returned by ``VisionTransformer(x, return_attn=True)``.
        head_fusion: how to merge the heads of a layer: "mean", "max" or "min".
        residual: add the identity for the skip connection before multiplying (the paper does).
    Returns:
        (B, T, T): row i = how much each input token contributes to output token i; rows sum to one.
    """
    if len(attns) == 0:
        raise ValueError("attns is empty: pass the list of per-layer attention weights")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    result = None
    for a in attns:
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"each attention map must have shape (B, H, T, T), got {tuple(a.shape)}")
        fused = {"mean": lambda t: t.mean(1), "max": lambda t: t.amax(1), "min": lambda t: t.amin(1)}[head_fusion](a)
        if residual:
            eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
            fused = 0.5 * fused + 0.5 * eye
        fused = fused / fused.sum(-1, keepdim=True)       # max/min fusion breaks the row sums
        result = fused if result is None else fused @ result  # later layers act on earlier mixes
    return result


def cls_attention_map(
    weights: torch.Tensor, grid_size: tuple[int, int] | None = None, normalise: bool = True
) -> torch.Tensor:
    """The class token's row of an attention or rollout matrix, as an image of the patch grid.

    Args:
        weights: (B, T, T) (a rollout, or one head / layer of attention).
        grid_size: (gh, gw) with gh * gw = T - 1; None means a square grid.
        normalise: scale each map to a maximum of one (for display).
    Returns:
        (B, gh, gw): weight of each patch for the class token (the class token's own column dropped).
    """
    if weights.ndim != 3:
        raise ValueError(f"weights must have shape (B, T, T), got {tuple(weights.shape)}")
    n = weights.shape[-1] - 1
    if grid_size is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch tokens do not form a square grid; pass grid_size=(rows, cols)")
        grid_size = (side, side)
    if grid_size[0] * grid_size[1] != n:
        raise ValueError(f"grid_size {grid_size} has {grid_size[0] * grid_size[1]} cells, but there are {n} patch tokens")
    m = weights[:, 0, 1:].reshape(-1, *grid_size)
    if normalise:
        m = m / m.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return m


def patches_touching(masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Which patches contain at least one pixel of a mask.

    Args:
        masks: (B, H, W) bool or 0/1, e.g. one object's pixel mask per image (ShapesWorld's ``masks[:, 0]``).
    Returns:
        (B, N) bool, N = (H/P)(W/P) patches in raster order (the ViT's token order).
    """
    from .patch_embed import patchify

    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (B, H, W), got {tuple(masks.shape)}")
    return patchify(masks[:, None].float(), patch_size).sum(-1) > 0


def class_token_share(attns: Sequence[torch.Tensor], selected: torch.Tensor) -> tuple[torch.Tensor, float]:
    """How much of the class token's attention goes to the ``selected`` patches.

    Args:
        attns: per layer, weights (B, H, T, T) (class token first), as from ``return_attn=True``.
        selected: (B, T - 1) bool, e.g. :func:`patches_touching` of the object's mask.
    Returns:
        (per-layer share (depth,), rollout share): the class token's attention to the patches
        (heads averaged, its own column left out), the part on selected patches, averaged over images.
    """
    if selected.ndim != 2 or selected.shape[1] != attns[0].shape[-1] - 1:
        raise ValueError(f"selected must have shape (B, {attns[0].shape[-1] - 1}), got {tuple(selected.shape)}")
    sel = selected.float()

    def share(rows: torch.Tensor) -> torch.Tensor:  # rows: (B, T - 1), the class token's weights on patches
        return ((rows * sel).sum(1) / rows.sum(1)).mean()

    layers = torch.stack([share(a.mean(1)[:, 0, 1:]) for a in attns])
    return layers, share(attention_rollout(attns)[:, 0, 1:]).item()

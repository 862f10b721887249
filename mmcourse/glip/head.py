"""The dense, anchor-free head (FCOS-style box: distances to the four sides; GLIP's ATSS head
regresses offsets from one square anchor per location instead) and GLIP's word-region alignment.

At every grid location the head predicts
- four distances (left, top, right, bottom) from the location to the sides of its box,
- a centerness logit (how central the location is in its box; it down-weights border locations),
- a region feature O_n (D numbers) that the alignment compares with the words.

Classification into C fixed classes would be ``O W^T + b`` (C columns, fixed forever). GLIP
replaces the class weights by the prompt's token features P (M rows, whatever the prompt says)::

    S = O P^T / tau + b           (N locations x M tokens)

with GLIP's details (``VLDyHead``): P is L2-normalised and projected, tau = exp(log_scale) starts
at 1, and b = P_norm . bias_lang + bias0 with bias0 = -log((1 - 0.01) / 0.01), so every token
starts at the prior probability 0.01 (RetinaNet's focal-loss initialisation: without it the
flood of background locations swamps the first steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import conv_block

PRIOR = 0.01                                # starting probability of every token (or class)
BIAS_INIT = -math.log((1 - PRIOR) / PRIOR)  # = -4.595, GLIP's bias0
CLAMP = 50_000.0                            # GLIP clamps the logits to this range


def alignment_logits(regions: torch.Tensor, tokens: torch.Tensor, tau: torch.Tensor | float,
                     bias: torch.Tensor) -> torch.Tensor:
    """S = O P^T / tau + b.

    Args:
        regions: O, (B, N, D) region features. tokens: P, (B, M, D) token features.
        tau: temperature (a number or 0-d tensor). bias: (B, M) per-token bias (or broadcastable).
    Returns:
        (B, N, M) logits.
    """
    return (regions @ tokens.transpose(-2, -1)) / tau + bias[..., None, :]


class AlignmentHead(nn.Module):
    """GLIP's word-region alignment with its initialisation. Parameter names follow ``VLDyHead``.

    ``project_text=False`` drops the learned projection of the text side (OWL-ViT's choice): the
    normalised text features are the class weights as they come, and only the image side (its
    region features O) learns to meet them."""

    def __init__(self, dim: int, project_text: bool = True) -> None:
        super().__init__()
        self.dot_product_projection_text = nn.Linear(dim, dim) if project_text else None
        self.log_scale = nn.Parameter(torch.zeros(()))           # tau = exp(0) = 1 at the start
        self.bias_lang = nn.Parameter(torch.zeros(dim))
        self.bias0 = nn.Parameter(torch.tensor(BIAS_INIT))

    def forward(self, regions: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """regions (B, N, D), text (B, M, D) -> logits (B, N, M)."""
        p = F.normalize(text, dim=-1)
        proj = self.dot_product_projection_text
        tokens = proj(p / 2.0) if proj is not None else p        # (B, M, D)
        bias = p @ self.bias_lang + self.bias0                   # (B, M)
        return alignment_logits(regions, tokens, self.log_scale.exp(), bias).clamp(-CLAMP, CLAMP)


class ClassHead(nn.Module):
    """The fixed-vocabulary alternative: logits over C classes, (B, N, D) -> (B, N, C)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.cls_logits = nn.Linear(dim, num_classes)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, BIAS_INIT)

    def forward(self, regions: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.cls_logits(regions)


class DenseHead(nn.Module):
    """Features (B, D, g, g) -> ltrb distances (B, N, 4) in pixels, centerness logits (B, N) and
    region features O (B, N, D), N = g * g locations in row order.

    Args:
        dim: D. stride: pixels per grid cell (distances are predicted in strides).
    """

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.cls_tower = conv_block(dim, dim)
        self.bbox_tower = conv_block(dim, dim)
        self.bbox_pred = nn.Conv2d(dim, 4, 3, padding=1)
        self.centerness = nn.Conv2d(dim, 1, 3, padding=1)
        self.dot_product_projection_image = nn.Conv2d(dim, dim, 1)
        for m in (self.bbox_pred, self.centerness, self.dot_product_projection_image):
            nn.init.normal_(m.weight, std=0.01)   # GLIP / FCOS head initialisation
            nn.init.zeros_(m.bias)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        box = self.bbox_tower(feats)
        # exp keeps distances positive; a distance of one stride at the start
        ltrb = self.bbox_pred(box).clamp(max=6.0).exp() * self.stride           # (B, 4, g, g)
        ctr = self.centerness(box)                                              # (B, 1, g, g)
        regions = self.dot_product_projection_image(self.cls_tower(feats))      # (B, D, g, g)
        flat = lambda t: t.flatten(2).transpose(1, 2)                           # (B, N, C)
        return flat(ltrb), flat(ctr)[..., 0], flat(regions)

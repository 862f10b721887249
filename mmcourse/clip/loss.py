"""CLIP's contrastive loss over a batch, and the false negatives hiding in it.

In a batch of B image-caption pairs, the B x B similarity matrix has the matching pairs on its
diagonal (正样本 positives) and every other pairing off it (负样本 negatives). Nobody labelled
those negatives: they are simply the other pairs of the batch (批内负样本 in-batch negatives).
The loss is a B-way classification in both directions (InfoNCE):

    loss = ( CE(rows of logits, diagonal) + CE(columns of logits, diagonal) ) / 2

When two pairs in a batch have the same caption, the "negative" between an image and the other
copy of its caption is not negative at all (a false negative). ``caption_ids`` lets the loss
drop exactly those entries.

Shapes: B = batch, E = embedding width.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def caption_ids(captions: Sequence[str]) -> torch.Tensor:
    """(B,) int64: equal ids for equal captions (each caption's first index in the list)."""
    first: dict[str, int] = {}
    return torch.tensor([first.setdefault(c, i) for i, c in enumerate(captions)], dtype=torch.long)


def duplicate_mask(ids: torch.Tensor) -> torch.Tensor:
    """(B, B) bool, True at the off-diagonal pairs (i, j) whose ids are equal: the false negatives."""
    if ids.ndim != 1:
        raise ValueError(f"ids must have shape (B,), got {tuple(ids.shape)}")
    same = ids[:, None] == ids[None, :]
    return same & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    caption_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric cross-entropy over the in-batch similarity matrix (open_clip's ``ClipLoss``).

    Args:
        image_features: (B, E); normalised here, so any length works.
        text_features: (B, E), row i is the caption of image i.
        logit_scale: the multiplier ``exp(s)`` (a float or scalar tensor), as open_clip passes it.
        caption_ids: optional (B,) ids, equal for duplicate captions; those off-diagonal pairs
            are left out of both softmaxes instead of being pushed apart.

    Returns:
        Scalar loss. ln(B) means the model cannot tell the pairs apart; 0 is perfect.
    """
    if image_features.ndim != 2 or image_features.shape != text_features.shape:
        raise ValueError(f"image_features and text_features must both be (B, E), got "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = logit_scale * img @ txt.T                 # (B, B): row i = image i against every caption
    if caption_ids is not None:
        if caption_ids.shape != (len(img),):
            raise ValueError(f"caption_ids must have shape ({len(img)},), got {tuple(caption_ids.shape)}")
        # -inf -> probability 0: the duplicate is neither a positive nor a negative. The mask is
        # symmetric, so it removes the same pairs from the text-to-image direction.
        logits = logits.masked_fill(duplicate_mask(caption_ids.to(logits.device)), float("-inf"))
    labels = torch.arange(len(img), device=img.device)  # the positives sit on the diagonal
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def false_negative_stats(ids: torch.Tensor) -> dict[str, float]:
    """How many of a batch's in-batch negatives are really duplicates of the positive.

    Returns ``share`` (false negatives / all B(B-1) negatives), ``per_row`` (mean false negatives
    per image) and ``rows_hit`` (fraction of images with at least one false negative).
    """
    dup = duplicate_mask(ids)
    B = len(ids)
    if B < 2:
        return {"share": 0.0, "per_row": 0.0, "rows_hit": 0.0}
    per_row = dup.sum(dim=1).float()
    return {"share": float(per_row.sum() / (B * (B - 1))), "per_row": float(per_row.mean()),
            "rows_hit": float((per_row > 0).float().mean())}

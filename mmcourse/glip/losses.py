"""GLIP's losses: token-level sigmoid focal loss, GIoU box loss and centerness BCE.

- ``sigmoid_focal_loss`` (Lin et al., 2017): binary cross-entropy per (location, token) scaled by
  ``alpha_t (1 - p_t)^gamma``, so the flood of easy background locations stops dominating.
  GLIP's ``TokenSigmoidFocalLoss`` sums it over the real tokens and divides by the number of
  positive locations.
- ``generalized_box_iou`` (Rezatofighi et al., 2019): IoU minus the share of the enclosing box
  that neither box covers; it stays informative for disjoint boxes, where IoU is flat at 0.
- centerness: binary cross-entropy against FCOS's centerness target of each positive location.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ALPHA, GAMMA = 0.25, 2.0  # GLIP's (and RetinaNet's) focal-loss constants


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = ALPHA,
                       gamma: float = GAMMA) -> torch.Tensor:
    """Element-wise focal loss (same shape as ``logits``); targets in {0, 1}.

    loss = -alpha_t (1 - p_t)^gamma log(p_t), p_t = p for a target 1 and 1 - p for a 0,
    alpha_t = alpha for a 1 and 1 - alpha for a 0 (alpha < 0 switches the weighting off).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape")
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # = -log(p_t), stable
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=1e-9)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise GIoU of matched xyxy boxes (..., 4) -> (...), in (-1, 1]."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a) + box_area(b) - inter
    iou = inter / union.clamp(min=1e-9)
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-9)


def soft_token_loss(logits: torch.Tensor, token_target: torch.Tensor, token_mask: torch.Tensor,
                    positive: torch.Tensor) -> torch.Tensor:
    """MDETR's soft-token prediction at the positive locations: a softmax over the prompt's word
    tokens, cross-entropy against the target row spread uniformly over its phrase's tokens.

    Unlike the per-token sigmoid, the softmax makes the tokens compete, so "circle" rises only if
    "square" falls: the gradient of a classifier, which the focal loss scales down for every
    moderately wrong token (weight (1 - alpha) p^gamma = 0.07 at p = 0.3).
    """
    if not positive.any():
        return logits.sum() * 0
    z = logits[positive].masked_fill(~token_mask[:, None, :].expand_as(logits)[positive], float("-inf"))
    t = token_target[positive]
    t = t / t.sum(-1, keepdim=True).clamp(min=1)
    return -(t * z.log_softmax(-1).masked_fill(t == 0, 0)).sum(-1).mean()


def grounding_loss(logits: torch.Tensor, token_target: torch.Tensor, token_mask: torch.Tensor,
                   pred_boxes: torch.Tensor, target_boxes: torch.Tensor, centerness_logits: torch.Tensor,
                   centerness_target: torch.Tensor, positive: torch.Tensor, soft_token_weight: float = 0.0
                   ) -> dict[str, torch.Tensor]:
    """GLIP's three losses for one batch, plus optionally MDETR's soft-token loss (weight
    ``soft_token_weight``, :func:`soft_token_loss`); returns "cls", "box", "ctr", "token", "total".

    Args:
        logits: (B, N, M) alignment logits; token_target: (B, N, M) in {0, 1};
        token_mask: (B, M) bool, the tokens that count (words of the prompt, not padding or
            start/end tokens).
        pred_boxes, target_boxes: (B, N, 4) xyxy; centerness_logits, centerness_target: (B, N);
        positive: (B, N) bool, the locations assigned to a box.
    Normalisation: the focal loss is summed and divided by the number of positive locations; the
    GIoU loss is weighted by the centerness targets (ATSS / GLIP) and normalised by their sum.
    """
    num_pos = positive.sum().clamp(min=1).float()
    mask = token_mask[:, None, :].expand_as(logits)
    cls = sigmoid_focal_loss(logits[mask], token_target[mask]).sum() / num_pos
    if positive.any():
        w = centerness_target[positive]
        giou = generalized_box_iou(pred_boxes[positive], target_boxes[positive])
        box = ((1 - giou) * w).sum() / w.sum().clamp(min=1e-6)
        ctr = F.binary_cross_entropy_with_logits(centerness_logits[positive], w)
    else:  # no object in the batch's prompts: only the background term
        box = ctr = logits.sum() * 0
    token = soft_token_loss(logits, token_target, token_mask, positive) if soft_token_weight else cls * 0
    return {"cls": cls, "box": box, "ctr": ctr, "token": token, "total": cls + box + ctr + soft_token_weight * token}

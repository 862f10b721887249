"""GLIP's losses: token-level sigmoid focal loss, GIoU box loss and centerness BCE.

The box functions come from the course's box toolkit (:mod:`mmcourse.boxes`, torchvision.ops'
semantics):

- ``sigmoid_focal_loss`` (Lin et al., 2017): binary cross-entropy per (location, token) scaled by
  ``alpha_t (1 - p_t)^gamma``, so the flood of easy background locations stops dominating.
  GLIP's ``TokenSigmoidFocalLoss`` sums it over the real tokens and divides by the number of
  positive locations.
- ``generalized_box_iou_loss`` (Rezatofighi et al., 2019): 1 - GIoU, IoU minus the share of the
  enclosing box that neither box covers; it stays informative for disjoint boxes, where IoU is
  flat at 0.
- centerness: binary cross-entropy against FCOS's centerness target of each positive location.
- MDETR's soft-token loss (:func:`soft_token_loss`), the course's addition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..boxes import generalized_box_iou_loss, sigmoid_focal_loss

ALPHA, GAMMA = 0.25, 2.0  # GLIP's (and RetinaNet's) focal-loss constants


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
    cls = sigmoid_focal_loss(logits[mask], token_target[mask], ALPHA, GAMMA).sum() / num_pos
    if positive.any():
        w = centerness_target[positive]
        box = (generalized_box_iou_loss(pred_boxes[positive], target_boxes[positive]) * w).sum() / w.sum().clamp(min=1e-6)
        ctr = F.binary_cross_entropy_with_logits(centerness_logits[positive], w)
    else:  # no object in the batch's prompts: only the background term
        box = ctr = logits.sum() * 0
    token = soft_token_loss(logits, token_target, token_mask, positive) if soft_token_weight else cls * 0
    return {"cls": cls, "box": box, "ctr": ctr, "token": token, "total": cls + box + ctr + soft_token_weight * token}

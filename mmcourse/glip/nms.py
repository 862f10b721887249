"""Non-maximum suppression in plain torch: keep the best box, drop those overlapping it, repeat.

A dense detector fires at many neighbouring locations for one object. Greedy NMS sorts the
boxes by score and walks down the list, discarding every box whose IoU with an already kept box
exceeds the threshold. Class-aware NMS runs it per label (a circle never suppresses an
overlapping square); the usual trick offsets each label's boxes far apart so one call does all.
"""

from __future__ import annotations

import torch

from .losses import box_iou


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the kept boxes, by decreasing score.

    Args:
        boxes: (n, 4) xyxy. scores: (n,). iou_threshold: drop a box whose IoU with a kept one is
            strictly greater than this.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"boxes must be (n, 4) and scores (n,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    order = scores.argsort(descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])                  # (n, n) in score order
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes only suppress boxes with the same label. Indices by decreasing score."""
    if labels.shape != scores.shape:
        raise ValueError(f"labels {tuple(labels.shape)} must have the shape of scores {tuple(scores.shape)}")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)  # labels never overlap
    return nms(boxes + offset, scores, iou_threshold)

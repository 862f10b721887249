"""The course's one box toolkit: box formats, IoU, generalized IoU, NMS and the sigmoid focal loss.

SAM's boxes-from-masks, GLIP's detector and the shared detection AP all import from here. Names,
arguments and results follow ``torchvision.ops`` (``box_convert``, ``box_area``, ``box_iou``,
``generalized_box_iou``, ``generalized_box_iou_loss``, ``nms``, ``batched_nms``,
``sigmoid_focal_loss``), and ``tests/test_boxes.py`` checks each one against it. Two departures,
both on degenerate input where torchvision's answer is not a number:

* two boxes whose union has zero area (two zero-area boxes) have IoU 0 here, where torchvision
  divides 0 by 0 and returns NaN (pycocotools also counts 0). A NaN IoU silently matches nothing
  in NMS but compares False everywhere else; 0 says the same thing without the trap.
* bad input (NaN or inf coordinates, x1 < x0, a wrong shape, an unknown format) raises a
  ``ValueError`` naming the argument, where torchvision computes on.

Boxes are ``xyxy`` (x0, y0, x1, y1: left, top, right, bottom) unless a function takes a format;
area is (x1 - x0) * (y1 - y0) with no "+1", as torchvision and pycocotools count it.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")


# ---------------------------------------------------------------------------------------------
# Checking arguments
# ---------------------------------------------------------------------------------------------


def _as_tensor(x, argument: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{argument} must be a tensor of numbers, got {type(x).__name__}: {err}") from None


def _as_float(x, argument: str) -> torch.Tensor:
    """A float tensor: float32/float64 kept, half precision upcast to float32 (as torchvision's
    ``_upcast``), integers to float64 (exact for pixel coordinates)."""
    x = _as_tensor(x, argument)
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{argument} must hold real numbers, got dtype {x.dtype}")
    if x.is_floating_point():
        return x if x.dtype in (torch.float32, torch.float64) else x.float()
    return x.double()


def _check_finite(x: torch.Tensor, argument: str) -> None:
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{argument} must be finite: it holds NaN or inf")


_SHAPES = {"any": ("(..., 4)", 1, None), "sets": ("(..., N, 4)", 2, None), "list": ("(N, 4)", 2, 2)}


def _check_boxes(boxes, argument: str, fmt: str = "xyxy", shape: str = "sets") -> torch.Tensor:
    """``boxes`` as a float tensor of ``shape`` ("any": (..., 4), "sets": (..., N, 4), "list":
    (N, 4)), finite and, in xyxy, with x1 >= x0 and y1 >= y0 (in xywh / cxcywh, w >= 0 and h >= 0)."""
    boxes = _as_float(boxes, argument)
    b = boxes.detach()
    want, low, high = _SHAPES[shape]
    if boxes.ndim < low or (high is not None and boxes.ndim > high) or boxes.shape[-1] != 4:
        raise ValueError(f"{argument} must have shape {want} ({fmt} boxes), got {tuple(boxes.shape)}")
    _check_finite(b, argument)
    # Areas multiply two coordinates: past sqrt(max) / 4 they overflow to inf (1e19 in float32).
    limit = math.sqrt(torch.finfo(boxes.dtype).max) / 4
    if b.numel() and float(b.abs().max()) > limit:
        raise ValueError(f"{argument} must have coordinates of magnitude at most {limit:.1e} for {b.dtype} "
                         f"(their areas would overflow), got {float(b.abs().max()):.3g}")
    if fmt == "xyxy":
        bad = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
        rule = "xyxy with x1 >= x0 and y1 >= y0"
    else:
        bad = (b[..., 2] < 0) | (b[..., 3] < 0)
        rule = f"{fmt} with w >= 0 and h >= 0"
    if bool(bad.any()):
        first = b[bad][0].tolist()
        raise ValueError(f"{argument} must be {rule}; got a box {first}")
    return boxes


def _check_format(fmt, argument: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"{argument} must be one of {', '.join(map(repr, FORMATS))}, got {fmt!r}")
    return fmt


def _check_number(x, argument: str, low: float, high: float) -> float:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)) or not low <= float(x) <= high:
        raise ValueError(f"{argument} must be a number in [{low:g}, {high:g}], got {x!r}")
    return float(x)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    return loss.sum() if reduction == "sum" else loss


# ---------------------------------------------------------------------------------------------
# Formats and areas
# ---------------------------------------------------------------------------------------------


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Boxes (..., 4) from ``in_fmt`` to ``out_fmt``, each one of

    * ``"xyxy"``: (x0, y0, x1, y1), the top-left and bottom-right corners;
    * ``"xywh"``: (x0, y0, w, h), the top-left corner, width and height (COCO's annotations);
    * ``"cxcywh"``: (cx, cy, w, h), the centre, width and height (DETR's and Grounding DINO's).
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    boxes = _check_boxes(boxes, "boxes", in_fmt, shape="any")
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # (a, b, c, d) is now xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), -1)


def box_area(boxes: torch.Tensor, fmt: str = "xyxy") -> torch.Tensor:
    """Area of each box: (..., 4) -> (...)."""
    _check_format(fmt, "fmt")
    boxes = _check_boxes(boxes, "boxes", fmt, shape="any")
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


# ---------------------------------------------------------------------------------------------
# IoU and generalized IoU
# ---------------------------------------------------------------------------------------------


def _inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise intersection and union areas of checked xyxy boxes: (..., N, 4), (..., M, 4) -> (..., N, M)."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])    # (..., N)
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])    # (..., M)
    lt = torch.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])          # (..., N, M, 2)
    rb = torch.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])          # (..., N, M, 2)
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[..., :, None] + area2[..., None, :] - inter


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den is 0 (so a degenerate pair gives 0, not NaN)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def _common_dtype(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box in ``boxes1`` (..., N, 4) with every box in
    ``boxes2`` (..., M, 4), xyxy: returns (..., N, M) in [0, 1] (0 where the union is empty)."""
    boxes1, boxes2 = _common_dtype(_check_boxes(boxes1, "boxes1"), _check_boxes(boxes2, "boxes2"))
    inter, union = _inter_union(boxes1, boxes2)
    return _divide(inter, union)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalized IoU (Rezatofighi et al., 2019) of every pair, (..., N, 4) x (..., M, 4) -> (..., N, M).

    GIoU = IoU - (C - U) / C, with C the area of the smallest box enclosing both and U their union:
    in [-1, 1], and unlike IoU still graded for boxes that do not touch. Where torchvision divides
    0 by 0 (two zero-area boxes) the IoU term is 0 here, so such a pair gives -1, or 0 when even
    their enclosing box has zero area."""
    boxes1, boxes2 = _common_dtype(_check_boxes(boxes1, "boxes1"), _check_boxes(boxes2, "boxes2"))
    inter, union = _inter_union(boxes1, boxes2)
    lt = torch.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = torch.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return _divide(inter, union) - _divide(hull - union, hull)


def generalized_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none",
                             eps: float = 1e-7) -> torch.Tensor:
    """1 - GIoU of MATCHED boxes (element-wise, (..., 4) and (..., 4) -> (...)), as torchvision's
    ``generalized_box_iou_loss``: the box-regression loss of GLIP (and FCOS / ATSS before it).

    ``eps`` is added to each denominator (so the gradient exists for degenerate pairs)."""
    boxes1 = _check_boxes(boxes1, "boxes1", shape="any")
    boxes2 = _check_boxes(boxes2, "boxes2", shape="any")
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"boxes1 and boxes2 must be matched boxes of one shape (..., 4), "
                         f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    boxes1, boxes2 = _common_dtype(boxes1, boxes2)
    _check_number(eps, "eps", 0.0, 1.0)
    x0, y0, x1, y1 = boxes1.unbind(-1)
    u0, v0, u1, v1 = boxes2.unbind(-1)
    w, h = torch.minimum(x1, u1) - torch.maximum(x0, u0), torch.minimum(y1, v1) - torch.maximum(y0, v0)
    # Zero (and no gradient) unless the boxes overlap with positive area, as torchvision counts it.
    inter = torch.where((w > 0) & (h > 0), w * h, torch.zeros_like(w))
    union = (x1 - x0) * (y1 - y0) + (u1 - u0) * (v1 - v0) - inter
    hull = (torch.maximum(x1, u1) - torch.minimum(x0, u0)) * (torch.maximum(y1, v1) - torch.minimum(y0, v0))
    giou = inter / (union + eps) - (hull - union) / (hull + eps)
    return _reduce(1 - giou, reduction)


# ---------------------------------------------------------------------------------------------
# Non-maximum suppression
# ---------------------------------------------------------------------------------------------


def _check_nms_args(boxes, scores, iou_threshold) -> tuple[torch.Tensor, torch.Tensor, float]:
    boxes = _check_boxes(boxes, "boxes", shape="list")
    scores = _as_float(scores, "scores")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must hold one value per box: boxes has shape {tuple(boxes.shape)}, "
                         f"scores {tuple(scores.shape)}")
    _check_finite(scores, "scores")
    return boxes, scores, _check_number(iou_threshold, "iou_threshold", 0.0, 1.0)


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                idxs: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy NMS over boxes sorted by decreasing score (a stable sort: equal scores keep their
    input order, as torchvision's CPU kernel sorts). A kept box removes every later box whose IoU
    with it is strictly greater than the threshold (and, given ``idxs``, that has its category)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]                                                      # (N, 4) in score order
    same = None if idxs is None else idxs[order]
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        inter, union = _inter_union(b[i : i + 1], b[i + 1 :])             # (1, N - i - 1)
        hit = _divide(inter, union)[0] > iou_threshold
        if same is not None:
            hit &= same[i + 1 :] == same[i]
        removed[i + 1 :] |= hit
    return order[torch.tensor(keep, dtype=torch.long)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: int64 indices of the kept boxes, by decreasing score.

    Walk the boxes from the highest score down; keep a box unless a kept box overlaps it with
    IoU strictly greater than ``iou_threshold`` (in [0, 1]). Equal scores are taken in input
    order (torchvision's CPU kernel sorts stably); a zero-area box never suppresses anything.

    Args:
        boxes: (N, 4) xyxy. scores: (N,). iou_threshold: the IoU above which a box is dropped.
    """
    boxes, scores, iou_threshold = _check_nms_args(boxes, scores, iou_threshold)
    return _greedy_nms(boxes, scores, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each category: a box only suppresses boxes with the same ``idxs`` value (a
    circle never removes an overlapping square). Indices of the kept boxes by decreasing score,
    equal scores in input order.

    torchvision reaches the same result by shifting each category's boxes far apart and calling
    :func:`nms` once; here the category test is part of the greedy walk, so no coordinate ever
    grows large enough to round.

    Args:
        boxes: (N, 4) xyxy. scores: (N,). idxs: (N,) integer category of each box.
        iou_threshold: as in :func:`nms`.
    """
    boxes, scores, iou_threshold = _check_nms_args(boxes, scores, iou_threshold)
    idxs = _as_tensor(idxs, "idxs")
    if idxs.shape != scores.shape or idxs.is_floating_point() or idxs.is_complex():
        raise ValueError(f"idxs must be an integer tensor of shape ({len(scores)},), one category per box, "
                         f"got dtype {idxs.dtype} and shape {tuple(idxs.shape)}")
    return _greedy_nms(boxes, scores, iou_threshold, idxs)


# ---------------------------------------------------------------------------------------------
# Focal loss
# ---------------------------------------------------------------------------------------------


def sigmoid_focal_loss(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    """RetinaNet's focal loss (Lin et al., 2017) on logits, as torchvision's ``sigmoid_focal_loss``.

    loss = -alpha_t (1 - p_t)^gamma log(p_t), with p = sigmoid(inputs), p_t = p where the target
    is 1 and 1 - p where it is 0, alpha_t = alpha for a 1 and 1 - alpha for a 0 (``alpha = -1``
    switches the weighting off). The factor (1 - p_t)^gamma turns down the many easy examples
    (background locations, background pixels), so the few hard ones drive the gradient.
    SAM uses it on mask pixels (20 : 1 with dice), GLIP on (location, token) pairs.

    Args:
        inputs: logits of any shape. targets: the same shape, in [0, 1] (usually 0 or 1).
        alpha: in [0, 1], or -1. gamma: >= 0. reduction: "none", "mean" or "sum".
    """
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise ValueError(f"inputs must be a float tensor of logits, got "
                         f"{inputs.dtype if isinstance(inputs, torch.Tensor) else type(inputs).__name__}")
    targets = _as_tensor(targets, "targets")
    if targets.is_complex():
        raise ValueError(f"targets must hold real numbers in [0, 1], got dtype {targets.dtype}")
    if targets.shape != inputs.shape:
        raise ValueError(f"targets must have the shape of inputs {tuple(inputs.shape)}, got {tuple(targets.shape)}")
    targets = targets.to(inputs.dtype)
    if targets.numel() and not bool(((targets >= 0) & (targets <= 1)).all()):
        raise ValueError("targets must lie in [0, 1] (1 for the positive class, 0 for the negative)")
    if inputs.numel() and not bool(torch.isfinite(inputs.detach()).all()):
        raise ValueError("inputs must be finite: the logits hold NaN or inf")
    if not (type(alpha) in (int, float) and alpha == -1):
        alpha = _check_number(alpha, "alpha (or -1 to switch it off)", 0.0, 1.0)
    gamma = _check_number(gamma, "gamma", 0.0, math.inf)
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")   # -log(p_t), stable
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


__all__ = [
    "FORMATS", "box_convert", "box_area", "box_iou", "generalized_box_iou", "generalized_box_iou_loss",
    "nms", "batched_nms", "sigmoid_focal_loss",
]

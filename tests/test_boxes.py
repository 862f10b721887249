"""The box toolkit (mmcourse.boxes) against torchvision.ops, on random and degenerate boxes.

What each test compares with:

* ``box_convert``, ``box_area``, ``box_iou``, ``generalized_box_iou``, ``generalized_box_iou_loss``
  and ``sigmoid_focal_loss``: torchvision.ops' own functions (pure Python, they run here).
* ``nms``: torchvision's compiled kernel cannot load beside the CPU build of torch in this venv
  (tests/_torchvision_compat.py), so ``torchvision.ops.nms`` itself cannot be called. Two
  references stand in for it: (1) ``kernel_nms``, the CPU kernel's loop
  (torchvision/csrc/ops/cpu/nms_kernel.cpp) re-stated box by box in scalar arithmetic of the
  boxes' dtype: stable descending sort, IoU = inter / (area_i + area_j - inter), suppress when
  IoU > threshold, so a 0/0 IoU never suppresses; (2) ``suite_nms``, the reference torchvision's
  own test suite checks its kernel against (test/test_ops.py, TestNMS._reference_nms), which
  calls ``torchvision.ops.box_iou`` and keeps boxes with IoU <= threshold.
* ``batched_nms``: torchvision's own Python routes, ``_batched_nms_coordinate_trick`` (offset each
  category's boxes, one nms) and ``_batched_nms_vanilla`` (nms per category), run with their inner
  ``nms`` replaced by ``kernel_nms``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _hostile import check_hostile, hostile_numbers, hostile_tensors
from mmcourse import boxes as B

tv_ops = pytest.importorskip("torchvision.ops")
tv_boxes = pytest.importorskip("torchvision.ops.boxes")


def random_boxes(n: int, seed: int, dtype=torch.float32, size: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 2
    return torch.cat([xy, xy + wh], 1).to(dtype)


def degenerate_boxes() -> torch.Tensor:
    """Zero-width, zero-height and point boxes, touching edges, identical and nested boxes."""
    return torch.tensor([
        [0.0, 0, 10, 10], [0, 0, 10, 10],      # identical
        [10, 0, 20, 10],                       # touches the first along x = 10
        [2, 2, 8, 8],                          # inside the first
        [5, 5, 5, 9],                          # zero width
        [3, 4, 9, 4],                          # zero height
        [5, 5, 5, 5], [5, 5, 5, 5],            # the same point twice
        [30, 30, 31, 31],                      # far away
    ])


# ---------------------------------------------------------------------------------------------
# Formats and areas
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_fmt", B.FORMATS)
@pytest.mark.parametrize("out_fmt", B.FORMATS)
def test_box_convert_matches_torchvision(in_fmt, out_fmt):
    xyxy = random_boxes(50, 0, torch.float64)
    boxes = tv_ops.box_convert(xyxy, "xyxy", in_fmt)
    for shape in ((50, 4), (5, 10, 4), (4,)):
        x = boxes.reshape(shape) if shape != (4,) else boxes[0]
        torch.testing.assert_close(B.box_convert(x, in_fmt, out_fmt), tv_ops.box_convert(x, in_fmt, out_fmt))
    # a round trip returns the boxes
    torch.testing.assert_close(B.box_convert(B.box_convert(boxes, in_fmt, out_fmt), out_fmt, in_fmt), boxes)


@pytest.mark.parametrize("fmt", B.FORMATS)
def test_box_area_matches_torchvision(fmt):
    boxes = tv_ops.box_convert(torch.cat([random_boxes(30, 1), degenerate_boxes()]), "xyxy", fmt)
    torch.testing.assert_close(B.box_area(boxes, fmt), tv_ops.box_area(boxes, fmt))


def test_box_convert_known_values_and_empty():
    box = torch.tensor([[2.0, 4.0, 6.0, 10.0]])  # x0 2, y0 4, x1 6, y1 10
    assert B.box_convert(box, "xyxy", "xywh").tolist() == [[2, 4, 4, 6]]
    assert B.box_convert(box, "xyxy", "cxcywh").tolist() == [[4, 7, 4, 6]]
    assert B.box_convert(torch.zeros(0, 4), "xyxy", "cxcywh").shape == (0, 4)


# ---------------------------------------------------------------------------------------------
# IoU and generalized IoU
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_matches_torchvision_on_random_boxes(dtype):
    a, b = random_boxes(60, 2, dtype), random_boxes(45, 3, dtype)
    got = B.box_iou(a, b)
    assert got.dtype == dtype and got.shape == (60, 45)
    torch.testing.assert_close(got, tv_ops.box_iou(a, b))
    assert (got > 0).float().mean() > 0.1  # the draw has real overlaps, not only zeros
    # leading batch dimensions, as torchvision allows
    torch.testing.assert_close(B.box_iou(a.reshape(3, 20, 4), b[:30].reshape(3, 10, 4)),
                               tv_ops.box_iou(a.reshape(3, 20, 4), b[:30].reshape(3, 10, 4)))


def test_box_iou_integer_boxes_match_torchvision():
    a = (random_boxes(20, 4) * 3).round().long()
    b = (random_boxes(25, 5) * 3).round().long()
    torch.testing.assert_close(B.box_iou(a, b).float(), tv_ops.box_iou(a, b).float())


def test_box_iou_degenerate_boxes():
    d = degenerate_boxes()
    got, want = B.box_iou(d, d), tv_ops.box_iou(d, d)
    nan = torch.isnan(want)
    # torchvision divides 0 by 0 exactly where both boxes have zero area (the point and the lines)
    zero_area = tv_ops.box_area(d) == 0
    assert torch.equal(nan, zero_area[:, None] & zero_area[None, :] & (want != want))
    assert nan.any()
    assert (got[nan] == 0).all()                       # the toolkit: 0, not NaN
    torch.testing.assert_close(got[~nan], want[~nan])  # everywhere else the same numbers
    assert got[0, 1] == 1 and got[0, 2] == 0 and got[0, 3] == pytest.approx(0.36)  # identical, touching, nested
    # empty sets
    assert B.box_iou(torch.zeros(0, 4), d).shape == (0, len(d))
    assert B.box_iou(d, torch.zeros(0, 4)).shape == (len(d), 0)


def test_box_iou_matches_pycocotools():
    """pycocotools (the COCO evaluation) counts zero-area pairs as 0 too."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    a = torch.cat([random_boxes(15, 6, torch.float64), degenerate_boxes().double()])
    b = torch.cat([random_boxes(12, 7, torch.float64), degenerate_boxes().double()])
    xywh = lambda x: B.box_convert(x, "xyxy", "xywh").numpy()  # noqa: E731
    want = mask_utils.iou(xywh(a), xywh(b), np.zeros(len(b), dtype=np.uint8))
    np.testing.assert_allclose(B.box_iou(a, b).numpy(), want, atol=1e-12)


def test_generalized_box_iou_matches_torchvision():
    a, b = random_boxes(40, 8, torch.float64), random_boxes(30, 9, torch.float64)
    got = B.generalized_box_iou(a, b)
    torch.testing.assert_close(got, tv_ops.generalized_box_iou(a, b))
    assert (got < 0).any() and (got > 0).any() and (got > -1).all() and (got <= 1).all()
    d = degenerate_boxes().double()
    got, want = B.generalized_box_iou(d, d), tv_ops.generalized_box_iou(d, d)
    nan = torch.isnan(want)
    hull = B.box_area(torch.cat([torch.minimum(d[:, None, :2], d[None, :, :2]),
                                 torch.maximum(d[:, None, 2:], d[None, :, 2:])], -1))
    assert nan.any() and torch.equal(got[nan], torch.where(hull > 0, -1.0, 0.0).double()[nan])
    torch.testing.assert_close(got[~nan], want[~nan])
    # disjoint boxes: IoU is 0 but GIoU still says how far apart they are
    near, far = torch.tensor([[11.0, 0, 21, 10]]), torch.tensor([[40.0, 0, 50, 10]])
    base = torch.tensor([[0.0, 0, 10, 10]])
    assert B.generalized_box_iou(base, far) < B.generalized_box_iou(base, near) < 0


@pytest.mark.parametrize("reduction", B.REDUCTIONS)
def test_generalized_box_iou_loss_matches_torchvision(reduction):
    a, b = random_boxes(50, 10), random_boxes(50, 11)
    a = torch.cat([a, degenerate_boxes()])
    b = torch.cat([b, degenerate_boxes().flip(0)])
    a.requires_grad_(True)
    got = B.generalized_box_iou_loss(a, b, reduction)
    want = tv_ops.generalized_box_iou_loss(a, b, reduction)
    torch.testing.assert_close(got, want)
    (ga,) = torch.autograd.grad(got.sum(), a)
    (wa,) = torch.autograd.grad(want.sum(), a)
    torch.testing.assert_close(ga, wa)
    # matched pairs of any leading shape; empty input
    torch.testing.assert_close(B.generalized_box_iou_loss(a[:40].reshape(4, 10, 4), b[:40].reshape(4, 10, 4), reduction),
                               tv_ops.generalized_box_iou_loss(a[:40].reshape(4, 10, 4), b[:40].reshape(4, 10, 4), reduction))
    assert B.generalized_box_iou_loss(torch.zeros(0, 4), torch.zeros(0, 4), reduction).numel() in (0, 1)


# ---------------------------------------------------------------------------------------------
# NMS: two references for the compiled op (see the module docstring)
# ---------------------------------------------------------------------------------------------


def kernel_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision's CPU NMS kernel, box by box in scalars of the boxes' dtype."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    t = np.float32 if boxes.dtype == torch.float32 else np.float64
    x1, y1, x2, y2 = (boxes[:, k].numpy().astype(t) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed = [False] * len(order)
    keep = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for a, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            for j in order[a + 1 :]:
                if suppressed[j]:
                    continue
                w = max(t(0), min(x2[i], x2[j]) - max(x1[i], x1[j]))
                h = max(t(0), min(y2[i], y2[j]) - max(y1[i], y1[j]))
                inter = w * h
                if inter / (areas[i] + areas[j] - inter) > iou_threshold:  # NaN > x is False
                    suppressed[j] = True
    return torch.tensor(keep, dtype=torch.long)


def suite_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The reference of torchvision's test suite: take the best, keep the rest with IoU <= threshold."""
    picked = []
    rest = torch.sort(scores, descending=True, stable=True).indices
    while len(rest):
        best, rest = rest[0], rest[1:]
        picked.append(int(best))
        iou = tv_ops.box_iou(boxes[rest], boxes[best][None])[:, 0]
        rest = rest[iou <= iou_threshold]
    return torch.tensor(picked, dtype=torch.long)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_torchvision_references_on_random_boxes(seed, iou_threshold):
    dtype = torch.float32 if seed % 2 else torch.float64
    n = [0, 1, 2, 30, 80, 150][seed]
    boxes = random_boxes(n, seed, dtype)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(100 + seed), dtype=dtype)
    got = B.nms(boxes, scores, iou_threshold)
    assert got.dtype == torch.long
    assert torch.equal(got, kernel_nms(boxes, scores, iou_threshold))
    assert torch.equal(got, suite_nms(boxes, scores, iou_threshold))
    if n:
        assert (scores[got].diff() <= 0).all()  # by decreasing score


def test_nms_ties_keep_input_order():
    """Equal scores: the stable sort of torchvision's CPU kernel takes them in input order."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [21, 21, 31, 31], [50, 50, 60, 60]])
    scores = torch.full((5,), 0.5)
    assert B.nms(boxes, scores, 0.5).tolist() == [0, 2, 4] == kernel_nms(boxes, scores, 0.5).tolist()
    # reversed order: the first of each overlapping pair in the input wins again
    assert B.nms(boxes.flip(0), scores, 0.5).tolist() == [0, 1, 3] == kernel_nms(boxes.flip(0), scores, 0.5).tolist()
    # ties among many random boxes, scores rounded to a few values
    b = random_boxes(120, 20)
    s = (torch.rand(120, generator=torch.Generator().manual_seed(21)) * 4).floor() / 4
    assert torch.equal(B.nms(b, s, 0.4), kernel_nms(b, s, 0.4))


def test_nms_degenerate_boxes():
    d = degenerate_boxes()
    scores = torch.linspace(1, 0.1, len(d))
    got = B.nms(d, scores, 0.5)
    assert torch.equal(got, kernel_nms(d, scores, 0.5))
    # the identical copy (IoU 1) goes; zero-area boxes never suppress each other (0/0 in the kernel)
    assert 1 not in got.tolist() and {4, 5, 6, 7} <= set(got.tolist())
    # threshold 0: any overlap with positive area suppresses, touching does not
    assert torch.equal(B.nms(d, scores, 0.0), kernel_nms(d, scores, 0.0))
    assert 2 in B.nms(d, scores, 0.0).tolist()
    assert B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)


def test_nms_threshold_is_strict():
    """IoU exactly at the threshold is kept (the kernel suppresses only IoU > threshold)."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20]])  # IoU 100 / 200 = 0.5 exactly
    scores = torch.tensor([0.9, 0.8])
    assert B.box_iou(boxes[:1], boxes[1:]).item() == 0.5
    assert B.nms(boxes, scores, 0.5).tolist() == [0, 1] == kernel_nms(boxes, scores, 0.5).tolist()
    assert B.nms(boxes, scores, 0.49).tolist() == [0] == kernel_nms(boxes, scores, 0.49).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_torchvision_routes(seed, monkeypatch):
    monkeypatch.setattr(tv_boxes, "nms", kernel_nms)  # torchvision's routes call this module's nms
    n = [0, 5, 40, 120, 200][seed]
    boxes = random_boxes(n, seed + 30, torch.float64)
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    idxs = torch.randint(0, 4, (n,), generator=g)
    got = B.batched_nms(boxes, scores, idxs, 0.4)
    assert torch.equal(got, tv_boxes._batched_nms_coordinate_trick(boxes, scores, idxs, 0.4))
    assert torch.equal(got, tv_boxes._batched_nms_vanilla(boxes, scores, idxs, 0.4))
    if n > 40:  # categories matter: plain NMS keeps fewer
        assert len(B.nms(boxes, scores, 0.4)) < len(got)
    # ties: the coordinate trick's single stable sort gives input order, as here
    tied = (scores * 3).floor() / 3
    assert torch.equal(B.batched_nms(boxes, tied, idxs, 0.4),
                       tv_boxes._batched_nms_coordinate_trick(boxes, tied, idxs, 0.4))


def test_batched_nms_keeps_overlapping_boxes_of_other_categories():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert B.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert B.nms(boxes, scores, 0.5).tolist() == [0]


# ---------------------------------------------------------------------------------------------
# Focal loss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1, 2.0), (0.0, 0.0), (1.0, 0.5), (0.5, 3.0)])
@pytest.mark.parametrize("reduction", B.REDUCTIONS)
def test_sigmoid_focal_loss_matches_torchvision(alpha, gamma, reduction):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 3, 16, generator=g) * 4).requires_grad_(True)
    targets = (torch.rand(4, 3, 16, generator=g) < 0.2).float()
    targets[0, 0, :4] = torch.tensor([0.0, 0.3, 0.7, 1.0])  # soft targets too
    got = B.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
    want = tv_ops.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), logits)[0], torch.autograd.grad(want.sum(), logits)[0])


def test_sigmoid_focal_loss_closed_form_and_extremes():
    # gamma 0, alpha -1: plain binary cross-entropy
    x, t = torch.tensor([-2.0, 0.0, 3.0]), torch.tensor([0.0, 1.0, 1.0])
    torch.testing.assert_close(B.sigmoid_focal_loss(x, t, alpha=-1, gamma=0),
                               torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none"))
    # very confident logits stay finite and match torchvision
    x = torch.tensor([-80.0, 80.0, -80.0, 80.0])
    t = torch.tensor([0.0, 1.0, 1.0, 0.0])
    got = B.sigmoid_focal_loss(x, t)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, tv_ops.sigmoid_focal_loss(x, t))
    assert B.sigmoid_focal_loss(torch.zeros(0), torch.zeros(0), reduction="mean") == 0


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError naming the argument, or a valid result (tests/_hostile.py)
# ---------------------------------------------------------------------------------------------


def _iou_valid(out):
    return torch.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()


def test_hostile_boxes():
    good = random_boxes(5, 40)
    # a huge box is legal and gives a valid IoU; NaN, inf, wrong rank, bool... must be rejected
    reject = ["one NaN", "one inf", "one -inf", "all NaN", "bool", "complex", "one dimension fewer",
              "last axis one too long", "a 0-d tensor", "a string", "None"]
    check_hostile(lambda b: B.box_iou(b, good), "boxes1", hostile_tensors(good), _iou_valid, must_reject=reject)
    check_hostile(lambda b: B.box_iou(good, b), "boxes2", hostile_tensors(good), _iou_valid, must_reject=reject)
    check_hostile(lambda b: B.generalized_box_iou(good, b), "boxes2", hostile_tensors(good),
                  lambda o: torch.isfinite(o).all(), must_reject=reject)
    check_hostile(lambda b: B.nms(b, torch.rand(len(good)), 0.5), "boxes", hostile_tensors(good))
    check_hostile(lambda b: B.box_convert(b, "xyxy", "cxcywh"), "boxes", hostile_tensors(good))
    with pytest.raises(ValueError, match="boxes1 must be xyxy with x1 >= x0"):
        B.box_iou(torch.tensor([[10.0, 0, 0, 10]]), good)
    with pytest.raises(ValueError, match="w >= 0"):
        B.box_convert(torch.tensor([[0.0, 0, -1, 2]]), "xywh", "xyxy")


def test_hostile_scores_thresholds_formats():
    boxes, scores = random_boxes(6, 41), torch.rand(6)
    check_hostile(lambda s: B.nms(boxes, s, 0.5), "scores", hostile_tensors(scores),
                  must_reject=["one NaN", "one inf", "all NaN", "bool", "complex", "one more dimension",
                               "empty (first axis 0)", "a string", "None"])
    check_hostile(lambda t: B.nms(boxes, scores, t), "iou_threshold", hostile_numbers(0.5),
                  must_reject=["NaN", "inf", "-inf", "negative", "huge", "a string", "None", "a bool"])
    check_hostile(lambda i: B.batched_nms(boxes, scores, i, 0.5), "idxs",
                  hostile_tensors(torch.arange(6)), must_reject=["complex", "empty (first axis 0)", "a string"])
    for fmt in ("XYXY", "xyhw", None):
        with pytest.raises(ValueError, match="in_fmt"):
            B.box_convert(boxes, fmt, "xyxy")
    with pytest.raises(ValueError, match="reduction"):
        B.sigmoid_focal_loss(torch.zeros(3), torch.zeros(3), reduction="avg")


def test_hostile_focal_loss():
    x, t = torch.randn(2, 8), (torch.rand(2, 8) > 0.5).float()
    check_hostile(lambda v: B.sigmoid_focal_loss(v, t), "inputs", hostile_tensors(x),
                  must_reject=["one NaN", "one inf", "all NaN", "int64", "bool", "a string", "None"])
    check_hostile(lambda v: B.sigmoid_focal_loss(x, v), "targets", hostile_tensors(t),
                  must_reject=["one NaN", "huge", "one more dimension", "a string"])
    check_hostile(lambda a: B.sigmoid_focal_loss(x, t, alpha=a), "alpha", hostile_numbers(0.25),
                  must_reject=["NaN", "inf", "negative", "huge", "a string", "None"])
    check_hostile(lambda gm: B.sigmoid_focal_loss(x, t, gamma=gm), "gamma", hostile_numbers(2.0),
                  must_reject=["NaN", "inf", "negative", "a string", "None"])

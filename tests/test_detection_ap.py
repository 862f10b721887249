"""mmcourse.evaluate.detection_ap against pycocotools' COCOeval, and its closed-form cases (boxes matched by mmcourse.boxes.box_iou)."""

import contextlib
import io

import numpy as np
import pytest
import torch

from mmcourse.boxes import box_iou
from mmcourse.evaluate import detection_ap


def _random_case(seed: int, n_images: int = 12, n_classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    dets, tgts = [], []
    for _ in range(n_images):
        m = int(torch.randint(0, 5, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 50
        wh = 4 + torch.rand(m, 2, generator=g) * 14
        tb = torch.cat([xy, xy + wh], 1)
        tl = torch.randint(0, n_classes, (m,), generator=g)
        # detections: jittered copies of some targets (some with the wrong class) plus clutter
        keep = torch.rand(m, generator=g) < 0.8
        jit = tb[keep] + torch.randn(int(keep.sum()), 4, generator=g) * 2.5
        jit = torch.cat([jit[:, :2], torch.maximum(jit[:, 2:], jit[:, :2] + 1)], 1)
        jl = torch.where(torch.rand(int(keep.sum()), generator=g) < 0.85, tl[keep], torch.randint(0, n_classes, (int(keep.sum()),), generator=g))
        k = int(torch.randint(0, 4, (1,), generator=g))
        cxy = torch.rand(k, 2, generator=g) * 50
        clutter = torch.cat([cxy, cxy + 3 + torch.rand(k, 2, generator=g) * 12], 1)
        db = torch.cat([jit, clutter])
        dl = torch.cat([jl, torch.randint(0, n_classes, (k,), generator=g)])
        ds = torch.rand(len(db), generator=g)
        dets.append(dict(boxes=db, scores=ds, labels=dl))
        tgts.append(dict(boxes=tb, labels=tl))
    return dets, tgts


def _pycocotools(dets, tgts, n_classes: int):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for i, (d, t) in enumerate(zip(dets, tgts)):
        images.append(dict(id=i, width=64, height=64))
        for b, l in zip(t["boxes"].tolist(), t["labels"].tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=l, bbox=[b[0], b[1], w, h], area=w * h, iscrowd=0))
        for b, l, s in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist()):
            results.append(dict(image_id=i, category_id=l, bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]], score=s))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(images=images, annotations=anns, categories=[dict(id=c) for c in range(n_classes)])
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.areaRng = [[0, 1e10]] * 4  # every box in every area range: compare the "all" row
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", range(6))
def test_matches_pycocotools_on_random_detections(seed):
    dets, tgts = _random_case(seed)
    ours = detection_ap(dets, tgts)
    stats = _pycocotools(dets, tgts, 3)
    assert ours["AP"] == pytest.approx(stats[0], abs=1e-6)
    assert ours["AP50"] == pytest.approx(stats[1], abs=1e-6)
    assert ours["AP75"] == pytest.approx(stats[2], abs=1e-6)
    assert 0.05 < ours["AP50"] < 0.99  # the cases are neither trivial nor hopeless


def test_closed_form_cases():
    box = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    one = dict(boxes=box, labels=torch.tensor([0]))
    # a perfect detection: AP 1 at every threshold
    assert detection_ap([dict(boxes=box, scores=torch.tensor([0.9]), labels=torch.tensor([0]))], [one])["AP"] == pytest.approx(1.0)
    # a false positive ranked above the true one: precision 1/2 at every recall level
    two = dict(boxes=torch.tensor([[40.0, 40, 50, 50], [10, 10, 20, 20]]), scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 0]))
    assert detection_ap([two], [one])["AP50"] == pytest.approx(0.5)
    # ranked below it: still 1 (the envelope reads the best precision at recall 1)
    two["scores"] = torch.tensor([0.1, 0.8])
    assert detection_ap([two], [one])["AP50"] == pytest.approx(1.0)
    # IoU 0.6: counts at 0.50..0.60 only, so AP = 3/10
    shifted = box + torch.tensor([[0.0, 2.5, 0.0, 2.5]])
    iou = float(box_iou(shifted, box))
    assert iou == pytest.approx(7.5 / 12.5)
    res = detection_ap([dict(boxes=shifted, scores=torch.tensor([1.0]), labels=torch.tensor([0]))], [one])
    assert (res["AP"], res["AP50"], res["AP75"]) == pytest.approx((3 / 10, 1.0, 0.0))
    # a class with ground truth but no detection counts 0; a class without ground truth is left out
    res = detection_ap([dict(boxes=box, scores=torch.tensor([1.0]), labels=torch.tensor([0]))],
                       [dict(boxes=torch.cat([box, box + 30]), labels=torch.tensor([0, 1]))])
    assert res["per_class_AP50"] == pytest.approx({0: 1.0, 1: 0.0}) and res["AP50"] == pytest.approx(0.5)


def test_box_iou_closed_forms():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [2, 2, 8, 8]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0, 0.36])


def test_bad_input_names_the_argument():
    box = torch.tensor([[0.0, 0, 10, 10]])
    with pytest.raises(ValueError, match="detections and targets"):
        detection_ap([], [dict(boxes=box, labels=torch.tensor([0]))])
    with pytest.raises(ValueError, match=r"detections\[0\]\['boxes'\] must have shape"):
        detection_ap([dict(boxes=torch.zeros(2, 3), scores=torch.zeros(2), labels=torch.zeros(2))], [dict(boxes=box, labels=torch.tensor([0]))])
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\] must be xyxy"):
        detection_ap([dict(boxes=box, scores=torch.ones(1), labels=torch.zeros(1))], [dict(boxes=torch.tensor([[5.0, 0, 1, 1]]), labels=torch.tensor([0]))])
    with pytest.raises(ValueError, match=r"detections\[0\]\['scores'\] must have one value per box"):
        detection_ap([dict(boxes=box, scores=torch.ones(2), labels=torch.zeros(1))], [dict(boxes=box, labels=torch.tensor([0]))])
    with pytest.raises(ValueError, match="iou_thresholds"):
        detection_ap([dict(boxes=box, scores=torch.ones(1), labels=torch.zeros(1))], [dict(boxes=box, labels=torch.tensor([0]))], iou_thresholds=[1.5])


@pytest.mark.parametrize("seed", range(4))
def test_precision_recall_curve_has_the_area_detection_ap_reads(seed):
    """COCO's AP50 of a class is its precision envelope read at 101 recall points: the curve of
    mmcourse.glip.evaluate.precision_recall must give detection_ap's per-class AP50 exactly."""
    from mmcourse.glip.evaluate import precision_recall

    dets, tgts = _random_case(seed)
    want = detection_ap(dets, tgts, iou_thresholds=[0.5])["per_class_AP50"]
    assert want
    for label, ap in want.items():
        c = precision_recall(dets, tgts, label)
        env = c["envelope"]
        idx = np.searchsorted(c["recall"], np.linspace(0, 1, 101), side="left")
        q = np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0) if len(env) else np.zeros(101)
        assert q.mean() == pytest.approx(ap, abs=1e-12), (label, q.mean(), ap)
        assert (np.diff(c["recall"]) >= 0).all() and (np.diff(c["scores"]) <= 0).all()

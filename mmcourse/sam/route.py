"""The syllabus's route on SAM: segmentation -> detection -> recognition, each stage measured.

Everything mode (:func:`everything`, SAM's automatic mask generator, small) gives masks; their boxes
are detections; the shipped CLIP names each mask's crop (recognition)."""

from __future__ import annotations

import torch

from ..boxes import box_iou, nms
from ..data.shapes import SHAPES
from .losses import mask_iou, upsample
from .prompts import mask_box, object_crops, world
from .sam import Sam
from .train import CLIP_CHECKPOINT


def stability_score(low_res: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability: IoU of the mask thresholded at +offset and at -offset (logits (..., h, w) -> (...))."""
    return mask_iou(low_res > offset, low_res > -offset)


@torch.no_grad()
def everything(sam: Sam, image: torch.Tensor, points_per_side: int = 8, pred_iou_thresh: float = 0.8,
               stability_thresh: float = 0.85, nms_thresh: float = 0.5, min_area: int = 12) -> dict:
    """SAM's automatic mask generator, small: a grid of point prompts (3 masks each), filtered by
    predicted IoU and stability, then box NMS. image (3, H, W) at the model's size.
    Returns {"masks" (n, H, W) bool, "boxes" (n, 4), "scores" (n,) predicted IoU, "points" (P, 2)}."""
    H, W = image.shape[1:]
    step = W / points_per_side
    grid = (torch.arange(points_per_side) + 0.5) * step
    pts = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)   # (P, 2) xy
    emb = sam.embed(image[None])
    low, iou = sam.decode(emb, pts[:, None], torch.ones(len(pts), 1, dtype=torch.long))  # (P, 3, h, w)
    low, iou = low.flatten(0, 1), iou.flatten()
    masks = upsample(low[:, None])[:, 0] > 0
    keep = (iou > pred_iou_thresh) & (stability_score(low) > stability_thresh) & (masks.flatten(1).sum(1) >= min_area)
    masks, iou = masks[keep], iou[keep]
    boxes = mask_box(masks)
    k = nms(boxes, iou, nms_thresh) if len(boxes) else torch.zeros(0, dtype=torch.long)
    # SAM's generator also drops masks that are mostly inside a better one; at this scale NMS suffices
    return {"masks": masks[k], "boxes": boxes[k], "scores": iou[k], "points": pts}


def proposal_kinds(boxes: torch.Tensor, masks: torch.Tensor, gt_boxes: torch.Tensor,
                   gt_masks: torch.Tensor) -> list[str]:
    """What each proposal is, in score order. "object": a hit by AP50's rule (box IoU >= 0.5 with a
    true box no better proposal took). The false positives: "group" (it holds at least half the visible
    pixels of two or more objects), "duplicate" (its mask matches, IoU >= 0.5, an object a better
    proposal took), "stretched" (its mask matches an object but its box does not: stray pixels
    stretch it) and "part" (anything else).
    boxes (n, 4), masks (n, H, W), gt_boxes (m, 4), gt_masks (m, H, W) -> n strings."""
    if len(boxes) != len(masks) or len(gt_boxes) != len(gt_masks):
        raise ValueError(f"boxes and masks must pair up: got {len(boxes)} boxes for {len(masks)} masks, "
                         f"{len(gt_boxes)} gt_boxes for {len(gt_masks)} gt_masks")
    n, m = len(boxes), len(gt_boxes)
    if m == 0:
        return ["part"] * n
    box = box_iou(boxes, gt_boxes) if n else torch.zeros(0, m)                     # (n, m)
    same = mask_iou(masks[:, None], gt_masks[None]) >= 0.5                          # (n, m) masks match
    holds = (masks[:, None] & gt_masks[None]).flatten(2).sum(2) >= 0.5 * gt_masks.flatten(1).sum(1)
    taken, kinds = torch.zeros(m, dtype=torch.bool), []
    for d in range(n):
        free = torch.where(taken, -1.0, box[d])
        if free.max() >= 0.5:
            taken[free.argmax()] = True
            kinds.append("object")
        elif int(holds[d].sum()) >= 2:
            kinds.append("group")
        elif (same[d] & taken).any():
            kinds.append("duplicate")
        elif same[d].any():
            kinds.append("stretched")
        else:
            kinds.append("part")
    return kinds


@torch.no_grad()
def route(sam: Sam, n: int = 100, seed: int = 21, heldout: bool = False, split: str = "test") -> dict:
    """Everything mode on n scenes -> detection AP50 (class-agnostic, and with CLIP's shape labels),
    and recognition: the shape CLIP reads from the crop (:func:`object_crops`) of each SAM mask
    matched to a true object (box IoU >= 0.5), beside CLIP on the true objects' own crops (the
    ceiling segmentation could give recognition) and chance (1 in 5 shapes)."""
    from ..clip import zero_shot_classifier, zero_shot_predict
    from ..clip.tasks import load_clip
    from ..clip.zero_shot import shapes_classnames, shapes_templates
    from ..evaluate import detection_ap

    w = world(train=not heldout)
    batch = w.sample(n, seed=seed, split=split)
    clip = load_clip(CLIP_CHECKPOINT)
    names = shapes_classnames()                                            # colour-major: c * 5 + s
    weights = zero_shot_classifier(clip, names, shapes_templates("ensemble"))

    def read(image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(masks) == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        pred = zero_shot_predict(clip, object_crops(image.expand(len(masks), -1, -1, -1), masks), weights)
        return pred % len(SHAPES), pred // len(SHAPES)                     # shape, colour

    dets_agn, dets_cls, tg_agn, tg_cls = [], [], [], []
    right_shape, right_both, right_true = [], [], []
    n_gt = 0
    for i in range(n):
        seg = everything(sam, batch.images[i])
        v = batch.valid[i]
        gt_boxes, gt_shape, gt_colour = batch.boxes[i][v], batch.shape[i][v], batch.colour[i][v]
        n_gt += len(gt_boxes)
        shape_pred, colour_pred = read(batch.images[i], seg["masks"])
        true_shape, _ = read(batch.images[i], batch.masks[i][v])
        right_true += (true_shape == gt_shape).tolist()
        dets_agn.append({"boxes": seg["boxes"], "scores": seg["scores"], "labels": torch.zeros(len(seg["boxes"]), dtype=torch.long)})
        dets_cls.append({"boxes": seg["boxes"], "scores": seg["scores"], "labels": shape_pred})
        tg_agn.append({"boxes": gt_boxes, "labels": torch.zeros(len(gt_boxes), dtype=torch.long)})
        tg_cls.append({"boxes": gt_boxes, "labels": gt_shape})
        if len(seg["boxes"]):
            best = box_iou(gt_boxes, seg["boxes"]).max(1)                  # (m,) best detection per object
            for j in (best.values >= 0.5).nonzero().flatten().tolist():
                d = int(best.indices[j])
                right_shape.append(bool(shape_pred[d] == gt_shape[j]))
                right_both.append(bool(shape_pred[d] == gt_shape[j] and colour_pred[d] == gt_colour[j]))
    agn = detection_ap(dets_agn, tg_agn, iou_thresholds=[0.5, 0.75])
    cls = detection_ap(dets_cls, tg_cls, iou_thresholds=[0.5, 0.75])
    share = lambda x: sum(x) / max(1, len(x))  # noqa: E731
    return {"scenes": n, "objects": n_gt, "AP50_class_agnostic": agn["AP50"], "AP75_class_agnostic": agn["AP75"],
            "AP50_shape_classes": cls["AP50"], "matched": len(right_shape), "recall_matched": len(right_shape) / max(1, n_gt),
            "recognition_shape_accuracy": share(right_shape),
            "recognition_colour_shape_accuracy": share(right_both),
            "recognition_true_crops_shape_accuracy": share(right_true),
            "recognition_chance": 1 / len(SHAPES),
            "detections_per_scene": sum(len(d["boxes"]) for d in dets_agn) / n}

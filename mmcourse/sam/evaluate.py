"""Measurements: test scenes with one target each, batched prediction, the click curve and the
checkpoint's protocol metrics (:func:`evaluate`, pooled over the protocol's seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.shapes import COLOUR_NAMES, SHAPES, SIZES, SceneBatch, ShapesWorld
from .losses import mask_iou, upsample
from .prompts import (HELDOUT_SHAPE, IMAGE_SIZE, TRAIN_SHAPES, farthest_click, level_masks, mask_box,
                      object_crops, phrase, random_points, sample_click, text_targets, twin_scenes, world)
from .sam import Sam


class TextTable:
    """Frozen CLIP text features of every phrase (shape, colour, with or without size): a lookup,
    so measuring never runs the text tower twice for one phrase (``shift``: see :meth:`Sam.encode_text`)."""

    def __init__(self, sam: Sam, shift: bool = True) -> None:
        keys, texts = [], []
        for s in range(len(SHAPES)):
            for c in range(len(COLOUR_NAMES)):
                for z in (None, *range(len(SIZES))):
                    keys.append((s, c, -1 if z is None else z))
                    texts.append(phrase(s, c, z))
        feats = sam.encode_text(texts, shift=shift)
        self.index = {k: i for i, k in enumerate(keys)}
        self.features = feats

    def __call__(self, shape: torch.Tensor, colour: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        idx = [self.index[(int(s), int(c), int(z))] for s, c, z in zip(shape, colour, size)]
        return self.features[idx]


@dataclass
class EvalSet:
    """Test scenes with one target object each: images (n, 3, H, W), levels (n, 3, H, W) (part,
    whole, group), the target's index k (n,), a fixed click inside its visible part (n, 2) and the batch."""

    images: torch.Tensor
    levels: torch.Tensor
    k: torch.Tensor
    clicks: torch.Tensor
    batch: SceneBatch


def ambiguous_targets(batch: SceneBatch, levels: torch.Tensor) -> torch.Tensor:
    """(N, K) bool: the objects whose three readings differ (part != whole: partly hidden; whole !=
    group: its shape overlaps another's), given :func:`level_masks`' (N, K, 3, H, W)."""
    return batch.valid & (levels[:, :, 0] != levels[:, :, 1]).flatten(2).any(-1) \
        & (levels[:, :, 1] != levels[:, :, 2]).flatten(2).any(-1)


def boundary_share(masks: torch.Tensor) -> torch.Tensor:
    """(..., H, W) bool -> (...): the share of each mask's pixels on its boundary (a 4-neighbour,
    or the image border, outside the mask); 0 for an empty mask."""
    if masks.dim() < 2:
        raise ValueError(f"masks must have shape (..., H, W), got {tuple(masks.shape)}")
    m = masks.float().flatten(0, -3)                                             # (M, H, W)
    p = F.pad(m, (1, 1, 1, 1))                                                   # the border: outside
    inside = torch.minimum(torch.minimum(p[:, 1:-1, :-2], p[:, 1:-1, 2:]), torch.minimum(p[:, :-2, 1:-1], p[:, 2:, 1:-1]))
    edge = (m - torch.minimum(m, inside)).flatten(1).sum(1)
    return (edge / m.flatten(1).sum(1).clamp(min=1)).reshape(masks.shape[:-2])


def eval_set(n: int = 500, seed: int = 1, target: str = "seen", split: str = "test") -> EvalSet:
    """``target``: "seen" (training shapes, scenes without the held-out shape), "heldout" (the
    target is a cross, among any shapes) or "ambiguous" (seen shapes, scenes of 4 objects; targets
    whose part, whole and group all differ: partly hidden and overlapping objects)."""
    if target not in ("seen", "heldout", "ambiguous"):
        raise ValueError(f"target must be 'seen', 'heldout' or 'ambiguous', got {target!r}")
    w = world(train=target != "heldout")
    if target == "ambiguous":  # crowded scenes (4 objects): 27% hold such a target, against 15% with 2-4
        w = ShapesWorld(image_size=IMAGE_SIZE, min_objects=4, max_objects=4, shapes=TRAIN_SHAPES)
    g = torch.Generator().manual_seed(seed)
    batch = w.sample({"seen": n, "heldout": 3 * n, "ambiguous": 8 * n}[target], seed=seed, split=split)
    levels = level_masks(batch, w)                                        # (N, K, 3, H, W)
    if target == "heldout":
        ok = batch.shape == SHAPES.index(HELDOUT_SHAPE)
    elif target == "ambiguous":
        ok = ambiguous_targets(batch, levels)
    else:
        ok = batch.valid
    # one target per scene: a random eligible object
    score = torch.rand(ok.shape, generator=g) + ok.float()
    k = score.argmax(1)
    keep = ok.any(1).nonzero().flatten()[:n]
    if len(keep) < n:
        raise RuntimeError(f"only {len(keep)} scenes with a {target} target among those drawn")
    k = k[keep]
    lv = levels[keep, k]
    sub = SceneBatch(**{f: getattr(batch, f)[keep] if isinstance(getattr(batch, f), torch.Tensor)
                        else [getattr(batch, f)[j] for j in keep.tolist()] for f in batch.__dataclass_fields__})
    return EvalSet(sub.images, lv, k, random_points(lv[:, 0], g), sub)


@torch.no_grad()
def predict_batch(sam: Sam, emb: torch.Tensor, points=None, labels=None, boxes=None, mask_input=None, text=None,
                  multimask: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched prediction in the 64 x 64 frame: (masks (B, K, H, W) bool, iou (B, K), low-res logits)."""
    low, iou = sam.decode(emb, points, labels, boxes, mask_input, text, multimask_output=multimask)
    return upsample(low) > 0, iou, low


def best_of(masks: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W), (B, K) -> (B, H, W): the mask with the highest predicted IoU."""
    return masks[torch.arange(len(masks)), iou.argmax(1)]


@torch.no_grad()
def click_curve(sam: Sam, es: EvalSet, target: torch.Tensor, clicks: int = 5, feed_mask: bool = True,
                seed: int = 0, per_scene: bool = False, rule: str = "random") -> list[float] | list[torch.Tensor]:
    """mIoU after 1..clicks clicks: the first at ``es.clicks``, each next from the error region of the
    current best mask (:func:`sample_click`), with (``feed_mask``) or without its low-res logits
    fed back as the mask prompt. Round 1 is multimask (best predicted IoU), later rounds single.
    ``per_scene``: each round's per-scene IoUs (n,) instead of their means (for standard errors).
    ``rule``: "random" (the training rule) or "farthest" (:func:`farthest_click`, the paper's evaluation)."""
    if rule not in ("random", "farthest"):
        raise ValueError(f"rule must be 'random' or 'farthest', got {rule!r}")
    g = torch.Generator().manual_seed(seed)
    emb = sam.embed(es.images)
    pts, lab = es.clicks[:, None], torch.ones(len(es.clicks), 1, dtype=torch.long)
    masks, iou, low = predict_batch(sam, emb, pts, lab)
    best = iou.argmax(1)
    pred, prev = best_of(masks, iou), low[torch.arange(len(low)), best][:, None]
    out = [mask_iou(pred, target)]
    for _ in range(clicks - 1):
        p, l = sample_click(pred, target, g) if rule == "random" else farthest_click(pred, target)
        pts, lab = torch.cat([pts, p[:, None]], 1), torch.cat([lab, l[:, None]], 1)
        masks, iou, low = predict_batch(sam, emb, pts, lab, mask_input=prev if feed_mask else None, multimask=False)
        pred, prev = masks[:, 0], low
        out.append(mask_iou(pred, target))
    return out if per_scene else [v.mean().item() for v in out]


@torch.no_grad()
def per_scene_ious(sam: Sam, es: EvalSet, text: bool = True) -> dict[str, torch.Tensor]:
    """Per-scene IoUs (n,) of one evaluation set: ``1click`` (best predicted of 3, against the visible
    part), ``oracle3`` (best of 3), ``box`` (the part's tight box, single output) and, with a CLIP
    attached, ``text`` ("the red circle": every object it names), ``text_size`` ("the small red
    circle"), ``crop`` (the training prompt itself: the CLIP image embedding of the target's crop,
    against every object that looks the same), ``every_object`` (the trivial baseline: one mask
    of all objects, against the same targets as ``text``) and ``colour_only`` (the mask of every
    object of the named colour: what following the colour word alone would score). With a stored
    modality gap (``cfg.text_shift``) the text keys use the moved embedding, and ``text_plain`` and
    ``text_size_plain`` the embedding as CLIP gives it."""
    n = len(es.images)
    emb = sam.embed(es.images)
    part = es.levels[:, 0]
    out = {}
    masks, iou, _ = predict_batch(sam, emb, es.clicks[:, None], torch.ones(n, 1, dtype=torch.long))
    out["1click"] = mask_iou(best_of(masks, iou), part)
    out["oracle3"] = mask_iou(masks, part[:, None]).amax(1)
    masks, _, _ = predict_batch(sam, emb, boxes=mask_box(part), multimask=False)
    out["box"] = mask_iou(masks[:, 0], part)
    if text and sam._text is not None:
        b, i = es.batch, torch.arange(n)
        variants = [(True, "")] + ([] if sam.text_shift is None else [(False, "_plain")])
        for shift, suffix in variants:
            table = TextTable(sam, shift=shift)
            for with_size, key in ((False, "text"), (True, "text_size")):
                ws = torch.full((n,), with_size)
                feats = table(b.shape[i, es.k], b.colour[i, es.k], torch.where(ws, b.size[i, es.k], -1))
                masks, _, _ = predict_batch(sam, emb, text=feats, multimask=False)
                out[key + suffix] = mask_iou(masks[:, 0], text_targets(b, es.k, ws))
        crop = sam.encode_image_prompt(object_crops(es.images, b.masks[i, es.k]))
        masks, _, _ = predict_batch(sam, emb, text=crop, multimask=False)
        out["crop"] = mask_iou(masks[:, 0], text_targets(b, es.k, torch.ones(n, dtype=torch.bool)))
        named = text_targets(b, es.k, torch.zeros(n, dtype=torch.bool))
        out["every_object"] = mask_iou(b.masks.any(1), named)
        same_colour = (b.colour == b.colour[i, es.k][:, None]) & b.valid
        out["colour_only"] = mask_iou((b.masks & same_colour[..., None, None]).any(1), named)
    return out


@torch.no_grad()
def evaluate(sam: Sam, part: str = "test", n: int = 200) -> dict:
    """The checkpoint's protocol metrics: ``n`` scenes at each of the protocol's seeds for ``part``
    (``"val"``, ``"test"`` or ``"check"``), pooled; each an :class:`mmcourse.protocol.Estimate`.

    ``seen_*`` on scenes of the training shapes, ``heldout_*`` on scenes whose target is a cross
    (a shape SAM never saw; CLIP knows its name). Keys: ``{seen,heldout}_{1click,oracle3,box}_miou``
    and, with CLIP, ``{seen,heldout}_text_miou``, ``seen_text_size_miou``, ``{seen,heldout}_crop_miou``
    and the baselines ``{seen,heldout}_every_object_miou`` and ``{seen,heldout}_colour_only_miou``.
    With a stored modality gap (``cfg.text_shift``) the text keys use the moved text embedding, and
    ``{seen,heldout}_{text,text_size}_plain_miou`` the embedding as CLIP gives it, with the move's gain
    paired over the same scenes, ``{seen,heldout}_{text,text_size}_shift_gain`` (``heldout_text_size_miou``
    then too)."""
    from ..protocol import mean, paired_difference, seeds

    out = {}
    for name in ("seen", "heldout"):
        pooled: dict[str, list[torch.Tensor]] = {}
        for s in seeds("sam", part):
            for key, v in per_scene_ious(sam, eval_set(n, s, name)).items():
                pooled.setdefault(key, []).append(v)
        for key, v in pooled.items():
            if name == "heldout" and key == "text_size" and "text_plain" not in pooled:
                continue
            out[f"{name}_{key}_miou"] = mean(torch.cat(v))
        for key in ("text", "text_size"):
            if f"{key}_plain" in pooled:
                out[f"{name}_{key}_shift_gain"] = paired_difference(torch.cat(pooled[key]), torch.cat(pooled[f"{key}_plain"]))
    return out


@torch.no_grad()
def twin_choice(sam: Sam, n: int, seed: int, same: str) -> dict[str, torch.Tensor]:
    """The text prompt on :func:`twin_scenes` (single output): per scene, ``named`` the IoU with the
    named object, ``twin`` the IoU with its twin, and ``picks`` whether the mask covers the named
    object better than the twin (chance: one half)."""
    images, masks, phrases = twin_scenes(n, seed, same)
    pred, _, _ = predict_batch(sam, sam.embed(images), text=sam.encode_text(phrases), multimask=False)
    named, twin = mask_iou(pred[:, 0], masks[:, 0]), mask_iou(pred[:, 0], masks[:, 1])
    return {"named": named, "twin": twin, "picks": named > twin}

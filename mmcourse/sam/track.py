"""Tracking with an image model: each frame prompted with what the previous frames found.

The SAM paper does not track (video came with SAM 2 and its memory of past frames). An image-only
tracker can still carry an object forward by prompting the next frame; what matters is that the
prompt is one the model was trained on. Three rules, compared on the same clips
(:func:`clip_set`: a small object passes behind or in front of a large one):

- ``"click+mask"``: a positive click at the previous mask's deepest pixel plus the previous low-res
  logits as the mask prompt (a click with a mask is SAM's *refinement* round, which assumes the
  mask is nearly right; once the object moves, the mask spreads onto the large neighbour it
  touches, the next click lands on the neighbour, and the mask becomes the pair, then the
  neighbour alone);
- ``"box"``: frame 0's box size, centred where the object is expected (the last centre plus its
  smoothed velocity) and enlarged by ``margin`` pixels (``first_margin`` in frame 1, before any
  velocity is known), single output: a noisy box, SAM's trained
  box prompt; pixels outside the box are dropped. While the mask's area strays from frame 0's (the
  object partly hidden, or merged with a neighbour) the box coasts on at the last velocity. The
  training recipe includes this prompt on overlapping still scenes (``PromptTask.track_loss``: the
  whole object's box moved by up to 3 px, with or without the previous mask as the dense prompt,
  ``dense`` here); validation clips chose it without the mask (bench ``tracking``);
- ``"oracle click"`` and ``"oracle box"``: a click at the interior of the true object, or its true
  box, in every frame (no propagation at all): ceilings that separate segmentation errors from
  propagation errors.

Every rule starts from the same frame 0: the object's true box as the prompt (the user's selection).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.shapes import COLOUR_NAMES, SceneBatch
from .evaluate import predict_batch
from .losses import mask_iou
from .prompts import IMAGE_SIZE, TRAIN_SHAPES, mask_box, world
from .sam import Sam

RULES = ("click+mask", "box", "oracle click", "oracle box")
MIN_PIXELS = 4        # a predicted mask smaller than this counts as lost (the box coasts)


def moving_clip(frames: int = 12, seed: int = 0, behind: bool = True,
                miss: tuple[float, float] = (5.0, 9.0)) -> tuple[SceneBatch, int]:
    """A clip of 64 x 64 frames: a small object (the target, returned index) crosses a large one
    along a straight line that misses the large one's centre by ``miss`` pixels (drawn in that
    range; the large object's radius is about 10, the small one's 5, so 5-9 px is a partial pass),
    passing ``behind`` it (painted first) or in front of it;
    a third object drifts elsewhere. Direction, offsets, shapes and colours are drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    w = world(train=True)
    shape = torch.randint(0, len(TRAIN_SHAPES), (3,), generator=g)   # TRAIN_SHAPES are SHAPES[:4]
    colour = torch.randperm(len(COLOUR_NAMES), generator=g)[:3]
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=g))  # noqa: E731
    t = torch.linspace(0, 1, frames)[:, None]
    centre = torch.tensor([u(26, 38), u(26, 38)])                          # the large object
    angle = u(-math.pi, math.pi)
    d = torch.tensor([math.cos(angle), math.sin(angle)])
    side = torch.tensor([-d[1], d[0]]) * u(*miss) * (1 if bool(torch.rand((), generator=g) < 0.5) else -1)
    # path length up to 44 px, both ends at least 9 px inside the frame (objects cut by the border are
    # rare in training scenes)
    room = min(float(((54 - (centre + side)[i]) / d[i]) if d[i] > 0 else ((centre + side)[i] - 10) / -d[i])
               for i in range(2) if abs(float(d[i])) > 1e-6)
    room = min(room, min(float(((centre + side)[i] - 10) / d[i]) if d[i] > 0 else (54 - (centre + side)[i]) / -d[i]
                         for i in range(2) if abs(float(d[i])) > 1e-6))
    half = min(u(16, 22), room)
    target_path = centre + side + (2 * t - 1) * half * d                   # (frames, 2)
    blocker = centre.expand(frames, 2)
    corners = torch.tensor([[9.0, 9.0], [9.0, 55.0], [55.0, 9.0], [55.0, 55.0]])
    far = torch.cdist(corners, torch.cat([target_path, centre[None]])).amin(1).argmax()   # away from the path
    drift = corners[far] + t * torch.tensor([u(-3, 3), u(-3, 3)])
    if behind:   # slot order is paint order: later slots cover earlier ones
        shape_, colour_, size, centres, k = shape, colour, torch.tensor([0, 1, 0]), [target_path, blocker, drift], 0
    else:
        shape_, colour_, size = shape[[1, 0, 2]], colour[[1, 0, 2]], torch.tensor([1, 0, 0])
        centres, k = [blocker, target_path, drift], 1
    return w.draw_objects(shape_, colour_, size, torch.stack(centres, 1), seed=seed), k


def clip_set(seeds: tuple[int, ...], per_seed: int = 4, frames: int = 12,
             miss: tuple[float, float] = (5.0, 9.0)) -> list[tuple[SceneBatch, int, bool]]:
    """``per_seed`` clips at each seed, alternately behind and in front: [(clip, target index, behind)]."""
    out = []
    for s in seeds:
        for j in range(per_seed):
            behind = j % 2 == 0
            clip, k = moving_clip(frames, seed=s * 100 + j, behind=behind, miss=miss)
            out.append((clip, k, behind))
    return out


def _centre(box: torch.Tensor) -> torch.Tensor:
    return (box[..., :2] + box[..., 2:]) / 2


@torch.no_grad()
def track(sam: Sam, clip: SceneBatch, k: int = 0, rule: str = "box", margin: float = 1.0,
          tolerance: float = 0.5, dense: bool = False, first_margin: float | None = 3.0) -> dict:
    """Track object k through ``clip`` with one of :data:`RULES` (see the module docstring). Frame 0
    is the object's true box as the prompt (the same for every rule). The box rule's ``margin``
    (pixels added on each side) and ``tolerance`` (how far the mask's area may stray from frame 0's
    before the box coasts) default to the values chosen on validation clips (bench/sam.py);
    ``dense`` adds the previous low-res logits as the mask prompt; ``first_margin`` (None: ``margin``)
    is frame 1's margin, when no velocity is known yet and the box must cover any direction the
    object may have moved in. Returns the IoU per frame with the
    object's visible mask (an empty prediction of a fully hidden object counts 1), their mean
    ``miou`` and the predicted masks (T, H, W)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    T = len(clip.images)
    emb = sam.embed(clip.images)
    target = clip.masks[:, k]
    one = torch.ones(1, 1, dtype=torch.long)
    box = mask_box(target[:1])[0]
    m, _, prev = predict_batch(sam, emb[:1], boxes=box[None], multimask=False)
    pred = m[:, 0] & inside_box(box, *m.shape[-2:])[None]
    preds = [pred[0]]
    box0 = mask_box(pred)[0]
    centre, size, area0 = _centre(box0), box0[2:] - box0[:2], int(pred.sum())
    velocity = torch.zeros(2)
    for t in range(1, T):
        if rule == "oracle click":
            m, i, _ = predict_batch(sam, emb[t:t + 1], interior_point(target[t:t + 1])[:, None], one)
            pred = m[:, int(i.argmax())]
        elif rule == "oracle box":
            box = mask_box(target[t:t + 1])[0]
            m, _, _ = predict_batch(sam, emb[t:t + 1], boxes=box[None], multimask=False)
            pred = m[:, 0] & inside_box(box, *m.shape[-2:])[None]
        elif rule == "click+mask":
            m, _, prev = predict_batch(sam, emb[t:t + 1], interior_point(pred)[:, None], one, mask_input=prev,
                                       multimask=False)
            pred = m[:, 0]
        else:
            mg = first_margin if t == 1 and first_margin is not None else margin
            guess = torch.cat([centre + velocity - size / 2 - mg, centre + velocity + size / 2 + mg])
            guess = guess.clamp(0, IMAGE_SIZE)
            m, _, low = predict_batch(sam, emb[t:t + 1], boxes=guess[None], mask_input=prev if dense else None,
                                      multimask=False)
            prev = low
            pred = m[:, 0] & inside_box(guess, *m.shape[-2:])[None]   # stray pixels elsewhere dropped
            area = int(pred.sum())
            seen = mask_box(pred)[0]
            if area0 * (1 - tolerance) <= area <= area0 * (1 + tolerance):   # the object, in full view
                new = _centre(seen)
                velocity = (velocity + (new - centre)) / 2 if t > 1 else new - centre
                centre = new
            else:                        # partly hidden, or merged with a neighbour: coast on
                centre = centre + velocity
        preds.append(pred[0])
    preds = torch.stack(preds)
    ious = mask_iou(preds, target)
    return {"iou_per_frame": ious.tolist(), "miou": ious.mean().item(), "masks": preds}


def inside_box(box: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(4,) xyxy -> (H, W) bool: the pixels whose centres lie inside the box."""
    ys, xs = torch.arange(H)[:, None] + 0.5, torch.arange(W)[None] + 0.5
    return (xs >= box[0]) & (xs <= box[2]) & (ys >= box[1]) & (ys <= box[3])


def interior_point(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool -> (B, 2) xy of the pixel deepest inside each mask (repeated erosion);
    the image centre for an empty mask."""
    B, H, W = mask.shape
    m = mask[:, None].float()
    depth = torch.zeros_like(m)
    cur = m
    for _ in range(max(H, W) // 2):
        depth = depth + cur
        cur = -F.max_pool2d(-cur, 3, 1, 1)
        if not bool(cur.any()):
            break
    idx = depth.flatten(1).argmax(1)
    pts = torch.stack([idx % W, idx // W], 1).float()
    empty = ~mask.flatten(1).any(1)
    pts[empty] = torch.tensor([W / 2, H / 2])
    return pts

"""ShapesWorld as SAM's data: the scenes, the three readings of a click, and every prompt.

Scenes are 64 x 64 with 2-4 objects. One shape type (``HELDOUT_SHAPE``, the cross) never
appears in training scenes, for the zero-shot measurement. Each target object has three
readings a single click inside it can mean (the course's own, see notebook 06 section 4):

0. ``part``: its visible pixels (``batch.masks``),
1. ``whole``: the whole shape, hidden pixels included (``ShapesWorld.full_masks``, amodal),
2. ``group``: the visible pixels of the objects whose shapes overlap it, transitively.

For an isolated, unoccluded object the three coincide. SAM's own three outputs are nested
*visible* masks (whole, part, subpart); ShapesWorld's objects have no parts, so the course reads
a click as one of these instead.

Prompts: a uniformly random click inside the visible part (:func:`random_points`), the corrective
click from the error region (:func:`click_from_error`), SAM's noisy box (:func:`noisy_boxes`), and
for the text slot the CLIP crop of the target (:func:`object_crops`) at training time and a phrase
(:func:`phrase`) at inference. :func:`overlap_scenes` draws the scenes a tracked object meets (a
small object partly behind or in front of a large one), on which the tracker's prompt is trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.shapes import COLOUR_NAMES, SHAPES, SIZES, SceneBatch, ShapesWorld

IMAGE_SIZE = 64
HELDOUT_SHAPE = "cross"
TRAIN_SHAPES = tuple(s for s in SHAPES if s != HELDOUT_SHAPE)
LEVELS = ("part", "whole", "group")
CROP_SIZE = 32          # the course CLIP's input size


def world(train: bool = True) -> ShapesWorld:
    """The scenes: 64 x 64, 2-4 objects; training scenes never contain the held-out shape."""
    return ShapesWorld(image_size=IMAGE_SIZE, min_objects=2, max_objects=4,
                       shapes=TRAIN_SHAPES if train else None)



def level_masks(batch: SceneBatch, w: ShapesWorld) -> torch.Tensor:
    """(B, K, 3, H, W) bool: each object's part / whole / group mask (see the module docstring)."""
    vis, full = batch.masks, w.full_masks(batch)
    K = vis.shape[1]
    f = full.flatten(2).float()
    touch = (f @ f.transpose(1, 2)) > 0                                 # (B, K, K) shapes overlap
    reach = touch | torch.eye(K, dtype=torch.bool)
    for _ in range(K):                                                   # transitive closure
        reach = (reach.float() @ reach.float() > 0)
    group = torch.einsum("bkj,bjhw->bkhw", reach.float(), vis.float()) > 0
    return torch.stack([vis, full, group], dim=2)


def mask_box(masks: torch.Tensor) -> torch.Tensor:
    """(..., H, W) bool -> (..., 4) xyxy boxes (x1, y1 exclusive), zeros for empty masks."""
    H, W = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)
    ys, xs = torch.arange(H), torch.arange(W)
    big = torch.tensor(10**6)
    y0 = torch.where(rows, ys, big).amin(-1)
    y1 = torch.where(rows, ys, -1).amax(-1) + 1
    x0 = torch.where(cols, xs, big).amin(-1)
    x1 = torch.where(cols, xs, -1).amax(-1) + 1
    box = torch.stack([x0, y0, x1, y1], -1).float()
    return box * masks.any(-1).any(-1)[..., None]


def random_points(masks: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B, H, W) bool -> (B, 2) xy pixel of a uniformly random True pixel (the centre pixel if empty)."""
    B, H, W = masks.shape
    score = torch.rand(B, H * W, generator=g) + masks.flatten(1).float()   # True pixels score in [1, 2)
    idx = score.argmax(1)
    return torch.stack([idx % W, idx // W], -1).float()


def click_from_error(pred: torch.Tensor, target: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The corrective click, deterministic given the tie-break scores ``u``.

    pred, target: (B, H, W) bool; u: (B, H, W) floats in [0, 1). The error region is where pred
    and target disagree; the click is its pixel with the largest u. A missed pixel (in the target,
    not predicted) becomes a positive click (label 1), a wrongly covered one a negative click
    (label 0). A scene without error gets the target pixel with the largest u, positive.
    Returns points (B, 2) xy (float) and labels (B,) int64.
    """
    error = pred ^ target
    region = torch.where(error.flatten(1).any(1)[:, None, None], error, target)   # (B, H, W)
    B, H, W = region.shape
    idx = (u + region.float()).flatten(1).argmax(1)                              # region pixels score >= 1
    x, y = idx % W, idx // W
    labels = target[torch.arange(B), y, x].long()
    return torch.stack([x, y], 1).float(), labels


def sample_click(pred: torch.Tensor, target: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly random click from the error region (:func:`click_from_error` with random u)."""
    return click_from_error(pred, target, torch.rand(pred.shape, generator=g))


def farthest_click(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation click of SAM's paper (after RITM): the error pixel farthest from the error
    region's boundary (the image border counts as boundary), via :func:`click_from_error` with u the
    region's Euclidean distance transform scaled into [0, 1)."""
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (B, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    error = pred ^ target
    region = torch.where(error.flatten(1).any(1)[:, None, None], error, target)
    # pad with one non-region pixel so the image border counts as boundary
    dist = torch.stack([torch.from_numpy(distance_transform_edt(np.pad(r.numpy(), 1))[1:-1, 1:-1]).float()
                        for r in region])
    u = dist / (dist.flatten(1).amax(1)[:, None, None] + 1)
    return click_from_error(pred, target, u)


def noisy_boxes(boxes: torch.Tensor, g: torch.Generator, noise: float = 0.1, max_px: float = 3.0) -> torch.Tensor:
    """SAM's box noise: each coordinate moves by N(0, noise * side), at most max_px pixels."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    jitter = (torch.randn(boxes.shape, generator=g) * noise * wh).clamp(-max_px, max_px)
    out = boxes + jitter
    x0, x1 = torch.minimum(out[:, 0], out[:, 2]), torch.maximum(out[:, 0], out[:, 2])
    y0, y1 = torch.minimum(out[:, 1], out[:, 3]), torch.maximum(out[:, 1], out[:, 3])
    return torch.stack([x0, y0, x1, y1], 1).clamp(0, IMAGE_SIZE)


def phrase(shape: int, colour: int, size: int | None = None) -> str:
    """The text prompt for an object: "the red triangle", or with its size "the small red triangle"."""
    words = ["the"] + ([SIZES[size]] if size is not None else []) + [COLOUR_NAMES[colour], SHAPES[shape]]
    return " ".join(words)


def text_targets(batch: SceneBatch, k: torch.Tensor, with_size: torch.Tensor) -> torch.Tensor:
    """(B, H, W): the union of the visible masks of every object the phrase of object k names."""
    i = torch.arange(len(k))
    same = (batch.shape == batch.shape[i, k][:, None]) & (batch.colour == batch.colour[i, k][:, None])
    same &= (batch.size == batch.size[i, k][:, None]) | ~with_size[:, None]
    return (batch.masks & same[..., None, None]).any(1)


def twin_objects(batch: SceneBatch) -> torch.Tensor:
    """(B, K) bool: the objects that share their colour with another object of another shape in
    their scene, so that only the shape word of their phrase singles them out (for the others the
    colour word alone names every object the phrase names)."""
    c, s, v = batch.colour, batch.shape, batch.valid
    pair = (c[:, :, None] == c[:, None, :]) & (s[:, :, None] != s[:, None, :]) & v[:, :, None] & v[:, None, :]
    return pair.any(2)



def object_crops(images: torch.Tensor, masks: torch.Tensor, scale: torch.Tensor | None = None,
                 side: torch.Tensor | None = None, masked: bool = True) -> torch.Tensor:
    """The crop CLIP reads for each target mask: a square window centred on the mask's box, of the
    scene's side (or ``side`` (B,) pixels; times ``scale`` (B,), the random enlargement), the pixels
    outside the mask painted with the image's background colour (the median of its border; not if
    ``masked`` is False), resized to CLIP's 32 x 32.

    The window is the scene's size because the course CLIP learned from whole scenes of one object:
    this crop shows the object at the scale and alone, as CLIP saw objects. (SAM enlarges the mask's
    box 1-2x for a CLIP that saw objects at every scale, and blanks the outside half the time.)
    images (B, 3, H, W), masks (B, H, W) bool -> (B, 3, 32, 32)."""
    B, _, H, W = images.shape
    box = mask_box(masks)
    centre = (box[:, :2] + box[:, 2:]) / 2                                     # (B, 2) xy pixels
    side = torch.full((B,), float(max(H, W))) if side is None else side.float()
    side = side * (1.0 if scale is None else scale)
    if masked:
        border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
        bg = border.median(dim=2).values                                       # (B, 3)
        images = torch.where(masks[:, None], images, bg[:, :, None, None])
    theta = torch.zeros(B, 2, 3)                                               # output [-1, 1] -> input [-1, 1]
    theta[:, 0, 0], theta[:, 1, 1] = side / W, side / H
    theta[:, 0, 2], theta[:, 1, 2] = centre[:, 0] / W * 2 - 1, centre[:, 1] / H * 2 - 1
    grid = F.affine_grid(theta, (B, 3, CROP_SIZE, CROP_SIZE), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def overlap_scenes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Still scenes of the kind a tracked object meets (:func:`mmcourse.sam.track.moving_clip`'s
    frames): a small object (the target) at a random offset of 4-15 px from a large one's centre,
    painted behind or in front of it (half each), and a third object elsewhere. Grid scenes rarely
    overlap this much (objects sit in a 3 x 3 grid of cells), so the tracker's partly hidden targets
    are trained on these. At least a fifth of the target is in view. Returns images (n, 3, 64, 64), the target's visible mask and its whole
    (amodal) mask, (n, 64, 64) bool each."""
    import math

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    w = world(train=True)
    images, vis, full = [], [], []
    j = 0
    while len(images) < n:
        shape = torch.randint(0, len(TRAIN_SHAPES), (3,), generator=g)
        colour = torch.randperm(len(COLOUR_NAMES), generator=g)[:3]
        r = torch.rand(6, generator=g)
        big = 22 + 20 * r[:2]
        angle, dist = 2 * math.pi * float(r[2]), 4 + 11 * float(r[3])
        small = big + dist * torch.tensor([math.cos(angle), math.sin(angle)])
        corners = torch.tensor([[9.0, 9.0], [9.0, 55.0], [55.0, 9.0], [55.0, 55.0]])
        third = corners[torch.cdist(corners, torch.stack([big, small])).amin(1).argmax()]
        behind = bool(r[4] < 0.5)
        order = [0, 1, 2] if behind else [1, 0, 2]               # slot 0 is painted first
        cen = torch.stack([small, big, third])[order]
        size = torch.tensor([0, 1, 0])[order]
        b = w.draw_objects(shape[order], colour[order], size, cen[None], seed=seed * 1000 + j)
        k, j = order.index(0), j + 1
        whole = w.full_masks(b)[0, k]
        if b.masks[0, k].sum() < 0.2 * whole.sum():              # at least a fifth of it in view
            continue
        images.append(b.images[0])
        vis.append(b.masks[0, k])
        full.append(whole)
    return torch.stack(images), torch.stack(vis), torch.stack(full)


def twin_scenes(n: int, seed: int, same: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` scenes that only a phrase's other word can tell apart: three objects of the training
    shapes, each on its own cell of a 3 x 3 grid, where object 0 (the one the phrase names) has a
    twin, object 1, of the same colour and another shape (``same="colour"``: only the shape word
    tells them apart) or of the same shape and another colour (``same="shape"``: only the colour
    word does); object 2 differs from object 0 in both. Returns images (n, 3, 64, 64), visible masks
    (n, 3, 64, 64) and each scene's phrase ("the red circle", naming object 0)."""
    if same not in ("colour", "shape"):
        raise ValueError(f"same must be 'colour' or 'shape', got {same!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    w, train = world(train=True), torch.tensor([SHAPES.index(s) for s in TRAIN_SHAPES])
    images, masks, phrases = [], [], []
    for i in range(n):
        a, b = train[torch.randperm(len(train), generator=g)[:2]]
        c, d = torch.randperm(len(COLOUR_NAMES), generator=g)[:2]
        shape = torch.stack([a, b, b] if same == "colour" else [a, a, b])
        colour = torch.stack([c, c, d] if same == "colour" else [c, d, d])
        cells = torch.randperm(9, generator=g)[:3]
        centres = torch.stack([cells % 3, cells // 3], 1).float() * 20 + 12 + torch.rand(3, 2, generator=g) * 4 - 2
        scene = w.draw_objects(shape, colour, torch.randint(0, len(SIZES), (3,), generator=g), centres[None],
                               seed=seed * 100_000 + i)
        images.append(scene.images)
        masks.append(scene.masks)
        phrases.append(phrase(int(a), int(c)))
    return torch.cat(images), torch.cat(masks), phrases

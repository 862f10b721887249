"""SAM on ShapesWorld: prompts from scenes, the interactive training recipe, the measurements.

Scenes are 64 x 64 with 2-4 objects. One shape type (``HELDOUT_SHAPE``, the cross) never
appears in training scenes, for the zero-shot measurement. Each target object has three
*ambiguity levels*, the three answers a single click inside it can mean:

0. ``part``: its visible pixels (``batch.masks``),
1. ``whole``: the whole shape, hidden pixels included (``ShapesWorld.full_masks``, amodal),
2. ``group``: the visible pixels of the objects whose shapes overlap it, transitively.

For an isolated, unoccluded object the three coincide.

Training (SAM's recipe at small scale, :func:`sam_loss`): per scene one target; the first prompt
is a random positive point inside it (target level drawn at random), a noisy box around the
level's mask, or a phrase as text ("the red triangle": every matching object); then a second
round adds a click from the error region (:func:`sample_click`) with the previous best low-res
logits fed back as the mask prompt. Loss: 20 focal + 1 dice on the best of the 3 masks (on the
single mask for boxes, text and later rounds), plus MSE between predicted and actual IoU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.shapes import COLOUR_NAMES, SHAPES, SIZES, SceneBatch, ShapesWorld
from .image_encoder import ImageEncoderConfig
from .sam import Sam, SamConfig

IMAGE_SIZE = 64
HELDOUT_SHAPE = "cross"
TRAIN_SHAPES = tuple(s for s in SHAPES if s != HELDOUT_SHAPE)
LEVELS = ("part", "whole", "group")
FOCAL_WEIGHT = 20.0   # SAM: focal : dice = 20 : 1
CHECKPOINT = "sam_shapes"
CLIP_CHECKPOINT = "clip_shapes_named"


def world(train: bool = True) -> ShapesWorld:
    """The scenes: 64 x 64, 2-4 objects; training scenes never contain the held-out shape."""
    return ShapesWorld(image_size=IMAGE_SIZE, min_objects=2, max_objects=4,
                       shapes=TRAIN_SHAPES if train else None)


def shapes_sam_config(patch_size: int = 4, **overrides) -> SamConfig:
    """The course's ShapesWorld SAM: patch 4 (a 16 x 16 embedding, so the decoder's low-res masks,
    at 4x the grid, are 64 x 64: the image's own resolution), width 64, ~0.46 M parameters. Patch 8
    (8 x 8 embedding, 32 x 32 masks) trains 2.5x faster per step but stopped at 1-click 0.901 / box
    0.906 after 1,500 steps and 0.913 / 0.919 after 3,000 (bench/results/sam_longer_run.json);
    patch 4 reaches 0.93 / 0.94 in 800 steps. Global attention in every block: windows with
    relative positions (SAM's choice for its 64 x 64 grid) made a training step 2.3x slower here."""
    if patch_size not in (4, 8):
        raise ValueError(f"patch_size must be 4 or 8 (a 16 x 16 or 8 x 8 grid on 64 pixels), got {patch_size!r}")
    enc = ImageEncoderConfig(img_size=IMAGE_SIZE, patch_size=patch_size, embed_dim=64, depth=4, num_heads=4, out_chans=64)
    cfg = dict(encoder=enc, mask_in_chans=16, decoder_depth=2, decoder_heads=4, decoder_mlp_dim=256,
               iou_head_hidden_dim=64, text_dim=64)
    cfg.update(overrides)
    return SamConfig(**cfg)


# ---------------------------------------------------------------------------------------------
# Targets and prompts
# ---------------------------------------------------------------------------------------------


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


class TextTable:
    """Frozen CLIP text features of every phrase (shape, colour, with or without size): a lookup,
    so training never runs the text tower."""

    def __init__(self, sam: Sam) -> None:
        keys, texts = [], []
        for s in range(len(SHAPES)):
            for c in range(len(COLOUR_NAMES)):
                for z in (None, *range(len(SIZES))):
                    keys.append((s, c, -1 if z is None else z))
                    texts.append(phrase(s, c, z))
        feats = sam.encode_text(texts)
        self.index = {k: i for i, k in enumerate(keys)}
        self.features = feats

    def __call__(self, shape: torch.Tensor, colour: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        idx = [self.index[(int(s), int(c), int(z))] for s, c, z in zip(shape, colour, size)]
        return self.features[idx]


def attach_clip(sam: Sam) -> Sam:
    """Give ``sam`` the shipped CLIP's frozen text tower (``clip_shapes_named``)."""
    from ..clip import WordTokenizer
    from ..clip.tasks import load_clip

    sam.set_text_encoder(load_clip(CLIP_CHECKPOINT), WordTokenizer())
    return sam


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def upsample(low_res: torch.Tensor) -> torch.Tensor:
    """(B, K, h4, w4) low-res logits -> (B, K, 64, 64)."""
    return F.interpolate(low_res, (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-mask sigmoid focal loss (RetinaNet's, as SAM uses), mean over pixels: (B, K, H, W) -> (B, K)."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-mask soft dice loss: (B, K, H, W) -> (B, K)."""
    p = logits.sigmoid().flatten(2)
    t = target.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of bool masks over the last two dims (empty vs empty counts 1)."""
    inter = (pred & target).flatten(-2).sum(-1).float()
    union = (pred | target).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def low_res_target(target: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) bool -> (B, size, size) float: the share of each low-res cell the target covers."""
    return F.adaptive_avg_pool2d(target[:, None].float(), size)[:, 0]


def mask_loss(low_res: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """low_res (B, K, h4, w4), iou_pred (B, K), target (B, H, W) bool -> (loss (B,), index of the best mask (B,)).

    The logits are upsampled to the image and compared pixel by pixel (a first version compared
    at the low resolution against each cell's coverage: 4x cheaper, but its masks reached only
    0.89 mIoU in 2,000 steps). The mask loss backpropagates through the best of the K masks
    only; the IoU head learns every mask's actual IoU."""
    logits = upsample(low_res)
    t = target[:, None].float().expand_as(logits)
    per_mask = FOCAL_WEIGHT * focal_loss(logits, t) + dice_loss(logits, t)     # (B, K)
    best = per_mask.argmin(1)
    with torch.no_grad():
        actual = mask_iou(logits > 0, target[:, None])
    loss = per_mask.gather(1, best[:, None])[:, 0] + F.mse_loss(iou_pred, actual, reduction="none").mean(1)
    return loss, best


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    steps: int = 800              # patch 4 (the earlier patch-8 model: 1,500)
    batch_size: int = 32
    lr: float = 2e-3
    point_share: float = 0.625    # first prompt: point / box / text shares (20 / 8 / 4 of 32)
    box_share: float = 0.25
    refine_share: float = 0.5     # scenes of the point group that get a second, corrective round
    multimask: bool = True        # False: the single-output ablation (one mask for every prompt)
    seed: int = 0


class PromptTask:
    """The loss function for :func:`mmcourse.train.fit`: draws scenes, prompts and targets itself."""

    def __init__(self, sam: Sam, recipe: Recipe) -> None:
        self.recipe = recipe
        self.world = world(train=True)
        self.text = TextTable(sam) if sam.cfg.text_dim is not None and sam._text is not None else None
        self.calls = 0

    def __call__(self, sam: Sam, g: torch.Generator) -> torch.Tensor:
        r = self.recipe
        B = r.batch_size
        batch = self.world.sample(B, seed=r.seed * 1_000_003 + self.calls, split="all")
        self.calls += 1
        levels = level_masks(batch, self.world)                          # (B, K, 3, H, W)
        n_obj = batch.valid.sum(1)
        k = (torch.rand(B, generator=g) * n_obj).long()                  # the target object
        i = torch.arange(B)
        obj_levels = levels[i, k]                                        # (B, 3, H, W)
        level = torch.randint(0, 3, (B,), generator=g)
        target = obj_levels[i, level]                                    # (B, H, W)
        emb = sam.embed(batch.images)                                    # (B, C, h, w)

        n_pt = int(B * r.point_share)
        n_box = int(B * r.box_share) if self.text is not None else B - n_pt
        losses = []
        # points: a positive click on the visible part; the target is the drawn level
        P = slice(0, n_pt)
        pts = random_points(obj_levels[P, 0], g)[:, None]                # (n, 1, 2)
        lab = torch.ones(n_pt, 1, dtype=torch.long)
        low, iou = sam.decode(emb[P], pts, lab, multimask_output=r.multimask)
        loss, best = mask_loss(low, iou, target[P])
        losses.append(loss)
        # a corrective round for part of them: a click from the error region + the previous logits
        n_ref = int(n_pt * r.refine_share)
        if n_ref:
            R = slice(0, n_ref)
            prev = low[R].detach().gather(1, iou[R].detach().argmax(1)[:, None, None, None].expand(-1, 1, *low.shape[-2:]))
            pred = upsample(prev)[:, 0] > 0
            p2, l2 = sample_click(pred, target[R], g)
            low2, iou2 = sam.decode(emb[R], torch.cat([pts[R], p2[:, None]], 1), torch.cat([lab[R], l2[:, None]], 1),
                                    mask_input=prev, multimask_output=False)
            losses.append(mask_loss(low2, iou2, target[R])[0])
        # boxes: a noisy box around the drawn level's mask
        Bx = slice(n_pt, n_pt + n_box)
        boxes = noisy_boxes(mask_box(target[Bx]), g)
        low, iou = sam.decode(emb[Bx], boxes=boxes, multimask_output=False)
        losses.append(mask_loss(low, iou, target[Bx])[0])
        # text: "the red triangle" (sometimes with its size): every object it names
        if self.text is not None and n_pt + n_box < B:
            T = slice(n_pt + n_box, B)
            kt = k[T]
            with_size = torch.rand(len(kt), generator=g) < 0.5
            it = i[T]
            feats = self.text(batch.shape[it, kt], batch.colour[it, kt],
                              torch.where(with_size, batch.size[it, kt], torch.full_like(kt, -1)))
            low, iou = sam.decode(emb[T], text_features=feats, multimask_output=False)
            sub = SceneBatch(**{f: getattr(batch, f)[T] if isinstance(getattr(batch, f), torch.Tensor)
                                else getattr(batch, f)[T] for f in batch.__dataclass_fields__})
            losses.append(mask_loss(low, iou, text_targets(sub, kt, with_size))[0])
        return torch.cat(losses).mean()


def train_sam(recipe: Recipe | None = None, cfg: SamConfig | None = None, progress: bool = True,
              desc: str = "SAM on ShapesWorld"):
    """Train a ShapesWorld SAM (text path included when ``cfg.text_dim``): (model, History, seconds)."""
    from ..train import fit

    recipe = recipe or Recipe()
    torch.manual_seed(recipe.seed)
    sam = Sam(cfg or shapes_sam_config())
    if sam.cfg.text_dim is not None:
        attach_clip(sam)
    task = PromptTask(sam, recipe)
    t0 = time.perf_counter()
    hist = fit(sam, task, steps=recipe.steps, lr=recipe.lr, seed=recipe.seed, warmup=100, cosine=True,
               grad_clip=1.0, progress=progress, desc=desc)
    return sam.eval(), hist, time.perf_counter() - t0


def load_sam(name: str = CHECKPOINT, text: bool = True) -> Sam:
    """A shipped checkpoint (hash-checked), in eval mode, with the CLIP text tower attached."""
    from ..weights import load

    state, entry = load(name)
    sam = Sam(SamConfig.from_dict(entry.config))
    sam.load_state_dict(state)
    if text and sam.cfg.text_dim is not None:
        attach_clip(sam)
    return sam.eval()


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalSet:
    """Test scenes with one target object each: images (n, 3, H, W), levels (n, 3, H, W) (part,
    whole, group), the target's index k (n,), a fixed click inside its visible part (n, 2) and the batch."""

    images: torch.Tensor
    levels: torch.Tensor
    k: torch.Tensor
    clicks: torch.Tensor
    batch: SceneBatch


def eval_set(n: int = 500, seed: int = 1, target: str = "seen") -> EvalSet:
    """``target``: "seen" (training shapes, scenes without the held-out shape), "heldout" (the
    target is a cross, among any shapes) or "ambiguous" (seen shapes, scenes of 4 objects; targets
    whose part, whole and group all differ: partly hidden and overlapping objects)."""
    if target not in ("seen", "heldout", "ambiguous"):
        raise ValueError(f"target must be 'seen', 'heldout' or 'ambiguous', got {target!r}")
    w = world(train=target != "heldout")
    if target == "ambiguous":  # crowded scenes (4 objects): 27% hold such a target, against 15% with 2-4
        w = ShapesWorld(image_size=IMAGE_SIZE, min_objects=4, max_objects=4, shapes=TRAIN_SHAPES)
    g = torch.Generator().manual_seed(seed)
    batch = w.sample({"seen": n, "heldout": 3 * n, "ambiguous": 5 * n}[target], seed=seed, split="all")
    levels = level_masks(batch, w)                                        # (N, K, 3, H, W)
    if target == "heldout":
        ok = batch.shape == SHAPES.index(HELDOUT_SHAPE)
    elif target == "ambiguous":
        ok = batch.valid & (levels[:, :, 0] != levels[:, :, 1]).flatten(2).any(-1) \
            & (levels[:, :, 1] != levels[:, :, 2]).flatten(2).any(-1)
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
                seed: int = 0) -> list[float]:
    """mIoU after 1..clicks clicks: the first at ``es.clicks``, each next from the error region of the
    current best mask (:func:`sample_click`), with (``feed_mask``) or without its low-res logits
    fed back as the mask prompt. Round 1 is multimask (best predicted IoU), later rounds single."""
    g = torch.Generator().manual_seed(seed)
    emb = sam.embed(es.images)
    pts, lab = es.clicks[:, None], torch.ones(len(es.clicks), 1, dtype=torch.long)
    masks, iou, low = predict_batch(sam, emb, pts, lab)
    best = iou.argmax(1)
    pred, prev = best_of(masks, iou), low[torch.arange(len(low)), best][:, None]
    out = [mask_iou(pred, target).mean().item()]
    for _ in range(clicks - 1):
        p, l = sample_click(pred, target, g)
        pts, lab = torch.cat([pts, p[:, None]], 1), torch.cat([lab, l[:, None]], 1)
        masks, iou, low = predict_batch(sam, emb, pts, lab, mask_input=prev if feed_mask else None, multimask=False)
        pred, prev = masks[:, 0], low
        out.append(mask_iou(pred, target).mean().item())
    return out


@torch.no_grad()
def evaluate(sam: Sam, n: int = 500, seed: int = 1) -> dict[str, float]:
    """The checkpoint's targets: 1-click mIoU (best predicted of 3, against the visible part), box
    mIoU (the visible part's tight box, single output), text mIoU, held-out shape 1-click mIoU."""
    out = {}
    for name in ("seen", "heldout"):
        es = eval_set(n, seed, name)
        emb = sam.embed(es.images)
        part = es.levels[:, 0]
        masks, iou, _ = predict_batch(sam, emb, es.clicks[:, None], torch.ones(n, 1, dtype=torch.long))
        out[f"{name}_1click_miou"] = mask_iou(best_of(masks, iou), part).mean().item()
        out[f"{name}_oracle3_miou"] = mask_iou(masks, part[:, None]).amax(1).mean().item()
        masks, _, _ = predict_batch(sam, emb, boxes=mask_box(part), multimask=False)
        out[f"{name}_box_miou"] = mask_iou(masks[:, 0], part).mean().item()
        if name == "seen" and sam._text is not None:
            b, i = es.batch, torch.arange(n)
            table = TextTable(sam)
            for with_size in (False, True):
                ws = torch.full((n,), with_size)
                feats = table(b.shape[i, es.k], b.colour[i, es.k], torch.where(ws, b.size[i, es.k], -1))
                masks, _, _ = predict_batch(sam, emb, text=feats, multimask=False)
                key = "seen_text_size_miou" if with_size else "seen_text_miou"
                out[key] = mask_iou(masks[:, 0], text_targets(b, es.k, ws)).mean().item()
    return out


# ---------------------------------------------------------------------------------------------
# The route: segmentation -> detection -> recognition -> tracking, each on SAM
# ---------------------------------------------------------------------------------------------


def stability_score(low_res: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability: IoU of the mask thresholded at +offset and at -offset (logits (..., h, w) -> (...))."""
    return mask_iou(low_res > offset, low_res > -offset)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, 4), (m, 4) xyxy -> (n, m) IoU."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter).clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices kept, best score first."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    keep, removed = [], torch.zeros(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


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


def crops(image: torch.Tensor, masks: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Each segment alone, as the shipped CLIP saw its training scenes: the segment's pixels on the
    image's background colour (the median of its border), the whole frame resized to size x size
    (objects keep their relative size: CLIP learned on 32 x 32 scenes of one object).
    image (3, H, W), masks (n, H, W) bool -> (n, 3, size, size)."""
    if len(masks) == 0:
        return torch.zeros(0, 3, size, size)
    border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)   # (3, 4S)
    bg = border.median(dim=1).values[:, None, None]
    alone = torch.where(masks[:, None], image[None], bg[None])                                # (n, 3, H, W)
    return F.interpolate(alone, (size, size), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def route(sam: Sam, n: int = 100, seed: int = 21, heldout: bool = False) -> dict:
    """Everything mode on n test scenes -> detection AP (class-agnostic, and with CLIP's shape labels),
    and recognition accuracy of the crops matched to a ground-truth object (IoU >= 0.5)."""
    from ..clip import zero_shot_classifier, zero_shot_predict
    from ..clip.tasks import load_clip
    from ..clip.zero_shot import shapes_classnames, shapes_templates
    from ..evaluate import detection_ap

    w = world(train=not heldout)
    batch = w.sample(n, seed=seed, split="all")
    clip = load_clip(CLIP_CHECKPOINT)
    names = shapes_classnames()                                            # colour-major: c * 5 + s
    weights = zero_shot_classifier(clip, names, shapes_templates("ensemble"))
    dets_agn, dets_cls, tg_agn, tg_cls = [], [], [], []
    correct_shape = correct_both = matched = n_gt = 0
    for i in range(n):
        seg = everything(sam, batch.images[i])
        v = batch.valid[i]
        gt_boxes, gt_shape, gt_colour = batch.boxes[i][v], batch.shape[i][v], batch.colour[i][v]
        n_gt += len(gt_boxes)
        if len(seg["boxes"]):
            pred = zero_shot_predict(clip, crops(batch.images[i], seg["masks"]), weights)
            shape_pred, colour_pred = pred % len(SHAPES), pred // len(SHAPES)
        else:
            shape_pred = colour_pred = torch.zeros(0, dtype=torch.long)
        dets_agn.append({"boxes": seg["boxes"], "scores": seg["scores"], "labels": torch.zeros(len(seg["boxes"]), dtype=torch.long)})
        dets_cls.append({"boxes": seg["boxes"], "scores": seg["scores"], "labels": shape_pred})
        tg_agn.append({"boxes": gt_boxes, "labels": torch.zeros(len(gt_boxes), dtype=torch.long)})
        tg_cls.append({"boxes": gt_boxes, "labels": gt_shape})
        if len(seg["boxes"]):
            iou = box_iou(gt_boxes, seg["boxes"])                          # (m, n)
            best = iou.max(1)
            for j in (best.values >= 0.5).nonzero().flatten().tolist():
                d = int(best.indices[j])
                matched += 1
                correct_shape += int(shape_pred[d] == gt_shape[j])
                correct_both += int(shape_pred[d] == gt_shape[j] and colour_pred[d] == gt_colour[j])
    agn = detection_ap(dets_agn, tg_agn, iou_thresholds=[0.5, 0.75])
    cls = detection_ap(dets_cls, tg_cls, iou_thresholds=[0.5, 0.75])
    return {"scenes": n, "objects": n_gt, "AP50_class_agnostic": agn["AP50"], "AP75_class_agnostic": agn["AP75"],
            "AP50_shape_classes": cls["AP50"], "recall_matched": matched / max(1, n_gt),
            "recognition_shape_accuracy": correct_shape / max(1, matched),
            "recognition_colour_shape_accuracy": correct_both / max(1, matched),
            "detections_per_scene": sum(len(d["boxes"]) for d in dets_agn) / n}


def moving_clip(frames: int = 12, seed: int = 0) -> tuple[SceneBatch, int]:
    """A clip: three objects, one of which (the target, returned index) moves across and passes
    behind another; the last one drifts. 64 x 64 frames."""
    g = torch.Generator().manual_seed(seed)
    w = world(train=True)
    shape = torch.randint(0, len(TRAIN_SHAPES), (3,), generator=g)   # TRAIN_SHAPES are SHAPES[:4]
    colour = torch.randperm(len(COLOUR_NAMES), generator=g)[:3]
    size = torch.tensor([0, 1, 0])
    t = torch.linspace(0, 1, frames)[:, None]
    target_path = torch.cat([10 + 44 * t, 24 + 8 * t], 1)                  # left to right
    blocker = torch.tensor([34.0, 38.0]).expand(frames, 2)                 # the target passes partly behind it
    drift = torch.cat([50 - 10 * t, 52 - 4 * t], 1)
    # paint order: target first, so the blocker covers it
    centres = torch.stack([target_path, blocker, drift], 1)
    return w.draw_objects(shape, colour, size, centres, seed=seed), 0


@torch.no_grad()
def track(sam: Sam, clip: SceneBatch, k: int = 0, feed_mask: bool = True) -> dict:
    """Track object k: a click on it in frame 0, then in every next frame the previous frame's mask
    as the prompt: its low-res logits as the mask prompt plus a positive click at the pixel of the
    previous mask deepest inside it (its distance-transform peak). mIoU over the frames."""
    g = torch.Generator().manual_seed(0)
    T = len(clip.images)
    emb = sam.embed(clip.images)
    target = clip.masks[:, k]
    p = random_points(target[:1], g)
    masks, iou, low = predict_batch(sam, emb[:1], p[:, None], torch.ones(1, 1, dtype=torch.long))
    b = int(iou.argmax())
    pred, prev = masks[:, b], low[:, b:b + 1]
    preds, ious = [pred[0]], [mask_iou(pred, target[:1]).item()]
    for t in range(1, T):
        p = interior_point(pred)
        m, _, l = predict_batch(sam, emb[t:t + 1], p[:, None], torch.ones(1, 1, dtype=torch.long),
                                mask_input=prev if feed_mask else None, multimask=False)
        pred, prev = m[:, 0], l
        preds.append(pred[0])
        ious.append(mask_iou(pred, target[t:t + 1]).item())
    return {"iou_per_frame": ious, "miou": sum(ious) / T, "masks": torch.stack(preds)}


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

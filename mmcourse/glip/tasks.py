"""GLIP on ShapesWorld: the training data, the training run and the measurements.

The notebook, ``make weights`` (:mod:`.checkpoints`) and ``bench/glip.py`` call these functions,
so the numbers they report come from one code path.

Training scenes: 64 x 64, 1-4 objects, "train" split (the six held-out colour-shape pairs never
appear, neither in the images nor in any prompt). Each scene gets one of three prompt kinds, as
GLIP mixes detection and grounding data:

- "names": detection with the shape names in a random order ("square. cross. circle. diamond.
  triangle."), sometimes a random subset of them (objects of unnamed shapes are background);
- "attributes": detection with colour-shape phrases ("red circle. blue square."): some of the
  scene's own pairs plus absent ones, so "red circle" must not fire on a blue circle;
- "captions": grounding, the scene's caption with each object's phrase span.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.shapes import COLOUR_NAMES, HELDOUT_COMBOS, SHAPES, SceneBatch, ShapesWorld
from ..evaluate import box_iou, detection_ap
from ..train import History, fit
from .losses import grounding_loss
from .model import GLIP, GLIPConfig
from .predict import predict_batch
from .prompts import SEPARATOR, detection_prompt
from .targets import assign_locations, centerness_target, encode_ltrb, tokenize_with_spans, token_targets

KINDS = ("names", "attributes", "captions")
NAMES_PROMPT = detection_prompt(list(SHAPES))[0]  # "circle. square. triangle. diamond. cross."
TRAIN_COMBOS = [(c, s) for c in COLOUR_NAMES for s in SHAPES if (c, s) not in HELDOUT_COMBOS]


def glip_world(max_objects: int = 4) -> ShapesWorld:
    return ShapesWorld(image_size=64, min_objects=1, max_objects=max_objects)


@dataclass
class GroundingBatch:
    """B scenes with a prompt each; box k of scene i belongs to the tokens box_tokens[i, k]."""

    images: torch.Tensor      # (B, 3, S, S)
    tokens: torch.Tensor      # (B, M) ids
    box_tokens: torch.Tensor  # (B, K, M) bool, the tokens of each box's phrase (empty: not prompted)
    boxes: torch.Tensor       # (B, K, 4)
    valid: torch.Tensor       # (B, K) bool: a real object named in the prompt
    prompts: list[str]
    kinds: list[str]


def _scene_prompt(scenes: SceneBatch, i: int, kind: str, rng: np.random.Generator
                  ) -> tuple[str, list[tuple[int, int] | None]]:
    """The prompt for scene i and each object's phrase span in it (None = not named)."""
    n = int(scenes.valid[i].sum())
    shapes = [SHAPES[s] for s in scenes.shape[i, :n].tolist()]
    colours = [COLOUR_NAMES[c] for c in scenes.colour[i, :n].tolist()]
    if kind == "captions":
        return scenes.captions[i], list(scenes.spans[i])
    if kind == "names":
        names = list(rng.permutation(SHAPES))
        if rng.random() < 0.3:  # a random subset: unnamed shapes are background
            names = names[: rng.integers(1, len(SHAPES))]
        objects = shapes
    elif kind == "attributes":
        objects = [f"{c} {s}" for c, s in zip(colours, shapes)]
        present = sorted(set(objects))
        names = [p for p in present if rng.random() < 0.7]
        absent = [f"{c} {s}" for c, s in TRAIN_COMBOS if f"{c} {s}" not in present]
        names += [absent[j] for j in rng.choice(len(absent), size=rng.integers(1, 4), replace=False)]
        names = list(rng.permutation(names))
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    text, spans = detection_prompt(names)
    where = dict(zip(names, spans))
    return text, [where.get(o) for o in objects]


def make_batch(scenes: SceneBatch, kinds: list[str], rng: np.random.Generator, tokenizer) -> GroundingBatch:
    """Prompts and token targets for a batch of scenes, ``kinds[i]`` one of :data:`KINDS`."""
    prompts, spans = [], []
    for i, kind in enumerate(kinds):
        text, sp = _scene_prompt(scenes, i, kind, rng)
        prompts.append(text)
        spans.append(sp)
    tokens, maps = tokenize_with_spans(tokenizer, prompts, spans)
    K = scenes.valid.shape[1]
    box_tokens = torch.zeros(len(prompts), K, tokens.shape[1], dtype=torch.bool)
    box_tokens[:, : maps.shape[1]] = maps
    valid = scenes.valid & box_tokens.any(-1)
    return GroundingBatch(scenes.images, tokens, box_tokens, scenes.boxes, valid, prompts, list(kinds))


SOFT_TOKEN_WEIGHT = 1.0  # MDETR's soft-token loss beside GLIP's focal loss (see the module note)


def batch_loss(model: GLIP, batch: GroundingBatch, soft_token_weight: float = SOFT_TOKEN_WEIGHT) -> dict[str, torch.Tensor]:
    """The GLIP losses of one batch (see :func:`.losses.grounding_loss`)."""
    out = model(batch.images, batch.tokens)
    assigned = assign_locations(model.points, batch.boxes, batch.valid, model.stride,
                                image_size=model.cfg.img_size)   # (B, N)
    positive = assigned >= 0
    target_boxes = batch.boxes.gather(1, assigned.clamp(min=0)[..., None].expand(-1, -1, 4))  # (B, N, 4)
    ctr = centerness_target(encode_ltrb(model.points, target_boxes)) * positive
    return grounding_loss(out["logits"], token_targets(assigned, batch.box_tokens), model.token_mask(batch.tokens),
                          out["boxes"], target_boxes, out["centerness"], ctr, positive, soft_token_weight)


def train_glip(cfg: GLIPConfig | None = None, steps: int = 2000, batch_size: int = 32, lr: float = 2e-3,
               seed: int = 0, kinds: tuple[str, ...] = KINDS, progress: bool = True, desc: str = "GLIP",
               text_init: str | None = "random", freeze_text: bool = True,
               soft_token_weight: float = SOFT_TOKEN_WEIGHT) -> tuple[GLIP, History]:
    """Train a GLIP on fresh ShapesWorld scenes (a new batch every step).

    The text transformer (mmcourse.clip's) starts with ``text_init``: "random" (word embeddings at
    std 1), a CLIP checkpoint name, or None (CLIP's own small initialisation); ``freeze_text``
    keeps it fixed."""
    torch.manual_seed(seed)
    model = GLIP(cfg or GLIPConfig())
    if text_init == "random":
        # Word embeddings at nn.Embedding's default scale (std 1, CLIP's is 0.02): the tower's
        # output is then dominated by the word itself, and different words start nearly
        # orthogonal (cosine ~0.2) instead of 0.8 as in the CLIP checkpoint's token features.
        nn.init.normal_(model.text.token_embedding.weight, std=1.0)
    elif text_init:
        model.load_clip_text(text_init)
    if freeze_text:
        # Trained along with focal loss only, the tower collapsed every token onto one "object"
        # direction within 150 steps (cosine 0.99 between "circle" and "square").
        model.text.requires_grad_(False)
    world = glip_world()
    rng = np.random.default_rng(seed)

    def loss_fn(m, g):
        scenes = world.sample(batch_size, seed=int(rng.integers(2**31)), split="train")
        batch = make_batch(scenes, list(rng.choice(kinds, size=batch_size)), rng, m.tokenizer)
        return batch_loss(m, batch, soft_token_weight)["total"]

    hist = fit(model, loss_fn, steps, lr=lr, seed=seed, weight_decay=1e-4, warmup=100, cosine=True,
               grad_clip=1.0, progress=progress, desc=desc)
    return model, hist


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def _targets(scenes: SceneBatch, labels: torch.Tensor, keep: torch.Tensor) -> list[dict]:
    return [{"boxes": scenes.boxes[i][keep[i]], "labels": labels[i][keep[i]]} for i in range(len(scenes))]


def _predict_all(model: GLIP, scenes: SceneBatch, prompts: list[str], chunk: int = 100) -> list[dict]:
    out = []
    for s in range(0, len(scenes), chunk):
        out += predict_batch(model, scenes.images[s : s + chunk], prompts[s : s + chunk])
    return out


def evaluate_names(model: GLIP, scenes: SceneBatch) -> dict:
    """COCO AP / AP50 with the shape-name prompt "circle. square. triangle. diamond. cross."."""
    dets = _predict_all(model, scenes, [NAMES_PROMPT] * len(scenes))
    return detection_ap(dets, _targets(scenes, scenes.shape, scenes.valid))


def attribute_scenes(n: int, seed: int = 0, split: str = "test", shape: str | None = None) -> SceneBatch:
    """Scenes of 3-4 objects of ONE shape in different colours (all circles, say): the prompt's colour
    word is the only way to tell the target from the distractors."""
    rng = np.random.default_rng(seed)
    world = glip_world()
    heldout = set(HELDOUT_COMBOS)
    scenes = []
    for i in range(n):
        s = shape or SHAPES[rng.integers(len(SHAPES))]
        allowed = [c for c in COLOUR_NAMES if ((c, s) in heldout) == (split == "heldout")]
        if split == "heldout":  # the held-out pair plus distractors of seen colours
            pool = [c for c in COLOUR_NAMES if (c, s) not in heldout]
            cols = [allowed[rng.integers(len(allowed))]] + list(rng.choice(pool, size=rng.integers(2, 4), replace=False))
        else:
            cols = list(rng.choice(allowed, size=rng.integers(3, 5), replace=False))
        pos = rng.choice(9, size=len(cols), replace=False)
        from ..data.shapes import POSITIONS, SIZES
        objs = [dict(shape=s, colour=c, size=SIZES[rng.integers(2)], position=POSITIONS[p]) for c, p in zip(cols, pos)]
        scenes.append(world.render(objs, seed=int(rng.integers(2**31))))
    K = 4
    pad = lambda t, v: torch.cat([t, torch.full((K - len(t), *t.shape[1:]), v, dtype=t.dtype)]) if len(t) < K else t[:K]
    return SceneBatch(
        images=torch.stack([s.image for s in scenes]), masks=torch.stack([pad(s.masks, False) for s in scenes]),
        boxes=torch.stack([pad(s.boxes, 0.0) for s in scenes]), valid=torch.stack([pad(s.valid, False) for s in scenes]),
        shape=torch.stack([pad(s.shape, -1) for s in scenes]), colour=torch.stack([pad(s.colour, -1) for s in scenes]),
        size=torch.stack([pad(s.size, -1) for s in scenes]), position=torch.stack([pad(s.position, -1) for s in scenes]),
        rgb=torch.stack([pad(s.rgb, 0.0) for s in scenes]), centres=torch.stack([pad(s.centres, 0.0) for s in scenes]),
        captions=[s.caption for s in scenes], phrases=[s.phrases for s in scenes], spans=[s.spans for s in scenes])


def evaluate_attributes(model: GLIP, scenes: SceneBatch, template: str = "{colour} {shape}.") -> dict:
    """AP50 / AP of one-phrase prompts naming the colour of object 0 ("red circle."): only the objects
    of that colour and shape are targets. The label is the (colour, shape) pair, so AP averages
    over the pairs."""
    prompts, labels, keep = [], torch.full_like(scenes.shape, -1), torch.zeros_like(scenes.valid)
    for i in range(len(scenes)):
        c, s = int(scenes.colour[i, 0]), int(scenes.shape[i, 0])
        prompts.append(template.format(colour=COLOUR_NAMES[c], shape=SHAPES[s]))
        keep[i] = scenes.valid[i] & (scenes.colour[i] == c) & (scenes.shape[i] == s)
        labels[i] = c * len(SHAPES) + s
    dets = _predict_all(model, scenes, prompts)
    for i, d in enumerate(dets):  # one phrase per prompt: label it with its pair
        d["labels"] = torch.full_like(d["labels"], int(labels[i, 0]))
    return detection_ap(dets, _targets(scenes, labels, keep))


def caption_grounding_accuracy(model: GLIP, scenes: SceneBatch) -> float:
    """Share of caption phrases whose top-scoring box has IoU >= 0.5 with its object."""
    dets = _predict_all(model, scenes, scenes.captions)
    hits = total = 0
    for i, d in enumerate(dets):
        n = int(scenes.valid[i].sum())
        for k in range(n):
            total += 1
            # phrases are found in caption order, which is the object order
            mine = d["labels"] == k
            if mine.any():
                top = d["scores"].masked_fill(~mine, -1).argmax()
                hits += float(box_iou(d["boxes"][top][None], scenes.boxes[i, k][None])[0, 0]) >= 0.5
    return hits / max(total, 1)


def positives_per_object(stride: int, n: int = 500, seed: int = 0) -> dict:
    """How many grid locations centre sampling assigns to each object at a given stride: the
    measurement behind the stride-4 feature map (objects with 0 positives cannot be detected)."""
    from .targets import grid_points

    scenes = glip_world().sample(n, seed=seed, split="test")
    assigned = assign_locations(grid_points(64, stride), scenes.boxes, scenes.valid, stride)
    counts = torch.stack([(assigned == k).sum(1) for k in range(scenes.valid.shape[1])], dim=1)[scenes.valid]
    return {"stride": stride, "mean": float(counts.float().mean()), "min": int(counts.min()),
            "share_without": float((counts == 0).float().mean()), "share_le2": float((counts <= 2).float().mean())}


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints
# ---------------------------------------------------------------------------------------------

TRAINING = {"steps": 800, "batch_size": 24, "lr": 3e-3, "seed": 0, "text_init": "random", "freeze_text": True,
            "soft_token_weight": 1.0}
CHECKPOINTS = {"glip_shapes": True, "glip_shapes_nofusion": False}  # name -> fusion on?
EVAL_SCENES = {"names": 500, "attributes": 300, "captions": 300}
TARGETS = {"names_AP50": 0.90, "caption_accuracy": 0.90}


def measure(model: GLIP, n: dict | None = None) -> dict[str, float]:
    """The issue's measurements on fixed test scenes: shape-name AP / AP50, attribute-prompt AP50
    on seen and held-out colour-shape pairs, caption grounding accuracy."""
    n = {**EVAL_SCENES, **(n or {})}
    names = evaluate_names(model, glip_world().sample(n["names"], seed=1, split="test"))
    seen = evaluate_attributes(model, attribute_scenes(n["attributes"], seed=2, split="test"))
    held = evaluate_attributes(model, attribute_scenes(n["attributes"], seed=3, split="heldout"))
    acc = caption_grounding_accuracy(model, glip_world().sample(n["captions"], seed=4, split="test"))
    return {"names_AP": names["AP"], "names_AP50": names["AP50"], "names_AP75": names["AP75"],
            "attributes_seen_AP50": seen["AP50"], "attributes_seen_AP": seen["AP"],
            "attributes_heldout_AP50": held["AP50"], "attributes_heldout_AP": held["AP"],
            "caption_accuracy": acc}


def build_checkpoint(name: str) -> None:
    """Train checkpoint ``name`` (see :data:`CHECKPOINTS`) on one thread, measure it, save it."""
    import os

    from ..weights import save

    if name not in CHECKPOINTS:
        raise ValueError(f"name must be one of {sorted(CHECKPOINTS)}, got {name!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        cfg = GLIPConfig(fusion=CHECKPOINTS[name])
        model, hist = train_glip(cfg, **TRAINING, desc=name)
        train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - t0
        metrics = measure(model)
    finally:
        torch.set_num_threads(threads)
    metrics.update(final_loss=hist.final(100), train_cpu_s=train_cpu, train_wall_s=train_wall,
                   load_1min=os.getloadavg()[0])
    if CHECKPOINTS[name] and metrics["names_AP50"] < TARGETS["names_AP50"]:
        raise RuntimeError(f"{name} reached names AP50 {metrics['names_AP50']:.3f} (< {TARGETS['names_AP50']})")
    save(name, model.state_dict(), {**cfg.to_dict(), "training": TRAINING},
         f"python -m mmcourse.weights.build {name}", metrics)


def load_glip(name: str = "glip_shapes") -> GLIP:
    """A shipped checkpoint (hash-checked by :func:`mmcourse.weights.load`), in eval mode."""
    from ..weights import load

    state, entry = load(name)
    cfg = GLIPConfig(**{k: v for k, v in entry.config.items() if k != "training"})
    model = GLIP(cfg)
    model.load_state_dict(state)
    return model.eval()

"""GLIP's training and test data on ShapesWorld: scenes, prompts and their phrase spans.

Training scenes: 64 x 64, 1-4 objects, "train" split (the six held-out colour-shape pairs never
appear, neither in the images nor in any prompt). Each scene gets one of three prompt kinds, as
GLIP mixes detection and grounding data:

- "names": detection with the shape names in a random order ("square. cross. circle. diamond.
  triangle."), sometimes a random subset of them (objects of unnamed shapes are background);
- "attributes": detection with colour-shape phrases ("red circle. blue square."): some of the
  scene's own pairs plus absent ones, so "red circle" must not fire on a blue circle;
- "captions": grounding, the scene's caption with each object's phrase span.

:func:`attribute_scenes` draws the test scenes of the attribute prompts: several objects of one
shape in different colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.shapes import COLOUR_NAMES, HELDOUT_COMBOS, POSITIONS, SHAPES, SIZES, SceneBatch, ShapesWorld
from .prompts import detection_prompt
from .targets import tokenize_with_spans
from .text import prompt_units

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
    units: torch.Tensor       # (B, M) the phrase (or loose word) of each token, -1 = special (.text)
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
    units = prompt_units(tokenizer, prompts, tokens.shape[1])
    return GroundingBatch(scenes.images, tokens, box_tokens, scenes.boxes, valid, units, prompts, list(kinds))


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

"""CLIP on ShapesWorld: the image-caption pairs, the training run and the measurements.

The notebook, ``make weights`` (:mod:`mmcourse.weights.build`) and ``make bench``
(``bench/clip.py``) all call these functions, so the numbers they report come from one code path.

Training data (``data=``), single-object 32x32 scenes from the "train" split (the six held-out
colour-shape pairs never appear):

- "named": the six exact palette colours, ShapesWorld's captions ("a small red circle at the top
  left"); ``drop`` leaves the size and/or the position out of some of them.
- "broad": half of each batch as "named"; the other half painted in random colours (ShapesWorld's
  ``colour_mode="random"``), half of those captioned with the nearest colour name and half with
  no colour word ("a small circle at the top left"). Shapes now come in every colour.
- "classes": named colours, captions reduced to the class, "a red circle": only 24 distinct
  captions, the few-class data set on which a batch is full of duplicate captions.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.shapes import CAPTION_TEMPLATES, COLOUR_NAMES, POSITION_PHRASES, POSITIONS, SHAPES, SIZES, ShapesWorld
from ..train import History, fit
from .loss import caption_ids, clip_loss, duplicate_mask, false_negative_stats
from .model import CLIP, CLIPConfig
from .tokenizer import WordTokenizer
from .zero_shot import (TEMPLATE_SETS, encode_images, recall_at_k, recall_hits, shapes_class_index,
                        shapes_classnames, shapes_templates, zero_shot_classifier, zero_shot_predict)

DATA_KINDS = ("named", "broad", "classes")
RANDOM_FRACTION = 0.5  # share of each "broad" batch painted in random colours
# Clipping the gradient norm this low matters. The first steps' large gradients would otherwise
# fill Adam's second-moment estimate (beta2 = 0.999 remembers ~1000 steps), so when the features
# briefly collapse (loss = ln B, tiny gradients) the steps stay tiny for hundreds of steps.
GRAD_CLIP = 0.1


@dataclass
class Pairs:
    """N single-object scenes with their captions and labels."""

    images: torch.Tensor   # (N, 3, S, S) in [0, 1]
    captions: list[str]
    shape: torch.Tensor    # (N,) index into SHAPES
    colour: torch.Tensor   # (N,) index into COLOUR_NAMES (nearest named colour in random mode)
    size: torch.Tensor     # (N,)
    position: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def attributes(self) -> torch.Tensor:
        """(N, 4) shape, colour, size, position: two rows are equal when their scenes read the same."""
        return torch.stack([self.shape, self.colour, self.size, self.position], dim=1)


def _world(colour_mode: str = "named", caption_colour: str = "nearest", image_size: int = 32) -> ShapesWorld:
    return ShapesWorld(image_size=image_size, min_objects=1, max_objects=1, colour_mode=colour_mode,
                       random_caption_colour=caption_colour)


def _pairs(batch) -> Pairs:
    return Pairs(batch.images, list(batch.captions), batch.shape[:, 0], batch.colour[:, 0],
                 batch.size[:, 0], batch.position[:, 0])


def _concat(parts: list[Pairs]) -> Pairs:
    return Pairs(torch.cat([p.images for p in parts]), [c for p in parts for c in p.captions],
                 *(torch.cat([getattr(p, k) for p in parts]) for k in ("shape", "colour", "size", "position")))


def class_caption(shape: int, colour: int) -> str:
    """The few-class caption of the "classes" data: "a red circle" (24 distinct captions)."""
    return with_article(f"{COLOUR_NAMES[colour]} {SHAPES[shape]}")


def with_article(phrase: str) -> str:
    """ "red circle" -> "a red circle", "orange circle" -> "an orange circle"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def caption_with_detail(template: int, shape: str, colour: str | None, size: str | None, position: str | None) -> str:
    """A ShapesWorld-style caption that may leave out the size and/or the position (None).

    ``template`` indexes CAPTION_TEMPLATES; "a picture of a small red circle at the top left"
    becomes "a picture of a red circle at the top left" without the size, "a picture of a small
    red circle" without the position.
    """
    scene, clause = CAPTION_TEMPLATES[template]
    obj = with_article(" ".join(w for w in (size, colour, shape) if w))
    if position is None:
        clause = "there is {phrase}" if clause.startswith("{where}") else "{phrase}"
    else:
        clause = clause.replace("a {phrase}", "{phrase}")
    return scene.format(objects=clause.format(phrase=obj, where=POSITION_PHRASES.get(position, "")))


def _drop_details(pairs: Pairs, drop: float, seed: int) -> list[str]:
    """Leave the size out of each caption with probability ``drop``, and, independently, the
    position; captions that keep both stay exactly as ShapesWorld wrote them."""
    g = torch.Generator().manual_seed(seed)
    n = len(pairs)
    no_size, no_pos = (torch.rand(n, generator=g) < drop).tolist(), (torch.rand(n, generator=g) < drop).tolist()
    template = torch.randint(len(CAPTION_TEMPLATES), (n,), generator=g).tolist()
    out = []
    for i, caption in enumerate(pairs.captions):
        if not (no_size[i] or no_pos[i]):
            out.append(caption)
            continue
        words = caption.split()
        colour = next((w for w in words if w in COLOUR_NAMES), None)  # None: a caption without colour
        out.append(caption_with_detail(template[i], SHAPES[pairs.shape[i]], colour,
                                       None if no_size[i] else SIZES[pairs.size[i]],
                                       None if no_pos[i] else POSITIONS[pairs.position[i]]))
    return out


def sample_pairs(n: int, seed: int = 0, data: str = "named", split: str = "train", drop: float = 0.0) -> Pairs:
    """n single-object scene-caption pairs of kind ``data`` (see the module docstring).

    ``drop``: the probability that a caption leaves out the size, and independently the
    position (see :func:`caption_with_detail`), as real captions leave out most details.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    if not 0.0 <= drop <= 1.0:
        raise ValueError(f"drop must be in [0, 1], got {drop!r}")
    if data == "broad":
        n_random = int(round(n * RANDOM_FRACTION))
        n_none = n_random // 2
        # One seed per world: worlds with the same seed draw the same labels in the same order.
        worlds = ((_world(), n - n_random), (_world("random", "nearest"), n_random - n_none),
                  (_world("random", "none"), n_none))
        pairs = _concat([_pairs(w.sample(m, seed=3 * seed + i, split=split)) for i, (w, m) in enumerate(worlds) if m])
    else:
        pairs = _pairs(_world().sample(n, seed=seed, split=split))
    if data == "classes":
        pairs.captions = [class_caption(s, c) for s, c in zip(pairs.shape.tolist(), pairs.colour.tolist())]
    elif drop > 0:
        pairs.captions = _drop_details(pairs, drop, seed)
    return pairs


def shapes_clip_config(**overrides) -> CLIPConfig:
    """The course's ShapesWorld CLIP: both towers 64 wide, ~0.2 M parameters in all."""
    tok = WordTokenizer()
    cfg = CLIPConfig()
    cfg.text.vocab_size, cfg.text.eot_token_id = tok.vocab_size, tok.eot_token_id
    if overrides:
        d = cfg.to_dict()
        for k, v in overrides.items():
            if k in ("vision", "text"):
                d[k].update(v)
            else:
                d[k] = v
        cfg = CLIPConfig.from_dict(d)
    return cfg


def contrastive_loss_fn(data: str = "named", batch_size: int = 64, mask_duplicates: bool = False,
                        drop: float = 0.0, negatives_group: int | None = None,
                        tokenizer: WordTokenizer | None = None):
    """A ``loss_fn(model, generator)`` for :func:`mmcourse.train.fit`: draw a fresh batch of pairs,
    clamp the logit scale, return :func:`clip_loss` (with duplicate captions masked if asked).

    ``negatives_group``: compute the loss within consecutive groups of this many pairs (the mean
    over groups), so each pair meets only group - 1 negatives while the data and the number of
    steps stay those of the full batch. It isolates the number of negatives from everything else.
    """
    tokenizer = tokenizer or WordTokenizer()
    if negatives_group is not None and (negatives_group < 1 or batch_size % negatives_group):
        raise ValueError(f"negatives_group must divide batch_size={batch_size}, got {negatives_group!r}")

    def loss_fn(model: CLIP, g: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        pairs = sample_pairs(batch_size, seed=seed, data=data, drop=drop)
        device = model.logit_scale.device
        # fit has no per-step hook, so clamp before each forward: the same as after each step.
        model.clamp_logit_scale()
        tokens = tokenizer(pairs.captions)
        tokens = tokens[:, : int((tokens != tokenizer.pad_token_id).sum(1).max())]  # drop all-padding columns
        img, txt, scale = model(pairs.images.to(device), tokens.to(device))
        ids = caption_ids(pairs.captions).to(device) if mask_duplicates else None
        if negatives_group is None or negatives_group == batch_size:
            return clip_loss(img, txt, scale, ids)
        k = negatives_group
        return torch.stack([clip_loss(img[i : i + k], txt[i : i + k], scale, None if ids is None else ids[i : i + k])
                            for i in range(0, batch_size, k)]).mean()

    return loss_fn


def train_clip(
    data: str = "named", steps: int = 1000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
    mask_duplicates: bool = False, drop: float = 0.0, negatives_group: int | None = None,
    cfg: CLIPConfig | None = None, progress: bool = True, desc: str | None = None,
    grad_clip: float | None = GRAD_CLIP,
) -> tuple[CLIP, History]:
    """Train a fresh ShapesWorld CLIP: AdamW, 5% warm-up then cosine decay, gradient norm clipped
    to ``grad_clip`` (None: not clipped; notebook 04 shows what the clip prevents).

    ``data``, ``drop``: see :func:`sample_pairs`; ``mask_duplicates``, ``negatives_group``: see
    :func:`contrastive_loss_fn`.
    """
    torch.manual_seed(seed)
    model = CLIP(cfg or shapes_clip_config())
    loss_fn = contrastive_loss_fn(data, batch_size, mask_duplicates, drop, negatives_group)
    history = fit(model, loss_fn, steps=steps, lr=lr, seed=seed, weight_decay=0.05, warmup=max(1, steps // 20),
                  cosine=True, grad_clip=grad_clip, progress=progress, desc=desc or f"CLIP on {data} data, batch {batch_size}")
    model.clamp_logit_scale()
    return model.eval(), history


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def duplicate_shares(batch_size: int, batches: int = 200, seed: int = 0) -> dict[str, float]:
    """False negatives in few-class batches, no training needed: the mean
    :func:`~mmcourse.clip.loss.false_negative_stats` over ``batches`` random batches of the 24
    class captions ("a red circle", ...), plus ``loss_floor``, the lowest value the unmasked
    contrastive loss can reach on such batches.

    An image whose caption occurs m times in the batch faces m identical columns, so its row of
    the softmax gives the true one at most 1/m: its cross-entropy is at least ln m, in both
    directions. Masking the copies removes the floor.
    """
    rows, floors = [], []
    for i in range(batches):
        ids = caption_ids(sample_pairs(batch_size, seed=seed + i, data="classes").captions)
        rows.append(false_negative_stats(ids))
        copies = duplicate_mask(ids).sum(1).float() + 1  # m for every row, itself included
        floors.append(float(copies.log().mean()))
    out = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    out["loss_floor"] = sum(floors) / len(floors)
    return out


@functools.lru_cache(maxsize=8)
def _test_pairs(n: int, seed: int, split: str) -> Pairs:
    """``sample_pairs(n, seed, "named", split)``, drawn once and reused by the measurements below
    (a notebook measures several models on the same scenes). Read only: never modify the result."""
    return sample_pairs(n, seed=seed, data="named", split=split)


@torch.no_grad()
def zero_shot_accuracy(model: CLIP, templates: str | list[str] = "ensemble", n: int = 600, seed: int = 1) -> dict[str, float]:
    """Top-1 accuracy over all 30 colour x shape classes on n named-colour test scenes of the
    seen combinations ("seen") and n of the six held-out combinations ("heldout")."""
    if isinstance(templates, str):
        templates = shapes_templates(templates)
    return _zero_shot_accuracies(model, [templates], n, seed)[0]


@torch.no_grad()
def zero_shot_accuracies(model: CLIP, kinds: tuple[str, ...] = TEMPLATE_SETS, n: int = 600,
                         seed: int = 1) -> dict[str, dict[str, float]]:
    """:func:`zero_shot_accuracy` for each template set in ``kinds`` (see :func:`shapes_templates`),
    the same numbers, with the test images encoded once for all of them."""
    return dict(zip(kinds, _zero_shot_accuracies(model, [shapes_templates(k) for k in kinds], n, seed)))


def _zero_shot_accuracies(model: CLIP, template_lists: list[list[str]], n: int, seed: int) -> list[dict[str, float]]:
    weights = [zero_shot_classifier(model, shapes_classnames(), t) for t in template_lists]
    out: list[dict[str, float]] = [{} for _ in weights]
    for name, split in (("seen", "test"), ("heldout", "heldout")):
        pairs = _test_pairs(n, seed, split)
        truth = shapes_class_index(pairs.colour, pairs.shape)
        feats = encode_images(model, pairs.images)
        for acc, w in zip(out, weights):
            acc[name] = float((zero_shot_predict(model, pairs.images, w, image_features=feats) == truth).float().mean())
    return out


@torch.no_grad()
def similarity_matrix(model: CLIP, pairs: Pairs, tokenizer: WordTokenizer | None = None) -> torch.Tensor:
    """(N, N) cosine similarities, row = image i, column = caption j."""
    tokenizer = tokenizer or WordTokenizer(context_length=model.cfg.text.context_length)
    model.eval()
    img = torch.cat([model.encode_image(pairs.images[i : i + 500], normalize=True) for i in range(0, len(pairs), 500)])
    txt = model.encode_text(tokenizer(pairs.captions), normalize=True)
    return img @ txt.T


def _retrieval_hits(model: CLIP, pairs: Pairs, ks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-query hits (bool (N,)) of image->text and text->image recall@k, strict and attribute."""
    sim = similarity_matrix(model, pairs)
    attrs = pairs.attributes
    relevant = {"strict": torch.eye(len(pairs), dtype=torch.bool),
                "attribute": (attrs[:, None, :] == attrs[None, :, :]).all(dim=-1)}  # content_counts sums its rows
    out = {}
    for kind, rel in relevant.items():
        for k in ks:
            out[f"i2t_{kind}_r{k}"] = recall_hits(sim, rel, k)
            out[f"t2i_{kind}_r{k}"] = recall_hits(sim.T, rel.T, k)
    return out


@torch.no_grad()
def retrieval_recall(model: CLIP, n: int = 1000, seed: int = 2, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Image->text and text->image recall@k on n test scenes and their n captions, two ways.

    - "strict": only the scene's own caption counts.
    - "attribute": any caption with the same shape, colour, size and position counts. Many test
      captions describe the same scene in another template ("there is a small red circle at the
      top" and "a picture of a small red circle at the top"), so "strict" asks the model to guess
      the template, which the image cannot tell.
    """
    return {k: float(v.float().mean()) for k, v in _retrieval_hits(model, _test_pairs(n, seed, "test"), ks).items()}


# The evaluation protocol's draws (mmcourse.protocol): per seed, ZERO_SHOT_SCENES scenes of the
# seen and of the held-out colour-shape pairs, and one retrieval gallery of RETRIEVAL_SCENES pairs
# (recall depends on the gallery's size, so each gallery keeps the 1,000 of the notebook).
ZERO_SHOT_SCENES, RETRIEVAL_SCENES = 200, 1000


@torch.no_grad()
def protocol_metrics(model: CLIP, part: str) -> dict:
    """The registry's CLIP numbers as :class:`~mmcourse.protocol.Estimate`, pooled over the
    protocol's five clip seeds of ``part`` ("test" for the registry, "check" for make
    weights-check): zero-shot accuracy on seen and held-out pairs (1,000 scenes each, the
    ensemble of templates) and the recalls of :func:`retrieval_recall` (5,000 queries each way)."""
    from ..protocol import proportion, seeds

    if part not in ("val", "test", "check"):
        raise ValueError(f"part must be 'val', 'test' or 'check', got {part!r}")
    weights = zero_shot_classifier(model, shapes_classnames(), shapes_templates("ensemble"))
    hits: dict[str, list[torch.Tensor]] = {}
    for s in seeds("clip", part):
        for name, split in (("seen", "test"), ("heldout", "heldout")):
            pairs = sample_pairs(ZERO_SHOT_SCENES, seed=s, data="named", split=split)
            truth = shapes_class_index(pairs.colour, pairs.shape)
            hits.setdefault(f"zero_shot_{name}", []).append(zero_shot_predict(model, pairs.images, weights) == truth)
        gallery = sample_pairs(RETRIEVAL_SCENES, seed=s, data="named", split="test")
        for key, h in _retrieval_hits(model, gallery, (1, 5)).items():
            hits.setdefault(key, []).append(h)
    return {key: proportion(torch.cat(h)) for key, h in hits.items()}


def content_counts(pairs: Pairs) -> torch.Tensor:
    """(N,) m_i = how many of the N captions describe pair i's content (shape, colour, size and
    position), its own caption included; m_i >= 1."""
    attrs = pairs.attributes
    return (attrs[:, None, :] == attrs[None, :, :]).all(dim=-1).sum(dim=1)


def strict_recall_ceiling(n: int = 1000, seed: int = 2, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """The best strict image->text recall@k on :func:`retrieval_recall`'s test set (same n, seed)
    for a model that cannot know a caption's wording.

    Image i shares its content with m_i captions (:func:`content_counts`). A perfect model ranks
    those m_i first, in an order unrelated to the wording, so its own caption is among the first
    k with probability min(1, k / m_i). The ceiling is the mean of that over the images: for
    k = 1, the mean of 1 / m_i, which is larger than 1 / mean(m_i) (Jensen's inequality: 1/m is
    convex). Returns ``r{k}`` for each k, ``mean_m`` and ``one_over_mean_m``.
    """
    m = content_counts(_test_pairs(n, seed, "test")).double()
    out = {f"r{k}": float((k / m).clamp(max=1).mean()) for k in ks}
    out.update(mean_m=float(m.mean()), one_over_mean_m=float(1 / m.mean()))
    return out


# ---------------------------------------------------------------------------------------------
# The shipped checkpoints (``make weights``) and loading them
# ---------------------------------------------------------------------------------------------

CHECKPOINTS = {"clip_shapes_named": "named", "clip_shapes_broad": "broad"}
CHECKPOINT_RECIPE = dict(steps=2000, batch_size=256, lr=1e-3, drop=0.4, seed=0)
CURVES = Path(__file__).resolve().parents[2] / "bench" / "results" / "clip_training_curves.json"


def build_checkpoint(name: str, progress: bool = True) -> dict:
    """Train, measure and register checkpoint ``name`` (a key of CHECKPOINTS); return its metrics.

    The metrics are :func:`protocol_metrics` on the protocol's test draws; raises RuntimeError
    (and saves nothing) if one misses its target (``mmcourse.weights.build.TARGETS``). The loss
    curve (smoothed, 100 points) and the training time go to
    bench/results/clip_training_curves.json so that the notebook can plot them.
    """
    from ..weights import save
    from ..weights.build import TARGETS, missed_targets

    if name not in CHECKPOINTS:
        raise ValueError(f"name must be one of {list(CHECKPOINTS)}, got {name!r}")
    t0 = time.perf_counter()
    model, history = train_clip(CHECKPOINTS[name], progress=progress, desc=name, **CHECKPOINT_RECIPE)
    seconds = time.perf_counter() - t0
    metrics = {**protocol_metrics(model, "test"), "train_seconds": seconds, "final_loss": history.final()}
    missed = missed_targets(name, metrics)
    if missed:
        raise RuntimeError(f"{name} missed its targets (nothing saved): {missed}")
    save(name, model.state_dict(), model.cfg.to_dict(), f"python -m mmcourse.weights.build {name}", metrics,
         targets=TARGETS[name])
    curves = json.loads(CURVES.read_text()) if CURVES.exists() else {}
    smooth = history.smoothed(50)
    idx = np.linspace(0, len(smooth) - 1, 100).round().astype(int)
    curves[name] = {"recipe": {"data": CHECKPOINTS[name], **CHECKPOINT_RECIPE}, "train_seconds": round(seconds, 1),
                    "threads": torch.get_num_threads(), "step": idx.tolist(),
                    "loss": [round(float(v), 4) for v in smooth[idx]]}
    CURVES.parent.mkdir(parents=True, exist_ok=True)
    CURVES.write_text(json.dumps(curves, indent=1) + "\n")
    return metrics


def load_clip(name: str) -> CLIP:
    """A shipped checkpoint (hash-checked by :func:`mmcourse.weights.load`), in eval mode."""
    from ..weights import load

    state, entry = load(name)
    model = CLIP(CLIPConfig.from_dict(entry.config))
    model.load_state_dict(state)
    return model.eval()

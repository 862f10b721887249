"""BLIP on ShapesWorld: the scenes and captions, the training run and the measurements.

The notebook, ``make weights`` (:mod:`mmcourse.blip.checkpoints`) and ``make bench``
(``bench/blip.py``) call these functions, so the numbers they report come from one code path.

- Data: 32x32 scenes with 1 to 3 objects, named colours, ShapesWorld's captions (every object
  named, with its size, colour, shape and position). A caption is read back into objects by
  :func:`parse_caption`, so generated captions can be scored word by word.
- One-word-changed captions (:func:`one_word_change`): the same caption with one colour, shape,
  size or position word swapped, the test ITM exists for (:func:`matching_accuracy`).
- Retrieval and zero-shot use notebook 04's test sets and scoring (:mod:`mmcourse.clip`).

ITM's plateau (measured while writing this module, one seed each, batch 32 unless named). From
scratch, ITM sits at 0.636, the loss of always answering "match" with probability 1/3 (one true
pair for two negatives), while ITC and LM learn; it is not a bug in the pairs or the labels
(``tests/test_blip.py`` checks both, and ITM's gradient reaches cross-attention, norm 0.1-0.4):

- random ViT, no gradient clipping: ITC stuck at ln 32 = 3.47 too, ITM 0.636 after 300 steps;
- gradient norm clipped, 50 warm-up steps: ITC 0.90 after 300 steps, ITM still 0.637;
- ITM alone with random negatives: 0.637 after 200 steps;
- image encoder started from notebook 04's CLIP (``vit_init``): ITC 0.27 by step 100, and ITM
  leaves the plateau at step 250-300, as LM falls below about 1.1 (0.49 at step 350).

At initialisation cross-attention is uniform over the 17 image tokens (entropy = ln 17) and the
[ENC] state varies little with the caption (std 0.07 across captions, 0.19 across images):
nothing in it correlates with "match", a product of caption and image. LM, which shares the
cross-attention, teaches it to look words up in the image, and ITM follows. The shipped recipe
(:mod:`.checkpoints`, batch 64) shows the same: ITM 0.636 until step 250, 0.54 at 400, 0.16 at 900.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..clip.tasks import sample_pairs
from ..clip.zero_shot import recall_at_k, shapes_class_index, shapes_classnames, shapes_templates
from ..data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, SceneBatch, ShapesWorld
from ..train import History, fit
from .model import BLIP, BlipConfig
from .text import TextConfig
from .tokenizer import BlipTokenizer

ATTRIBUTES = ("shape", "colour", "size", "position")
CONTEXT_LENGTH = 34  # 3 objects in the longest template: 3 x "at the bottom right there is a large green circle" + 2 "and" = 32 words, + [CLS] [SEP]
ROW_WORDS, COLUMN_WORDS = ("top", "bottom"), ("left", "right")
_WORD_KIND = {**{w: "shape" for w in SHAPES}, **{w: "colour" for w in COLOUR_NAMES}, **{w: "size" for w in SIZES},
              **{w: "position" for w in (*ROW_WORDS, *COLUMN_WORDS, "middle")}}


# ------------------------------------------------------------------------------------------ data
def world(min_objects: int = 1, max_objects: int = 3) -> ShapesWorld:
    """The ShapesWorld of this notebook: 32x32, named colours, ``min_objects``..``max_objects`` objects."""
    return ShapesWorld(image_size=32, min_objects=min_objects, max_objects=max_objects, colour_mode="named")


def sample_scenes(n: int, seed: int = 0, split: str = "train", min_objects: int = 1, max_objects: int = 3) -> SceneBatch:
    """n scenes with their captions (a deterministic function of the arguments)."""
    return world(min_objects, max_objects).sample(n, seed=seed, split=split)


def scene_objects(batch: SceneBatch, i: int) -> list[dict[str, str]]:
    """The true objects of scene i: dicts with the names of shape, colour, size and position."""
    out = []
    for k in range(int(batch.valid[i].sum())):
        out.append({"shape": SHAPES[int(batch.shape[i, k])], "colour": COLOUR_NAMES[int(batch.colour[i, k])],
                    "size": SIZES[int(batch.size[i, k])], "position": POSITIONS[int(batch.position[i, k])]})
    return out


def _position(words: Sequence[str]) -> str | None:
    """The grid cell named by a clause's position words: ("top", "left") -> "top left"."""
    row = next((w for w in words if w in ROW_WORDS), None)
    col = next((w for w in words if w in COLUMN_WORDS), None)
    if row or col:
        return " ".join(w for w in (row, col) if w)
    return "middle" if "middle" in words else None


def parse_caption(caption: str) -> list[dict[str, str | None]]:
    """A ShapesWorld-style caption -> its objects, one per " and "-separated clause.

    Each object is a dict with ``shape``, ``colour``, ``size``, ``position`` (the names, None
    where the clause has no such word). Glue words ("there is", "a picture of") are ignored, so
    any template reads the same: ``parse_caption("on the left there is a small red circle")`` ==
    ``[{"shape": "circle", "colour": "red", "size": "small", "position": "left"}]``.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    objects = []
    for clause in caption.split(" and "):
        words = clause.split()
        if not words:
            continue
        obj = {a: next((w for w in words if _WORD_KIND.get(w) == a), None) for a in ("shape", "colour", "size")}
        obj["position"] = _position(words)
        objects.append(obj)
    return objects


def content_key(objects: Sequence[dict]) -> tuple:
    """What a caption (or scene) says, independent of template and object order."""
    return tuple(sorted(tuple(o.get(a) or "" for a in ATTRIBUTES) for o in objects))


def content_ids(captions: Sequence[str]) -> torch.Tensor:
    """(N,) int64, equal exactly for captions that describe the same objects (any template).

    ITC leaves such pairs out of each other's softmax, and ITM never draws them as negatives.
    """
    keys: dict[tuple, int] = {}
    return torch.tensor([keys.setdefault(content_key(parse_caption(c)), len(keys)) for c in captions], dtype=torch.long)


# ------------------------------------------------------------------------ captions, word by word
def word_marks(caption: str, objects: Sequence[dict]) -> list[tuple[str, str]]:
    """Each word of a caption with a verdict against the scene's true ``objects``.

    ``"right"`` or ``"wrong"`` for attribute words (a shape, colour or size word is right when the
    object its clause places names it; a position word is right when some object sits there),
    ``"glue"`` for the rest. A clause whose position matches no object marks all its words wrong.
    """
    by_position = {o["position"]: o for o in objects}
    marks = []
    for c, clause in enumerate(caption.split(" and ")):
        if c:
            marks.append(("and", "glue"))
        words = clause.split()
        target = by_position.get(_position(words))
        for w in words:
            kind = _WORD_KIND.get(w)
            if kind is None:
                marks.append((w, "glue"))
            elif kind == "position":
                marks.append((w, "right" if target is not None else "wrong"))
            else:
                marks.append((w, "right" if target is not None and target[kind] == w else "wrong"))
    return marks


def caption_scores(captions: Sequence[str], batch: SceneBatch) -> dict[str, float]:
    """How right generated captions are, against the scenes of ``batch``.

    - ``all_right``: the caption names exactly the scene's objects, every attribute right;
    - ``<attribute>``: over all true objects, the share whose attribute the caption gets right
      (the object is found by its position; a missing object counts wrong for every attribute);
    - ``objects``: the caption names as many objects as the scene holds.
    """
    if len(captions) != len(batch):
        raise ValueError(f"captions must hold one caption per scene ({len(batch)}), got {len(captions)}")
    right = dict.fromkeys(ATTRIBUTES, 0)
    total = all_right = count_right = 0
    for i, text in enumerate(captions):
        truth, said = scene_objects(batch, i), parse_caption(text)
        by_position = {o["position"]: o for o in said}
        all_right += content_key(said) == content_key(truth)
        count_right += len(said) == len(truth)
        for o in truth:
            total += 1
            p = by_position.get(o["position"])
            for a in ATTRIBUTES:
                right[a] += p is not None and p[a] == o[a]
    n = len(captions)
    return {"all_right": all_right / n, **{a: right[a] / total for a in ATTRIBUTES}, "objects": count_right / n}


def one_word_change(caption: str, attribute: str, generator: torch.Generator | None = None) -> str | None:
    """``caption`` with one ``attribute`` word of one object (chosen at random) replaced.

    colour, shape: another colour or shape word; size: small <-> large; position: top <-> bottom
    or left <-> right. None when no object can change that way (position of an object in the
    middle). The result always describes a different scene.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    words = caption.split()
    candidates = [i for i, w in enumerate(words) if _WORD_KIND.get(w) == attribute and w != "middle"]
    if not candidates:
        return None
    pick = lambda n: int(torch.randint(n, (1,), generator=generator))  # noqa: E731
    i = candidates[pick(len(candidates))]
    w = words[i]
    if attribute == "size":
        new = SIZES[1 - SIZES.index(w)]
    elif attribute == "position":
        pair = ROW_WORDS if w in ROW_WORDS else COLUMN_WORDS
        new = pair[1 - pair.index(w)]
    else:
        pool = [x for x in (SHAPES if attribute == "shape" else COLOUR_NAMES) if x != w]
        new = pool[pick(len(pool))]
    words[i] = new
    return " ".join(words)


# -------------------------------------------------------------------------------------- model
def shapes_blip_config(**text_overrides) -> BlipConfig:
    """The course's ShapesWorld BLIP: the ViT of notebooks 03-04 (64 wide, 3 blocks, 4x4 patches
    of 8 pixels + the class token) and a 2-layer, 64-wide text transformer, context 32."""
    tok = BlipTokenizer(context_length=CONTEXT_LENGTH)
    text = TextConfig(**{"vocab_size": tok.vocab_size, "context_length": CONTEXT_LENGTH, **tok.token_ids(),
                         **text_overrides})
    return BlipConfig(text=text)


def tokenizer_for(model: BLIP) -> BlipTokenizer:
    """The word tokenizer at the model's context length."""
    return BlipTokenizer(context_length=model.cfg.text.context_length)


def _trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns at the end of a batch of token ids (saves time, same result)."""
    return tokens[:, : max(2, int((tokens != 0).sum(1).max()))]


@dataclass
class PairSet:
    """A fixed training set: N images with one caption each (CapFilt's noisy, filtered or clean sets)."""

    images: torch.Tensor   # (N, 3, 32, 32)
    captions: list[str]

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.images):
            raise ValueError(f"captions must hold one caption per image ({len(self.images)}), got {len(self.captions)}")

    def __len__(self) -> int:
        return len(self.captions)


def _batch(source: PairSet | None, batch_size: int, seed: int, single_share: float = 0.0) -> tuple[torch.Tensor, list[str]]:
    """A fresh training batch: new ShapesWorld scenes (source None) or a random draw from ``source``.

    ``single_share``: the share of the fresh scenes that hold exactly one object (the rest hold
    1 to 3, so single-object scenes make up ``single_share + (1 - single_share) / 3`` of the batch).
    """
    if source is None:
        n1 = int(round(batch_size * single_share))
        if n1 == 0:
            b = sample_scenes(batch_size, seed=seed)
            return b.images, list(b.captions)
        one = sample_scenes(n1, seed=seed, min_objects=1, max_objects=1)
        if n1 == batch_size:
            return one.images, list(one.captions)
        rest = sample_scenes(batch_size - n1, seed=seed + 7919)
        return torch.cat([one.images, rest.images]), list(one.captions) + list(rest.captions)
    idx = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return source.images[idx], [source.captions[i] for i in idx.tolist()]


def blip_loss_fn(batch_size: int = 64, source: PairSet | None = None, negatives: str = "hard",
                 itm_start: int = 0, weights: dict[str, float] | None = None, history: dict | None = None,
                 single_share: float = 0.0):
    """A ``loss_fn(model, generator)`` for :func:`mmcourse.train.fit`: the sum of the three losses
    on a fresh batch (``weights`` scales them, e.g. ``{"itm": 0}``; ITM counts from step ``itm_start``;
    ``single_share`` of fresh batches are single-object scenes, see :func:`_batch`).

    ``history``, if given, collects every loss per step (``{"itc": [...], ...}``).
    """
    if not 0.0 <= single_share <= 1.0:
        raise ValueError(f"single_share must be in [0, 1], got {single_share!r}")
    weights = {"itc": 1.0, "itm": 1.0, "lm": 1.0, **(weights or {})}
    step = [0]

    def loss_fn(model: BLIP, g: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        images, captions = _batch(source, batch_size, seed, single_share)
        tok = tokenizer_for(model)
        tokens = _trim(tok(captions, argument="captions"))
        losses = model(images, tokens, content_ids(captions), generator=g, negatives=negatives)
        w = dict(weights)
        if step[0] < itm_start:
            w["itm"] = 0.0
        step[0] += 1
        if history is not None:
            for k, v in losses.items():
                history.setdefault(k, []).append(float(v.detach()))
        return sum(w[k] * v for k, v in losses.items())

    return loss_fn


def init_from_clip(model: BLIP, name: str = "clip_shapes_named") -> BLIP:
    """Start the image encoder from notebook 04's CLIP image tower, as BLIP starts from a
    pre-trained ViT (same architecture: 64 wide, 3 blocks, 8-pixel patches)."""
    from ..clip.tasks import load_clip

    model.visual.load_state_dict(load_clip(name).visual.state_dict())
    return model


def train_blip(steps: int = 1000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
               source: PairSet | None = None, negatives: str = "hard", itm_start: int = 0,
               weights: dict[str, float] | None = None, model: BLIP | None = None, vit_init: str | None = "clip_shapes_named",
               single_share: float = 0.0, progress: bool = True, desc: str = "BLIP") -> tuple[BLIP, dict[str, list[float]]]:
    """Train BLIP on ShapesWorld (``source`` None: fresh scenes every step) or on a fixed
    :class:`PairSet`; AdamW, 5% warm-up then cosine decay, gradient norm clipped to 1.

    ``model``: continue training it (fine-tuning) instead of a fresh one; ``vit_init``: the CLIP
    checkpoint a fresh model's image encoder starts from (None: random); ``single_share``: the
    share of each fresh batch drawn as single-object scenes (:func:`_batch`). Returns the model (eval
    mode) and the per-step losses ``{"itc", "itm", "lm", "total"}``.
    """
    torch.manual_seed(seed)
    if model is None:
        model = BLIP(shapes_blip_config())
        if vit_init:
            init_from_clip(model, vit_init)
    curves: dict[str, list[float]] = {}
    loss_fn = blip_loss_fn(batch_size, source, negatives, itm_start, weights, curves, single_share)
    hist = fit(model, loss_fn, steps=steps, lr=lr, seed=seed, weight_decay=0.05, warmup=max(1, steps // 20),
               cosine=True, grad_clip=1.0, progress=progress, desc=desc)
    curves["total"] = hist.loss
    model.clamp_temp()
    return model.eval(), curves


# ------------------------------------------------------------------------------- measurements
@torch.no_grad()
def itc_scores(model: BLIP, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """(N,) cosine similarity of image i with caption i (ITC's view of each pair)."""
    tok = tokenizer_for(model)
    img = model.image_features(model.encode_image(images))
    return (img * model.text_features(tok(captions, argument="captions"))).sum(-1)


@torch.no_grad()
def itm_scores(model: BLIP, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """(N,) ITM's match probability of image i with caption i."""
    return model.match_probability(images, tokenizer_for(model)(captions, argument="captions"))


def changed_captions(batch: SceneBatch, seed: int = 0) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """For each attribute, the scenes that can change that way and their one-word-changed
    captions: ``{attribute: (scene indices, captions)}`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for a in ATTRIBUTES:
        idx, caps = [], []
        for i, c in enumerate(batch.captions):
            changed = one_word_change(c, a, g)
            if changed is not None:
                idx.append(i)
                caps.append(changed)
        out[a] = (torch.tensor(idx, dtype=torch.long), caps)
    return out


@torch.no_grad()
def matching_accuracy(model: BLIP, n: int = 500, seed: int = 1, min_objects: int = 1, max_objects: int = 1) -> dict[str, float]:
    """Telling the true caption from a one-word-changed one, by ITM and by ITC.

    For n test scenes and each attribute, the true caption wins when its score (ITM's match
    probability, or ITC's cosine similarity) is higher than the changed caption's. Returns
    ``itm``, ``itc`` (over every attribute) and ``itm_<attribute>``, ``itc_<attribute>``;
    ``itm_reject``: the share of changed captions ITM calls no match (probability < 0.5) and
    ``itm_accept`` the share of true captions it calls a match; ``comparisons``: how many
    (scene, changed caption) comparisons there were, ``itm_only`` / ``itc_only``: how many of
    them one score won and the other lost.
    """
    model.eval()
    batch = sample_scenes(n, seed=seed, split="test", min_objects=min_objects, max_objects=max_objects)
    true_itm = itm_scores(model, batch.images, batch.captions)
    true_itc = itc_scores(model, batch.images, batch.captions)
    out, wins, rejects = {}, {"itm": [], "itc": []}, []
    for a, (idx, caps) in changed_captions(batch, seed).items():
        p = itm_scores(model, batch.images[idx], caps)
        s = itc_scores(model, batch.images[idx], caps)
        for name, won in (("itm", true_itm[idx] > p), ("itc", true_itc[idx] > s)):
            out[f"{name}_{a}"] = float(won.float().mean())
            wins[name].append(won)
        rejects.append(p < 0.5)
    for name in ("itm", "itc"):
        out[name] = float(torch.cat(wins[name]).float().mean())
    itm_won, itc_won = torch.cat(wins["itm"]), torch.cat(wins["itc"])
    out["comparisons"] = len(itm_won)
    out["itm_only"] = int((itm_won & ~itc_won).sum())
    out["itc_only"] = int((itc_won & ~itm_won).sum())
    out["itm_reject"] = float(torch.cat(rejects).float().mean())
    out["itm_accept"] = float((true_itm >= 0.5).float().mean())
    return out


@torch.no_grad()
def generate_captions(model: BLIP, images: torch.Tensor, method: str = "greedy", batch_size: int = 250,
                      seed: int = 0, **kw) -> list[str]:
    """Captions for many images, in chunks (``kw``: num_beams, top_p, max_length)."""
    from .capfilt import caption

    g = torch.Generator().manual_seed(seed)
    tok = tokenizer_for(model)
    out: list[str] = []
    for i in range(0, len(images), batch_size):
        out += caption(model, images[i : i + batch_size], tok, method=method, generator=g, **kw)
    return out


def caption_accuracy(model: BLIP, n: int = 500, seed: int = 1, min_objects: int = 1, max_objects: int = 1,
                     method: str = "greedy", **kw) -> dict[str, float]:
    """:func:`caption_scores` of the model's captions of n test scenes."""
    batch = sample_scenes(n, seed=seed, split="test", min_objects=min_objects, max_objects=max_objects)
    return caption_scores(generate_captions(model.eval(), batch.images, method, **kw), batch)


@torch.no_grad()
def retrieval_r1(model: BLIP, n: int = 1000, seed: int = 2) -> dict[str, float]:
    """Notebook 04's retrieval test (n single-object test scenes and their captions, ITC
    similarities): image->text and text->image recall@1, a caption counting as right when it
    names the scene's shape, colour, size and position ("attribute" level)."""
    model.eval()
    pairs = sample_pairs(n, seed=seed, data="named", split="test")
    tok = tokenizer_for(model)
    img = torch.cat([model.image_features(model.encode_image(pairs.images[i : i + 500])) for i in range(0, n, 500)])
    sim = img @ model.text_features(tok(pairs.captions)).T
    attrs = pairs.attributes
    rel = (attrs[:, None, :] == attrs[None, :, :]).all(dim=-1)
    return {"i2t_attribute_r1": recall_at_k(sim, rel, 1), "t2i_attribute_r1": recall_at_k(sim.T, rel.T, 1)}


@torch.no_grad()
def zero_shot_accuracy(model: BLIP, n: int = 600, seed: int = 1) -> float:
    """Notebook 04's zero-shot test: top-1 over the 30 colour x shape classes on n single-object
    test scenes, each class's text feature the mean over the "scene" prompt templates."""
    model.eval()
    tok = tokenizer_for(model)
    templates = shapes_templates("scene")
    feats = []
    for name in shapes_classnames():
        f = model.text_features(tok([t.format(name) for t in templates])).mean(0)
        feats.append(f / f.norm())
    weights = torch.stack(feats)                                           # (30, E)
    pairs = sample_pairs(n, seed=seed, data="named", split="test")
    pred = (model.image_features(model.encode_image(pairs.images)) @ weights.T).argmax(1)
    return float((pred == shapes_class_index(pairs.colour, pairs.shape)).float().mean())


# ------------------------------------------------------------------------------------- CapFilt
def corrupt_captions(captions: Sequence[str], share: float = 0.4, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """Noisy alt-text: a random ``share`` of the captions get one wrong colour or shape word.

    Returns the captions and (N,) bool, True where a caption was corrupted.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    g = torch.Generator().manual_seed(seed)
    corrupted = torch.rand(len(captions), generator=g) < share
    which = torch.randint(2, (len(captions),), generator=g).tolist()
    out = [one_word_change(c, ("colour", "shape")[w], g) if bad else c
           for c, bad, w in zip(captions, corrupted.tolist(), which)]
    return out, corrupted


def filter_quality(keep: torch.Tensor, corrupted: torch.Tensor) -> dict[str, float]:
    """How well a filter finds corrupted captions: precision and recall of "rejected" against "corrupted"."""
    rejected = ~keep
    hit = float((rejected & corrupted).sum())
    return {"precision": hit / max(1.0, float(rejected.sum())), "recall": hit / max(1.0, float(corrupted.sum())),
            "kept": float(keep.float().mean())}


def evaluate(model: BLIP, n: int = 500) -> dict[str, float]:
    """The measurements CapFilt compares: zero-shot, retrieval R@1, greedy caption accuracy and
    ITM's one-word-change accuracy on single-object test scenes."""
    return {"zero_shot": zero_shot_accuracy(model, n), "i2t_attribute_r1": retrieval_r1(model, 2 * n)["i2t_attribute_r1"],
            "caption_all_right": caption_accuracy(model, n)["all_right"], "itm_one_word": matching_accuracy(model, n)["itm"]}


def capfilt_experiment(n_images: int = 2000, noise: float = 0.4, clean_share: float = 0.05, steps: int = 500,
                       finetune_steps: int = 150, batch_size: int = 64, threshold: float = 0.5, seed: int = 0,
                       min_objects: int = 1, max_objects: int = 1, eval_n: int = 500, progress: bool = True) -> dict:
    """BLIP's CapFilt on ShapesWorld, end to end (bench/blip.py runs the full size, the notebook a small one).

    1. ``n_images`` training scenes (``min_objects``..``max_objects`` objects); a share ``noise`` of their captions corrupted
       (:func:`corrupt_captions`); pretrain on the noisy set.
    2. A clean subset (``clean_share`` of the images, true captions): fine-tune a copy of the
       model as captioner (LM only) and one as filter (ITC + ITM), as BLIP does on COCO.
    3. Caption every image (nucleus sampling), filter the original and the synthetic captions
       (ITM probability >= ``threshold``), pretrain a new model on what survives plus the clean set.
    4. Pretrain on the true captions for comparison; measure all three (:func:`evaluate`).
    """
    import copy

    from .capfilt import filter as itm_filter

    t0 = time.perf_counter()
    scenes = sample_scenes(n_images, seed=1000 + seed, min_objects=min_objects, max_objects=max_objects)
    images, truth = scenes.images, list(scenes.captions)
    noisy, corrupted = corrupt_captions(truth, noise, seed)
    kw = dict(steps=steps, batch_size=batch_size, seed=seed, progress=progress)
    m_noisy, curves_noisy = train_blip(source=PairSet(images, noisy), desc="pretrain on noisy captions", **kw)
    n_clean = max(batch_size, int(round(clean_share * n_images)))
    clean_idx = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))[:n_clean]
    clean = PairSet(images[clean_idx], [truth[i] for i in clean_idx.tolist()])
    ft = dict(steps=finetune_steps, batch_size=batch_size, lr=5e-4, seed=seed, source=clean, progress=progress)
    captioner, _ = train_blip(model=copy.deepcopy(m_noisy), weights={"itc": 0.0, "itm": 0.0}, desc="captioner (LM)", **ft)
    filt, _ = train_blip(model=copy.deepcopy(m_noisy), weights={"lm": 0.0}, desc="filter (ITC + ITM)", **ft)
    synthetic = generate_captions(captioner, images, "nucleus", top_p=0.9, seed=seed)
    tok = tokenizer_for(filt)
    keep_web, p_web, keep_syn = [], [], []
    for i in range(0, n_images, 500):
        k, p = itm_filter(filt, images[i : i + 500], noisy[i : i + 500], threshold, tok)
        keep_web.append(k)
        p_web.append(p)
        keep_syn.append(itm_filter(filt, images[i : i + 500], synthetic[i : i + 500], threshold, tok)[0])
    keep_web, keep_syn, p_web = torch.cat(keep_web), torch.cat(keep_syn), torch.cat(p_web)
    synthetic_right = torch.tensor([content_key(parse_caption(s)) == content_key(parse_caption(t))
                                    for s, t in zip(synthetic, truth)])
    boot_images = torch.cat([images[keep_web], images[keep_syn], clean.images])
    boot_caps = ([c for c, k in zip(noisy, keep_web.tolist()) if k] + [c for c, k in zip(synthetic, keep_syn.tolist()) if k]
                 + clean.captions)
    boot_right = torch.cat([~corrupted[keep_web], synthetic_right[keep_syn], torch.ones(n_clean, dtype=torch.bool)])
    m_boot, _ = train_blip(source=PairSet(boot_images, boot_caps), desc="pretrain on bootstrapped captions", **kw)
    m_clean, curves_clean = train_blip(source=PairSet(images, truth), desc="pretrain on clean captions", **kw)
    results = {name: evaluate(m, eval_n) for name, m in (("noisy", m_noisy), ("bootstrapped", m_boot), ("clean", m_clean))}
    gap = results["clean"]["zero_shot"] - results["noisy"]["zero_shot"]
    return {
        "recipe": dict(n_images=n_images, noise=noise, clean_share=clean_share, steps=steps, finetune_steps=finetune_steps,
                       batch_size=batch_size, threshold=threshold, seed=seed, objects=[min_objects, max_objects]),
        "filter": filter_quality(keep_web, corrupted),
        "filter_by_threshold": {f"{t:.1f}": filter_quality(p_web >= t, corrupted) for t in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)},
        "synthetic": {"right": float(synthetic_right.float().mean()), "kept": float(keep_syn.float().mean()),
                      "right_among_kept": float(synthetic_right[keep_syn].float().mean()) if keep_syn.any() else 0.0},
        "bootstrapped_set": {"pairs": len(boot_caps), "right": float(boot_right.float().mean())},
        "noisy_set_right": float((~corrupted).float().mean()),
        "models": results,
        "zero_shot_gap_recovered": (results["bootstrapped"]["zero_shot"] - results["noisy"]["zero_shot"]) / gap if gap > 0 else None,
        "examples": [{"web": noisy[i], "corrupted": bool(corrupted[i]), "p_web": round(float(p_web[i]), 3),
                      "synthetic": synthetic[i], "kept_web": bool(keep_web[i]), "kept_synthetic": bool(keep_syn[i])}
                     for i in range(8)],
        "seconds": time.perf_counter() - t0,
    }

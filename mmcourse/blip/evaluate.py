"""Measuring a BLIP on ShapesWorld: captions, one-word-change matching, retrieval, zero-shot.

The notebook, ``make weights`` (:mod:`mmcourse.blip.checkpoints`), ``make weights-check`` and
``make bench`` (``bench/blip.py``) call these functions, so the numbers they report come from one
code path. The functions that take ``n`` and ``seed`` measure one draw (the notebook's live
cells); :func:`protocol_metrics` pools the draws of :mod:`mmcourse.protocol` and returns every
shipped number as an :class:`mmcourse.protocol.Estimate` with its standard error.

Retrieval and zero-shot use notebook 04's test sets and scoring (:mod:`mmcourse.clip`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..clip.tasks import sample_pairs
from ..clip.zero_shot import recall_at_k, shapes_class_index, shapes_classnames, shapes_templates
from ..data.shapes import CAPTION_TEMPLATES, POSITION_PHRASES, SHAPES, SceneBatch
from ..protocol import Estimate, proportion
from ..protocol import seeds as protocol_seeds
from .captions import ATTRIBUTES, caption_outcomes, caption_scores, one_word_change, sample_scenes, scene_objects
from .losses import IGNORE, lm_loss, lm_targets
from .model import BLIP
from .train import _trim, tokenizer_for


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
def one_word_comparisons(model: BLIP, batch: SceneBatch, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every (scene, one-word-changed caption) comparison of ``batch``, by ITM and by ITC.

    A score wins a comparison when it ranks the scene's true caption above the changed one.
    Returns (C,) tensors over the C comparisons: ``itm_won``, ``itc_won`` (bool), ``scene`` (the
    scene index, for standard errors that respect the comparisons of one scene being alike),
    ``attribute`` (index into ATTRIBUTES), ``itm_changed`` (ITM's match probability of the changed
    caption), and (B,) ``itm_true``, the match probability of each true caption.
    """
    model.eval()
    true_itm = itm_scores(model, batch.images, batch.captions)
    true_itc = itc_scores(model, batch.images, batch.captions)
    parts = []
    for k, (a, (idx, caps)) in enumerate(changed_captions(batch, seed).items()):
        if len(idx) == 0:
            continue
        p = itm_scores(model, batch.images[idx], caps)
        s = itc_scores(model, batch.images[idx], caps)
        parts.append((true_itm[idx] > p, true_itc[idx] > s, idx, torch.full_like(idx, k), p))
    cat = [torch.cat(x) for x in zip(*parts)]
    return {"itm_won": cat[0], "itc_won": cat[1], "scene": cat[2], "attribute": cat[3], "itm_changed": cat[4],
            "itm_true": true_itm}


def matching_accuracy(model: BLIP, n: int = 500, seed: int = 1, min_objects: int = 1, max_objects: int = 1,
                      split: str = "test") -> dict[str, float]:
    """Telling the true caption from a one-word-changed one, by ITM and by ITC, on n scenes.

    For n scenes of ``split`` and each attribute, the true caption wins when its score (ITM's
    match probability, or ITC's cosine similarity) is higher than the changed caption's. Returns
    ``itm``, ``itc`` (over every attribute) and ``itm_<attribute>``, ``itc_<attribute>``;
    ``itm_reject``: the share of changed captions ITM calls no match (probability < 0.5) and
    ``itm_accept`` the share of true captions it calls a match; ``comparisons``: how many
    (scene, changed caption) comparisons there were, ``itm_only`` / ``itc_only``: how many of
    them one score won and the other lost.
    """
    c = one_word_comparisons(model, sample_scenes(n, seed=seed, split=split, min_objects=min_objects,
                                                  max_objects=max_objects), seed)
    out = {}
    for k, a in enumerate(ATTRIBUTES):
        at = c["attribute"] == k
        for name in ("itm", "itc"):
            out[f"{name}_{a}"] = float(c[f"{name}_won"][at].float().mean()) if at.any() else float("nan")
    itm_won, itc_won = c["itm_won"], c["itc_won"]
    out.update(itm=float(itm_won.float().mean()), itc=float(itc_won.float().mean()), comparisons=len(itm_won),
               itm_only=int((itm_won & ~itc_won).sum()), itc_only=int((itc_won & ~itm_won).sum()),
               itm_reject=float((c["itm_changed"] < 0.5).float().mean()),
               itm_accept=float((c["itm_true"] >= 0.5).float().mean()))
    return out


@torch.no_grad()
def generate_captions(model: BLIP, images: torch.Tensor, method: str = "greedy", batch_size: int = 250,
                      seed: int = 0, **kw) -> list[str]:
    """Captions for many images, in chunks of ``batch_size`` (``kw``: num_beams, top_p, max_length)."""
    from .capfilt import caption

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model.check_images(images)

    g = torch.Generator().manual_seed(seed)
    tok = tokenizer_for(model)
    out: list[str] = []
    for i in range(0, len(images), batch_size):
        out += caption(model, images[i : i + batch_size], tok, method=method, generator=g, **kw)
    return out


def caption_accuracy(model: BLIP, n: int = 500, seed: int = 1, min_objects: int = 1, max_objects: int = 1,
                     method: str = "greedy", split: str = "test", **kw) -> dict[str, float]:
    """:func:`caption_scores` of the model's captions of n scenes of ``split`` ("test", or "heldout":
    every object a colour-shape pair no training caption names)."""
    batch = sample_scenes(n, seed=seed, split=split, min_objects=min_objects, max_objects=max_objects)
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
def zero_shot_hits(model: BLIP, n: int = 600, seed: int = 1) -> torch.Tensor:
    """Notebook 04's zero-shot test: (n,) bool, top-1 right over the 30 colour x shape classes on n
    single-object test scenes, each class's text feature the mean over the "scene" prompt templates."""
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
    return pred == shapes_class_index(pairs.colour, pairs.shape)


def zero_shot_accuracy(model: BLIP, n: int = 600, seed: int = 1) -> float:
    """The share of :func:`zero_shot_hits`."""
    return float(zero_shot_hits(model, n, seed).float().mean())


@torch.no_grad()
def rerank_retrieval(model: BLIP, n: int = 1000, seed: int = 2, k: int = 8) -> dict[str, torch.Tensor]:
    """Retrieval as BLIP does it: ITC ranks everything, ITM re-ranks ITC's top ``k``.

    Notebook 04's retrieval test (n single-object test scenes and their captions). For each image
    (image->text) and each caption (text->image), ITC's cosine similarities pick the ``k`` best
    candidates; each is scored again as ITM's match logit plus the ITC similarity (BLIP's
    ``train_retrieval.py``: ``itm_head(...)[:, 1] + topk_sim``). A candidate is right when it
    names the scene's shape, colour, size and position. Returns (n,) bool hits at rank 1:
    ``i2t_itc``, ``i2t_rerank``, ``t2i_itc``, ``t2i_rerank``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in 1..n ({n}), got {k!r}")
    model.eval()
    pairs = sample_pairs(n, seed=seed, data="named", split="test")
    tokens = tokenizer_for(model)(pairs.captions)
    image_tokens = torch.cat([model.encode_image(pairs.images[i : i + 500]) for i in range(0, n, 500)])  # (n, T, Dv)
    sim = model.image_features(image_tokens) @ model.text_features(tokens).T                            # (n, n)
    attrs = pairs.attributes
    rel = (attrs[:, None, :] == attrs[None, :, :]).all(dim=-1)                                          # (n, n)
    out = {}
    for direction, s in (("i2t", sim), ("t2i", sim.T)):
        top_sim, top_idx = s.topk(k, dim=1)                                                              # (n, k)
        rows = torch.arange(n)[:, None].expand(n, k)
        img_idx, txt_idx = (rows, top_idx) if direction == "i2t" else (top_idx, rows)
        logits = torch.cat([model.itm_logits(image_tokens[img_idx.flatten()[i : i + 2000]],
                                             tokens[txt_idx.flatten()[i : i + 2000]])[:, 1]
                            for i in range(0, n * k, 2000)]).view(n, k)
        best = top_idx.gather(1, (logits + top_sim).argmax(1, keepdim=True)).squeeze(1)                  # (n,)
        out[f"{direction}_itc"] = rel[torch.arange(n), top_idx[:, 0]] if direction == "i2t" else rel.T[torch.arange(n), top_idx[:, 0]]
        out[f"{direction}_rerank"] = rel[torch.arange(n), best] if direction == "i2t" else rel.T[torch.arange(n), best]
    return out


# ------------------------------------------------------------------------- the shipped numbers
# Draws per protocol seed (mmcourse.protocol: 5 seeds per part, so 5x these numbers in all).
PROTOCOL_DRAWS = {"caption_single": 400, "caption_multi": 300, "heldout": 200, "matching_single": 300,
                  "matching_multi": 300, "retrieval": 1000, "zero_shot": 300}
RERANK_K = 8


def clustered_mean(values: torch.Tensor, cluster: torch.Tensor) -> Estimate:
    """The mean of per-comparison values (1/0 for a share of wins, or ITM's win minus ITC's), with a
    standard error that treats each ``cluster`` (a scene with several comparisons) as one
    independent item: sqrt(sum_c (w_c - p m_c)^2) / sum_c m_c, where scene c has m_c comparisons
    whose values sum to w_c. n is the number of clusters."""
    won = values.double().flatten()
    _, c = torch.unique(cluster.flatten(), return_inverse=True)
    m = torch.zeros(int(c.max()) + 1, dtype=torch.float64).index_add_(0, c, torch.ones_like(won))
    w = torch.zeros_like(m).index_add_(0, c, won)
    p = float(w.sum() / m.sum())
    return Estimate(p, float(((w - p * m) ** 2).sum().sqrt() / m.sum()), len(m))


def protocol_metrics(model: BLIP, part: str, k_seeds: int | None = None) -> dict[str, Estimate]:
    """Every number the registry stores for a BLIP, pooled over ``part``'s protocol seeds.

    ``part``: "val" (choices), "test" (the registry) or "check" (``make weights-check``); see
    :mod:`mmcourse.protocol`. Each seed draws :data:`PROTOCOL_DRAWS` scenes of each kind.
    Captions are greedy; one-word-change matching uses :func:`one_word_comparisons`, its
    standard error clustered by scene (:func:`clustered_mean`); ``itm_minus_itc_one_word_*`` is
    the paired difference (comparisons ITM alone wins minus those ITC alone wins, per comparison). ``heldout``: single-object
    scenes whose colour-shape pair no training caption names (ShapesWorld's "heldout" split).
    """
    seeds = protocol_seeds("blip", part, *(() if k_seeds is None else (k_seeds,)))
    d = PROTOCOL_DRAWS
    acc: dict[str, list[torch.Tensor]] = {}

    def add(key: str, value: torch.Tensor) -> None:
        acc.setdefault(key, []).append(value)

    model.eval()
    for s in seeds:
        one = sample_scenes(d["caption_single"], seed=s, split="test", min_objects=1, max_objects=1)
        add("caption_single_all_right", caption_outcomes(generate_captions(model, one.images), one)["all_right"])
        multi = sample_scenes(d["caption_multi"], seed=s, split="test", min_objects=2, max_objects=3)
        o = caption_outcomes(generate_captions(model, multi.images), multi)
        add("caption_multi_all_right", o["all_right"])
        for j, a in enumerate(ATTRIBUTES):
            add(f"caption_multi_{a}", o["attributes"][:, j])
        held = sample_scenes(d["heldout"], seed=s, split="heldout", min_objects=1, max_objects=1)
        add("caption_heldout_all_right", caption_outcomes(generate_captions(model, held.images), held)["all_right"])
        for label, split, lo, hi, n in (("single", "test", 1, 1, d["matching_single"]),
                                        ("multi", "test", 2, 3, d["matching_multi"]),
                                        ("heldout", "heldout", 1, 1, d["heldout"])):
            c = one_word_comparisons(model, sample_scenes(n, seed=s, split=split, min_objects=lo, max_objects=hi), s)
            scene = c["scene"] + 1_000_000 * s                      # scenes of different seeds are different
            add(f"itm_one_word_{label}", c["itm_won"])
            add(f"itc_one_word_{label}", c["itc_won"])
            add(f"_scene_{label}", scene)
            if label == "single":
                add("itm_reject_single", c["itm_changed"] < 0.5)
                add("itm_accept_single", c["itm_true"] >= 0.5)
        r = rerank_retrieval(model, d["retrieval"], seed=s, k=RERANK_K)
        add("i2t_attribute_r1", r["i2t_itc"])
        add("t2i_attribute_r1", r["t2i_itc"])
        add("i2t_rerank_r1", r["i2t_rerank"])
        add("t2i_rerank_r1", r["t2i_rerank"])
        add("zero_shot", zero_shot_hits(model, d["zero_shot"], seed=s))
    out = {}
    for key, values in acc.items():
        if key.startswith("_scene_"):
            continue
        won = torch.cat(values)
        label = key.rsplit("_", 1)[-1]
        if key.startswith(("itm_one_word_", "itc_one_word_")):
            scene = torch.cat(acc[f"_scene_{label}"])
            out[key] = clustered_mean(won, scene)
            if key.startswith("itm_"):
                diff = won.double() - torch.cat(acc[f"itc_one_word_{label}"]).double()
                out[f"itm_minus_itc_one_word_{label}"] = clustered_mean(diff, scene)
        else:
            out[key] = proportion(won)
    return out


# ------------------------------------------------------------------------- the LM loss, read apart
def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def _template_captions(batch: SceneBatch, i: int) -> list[str]:
    """Every caption ShapesWorld could write for single-object scene i (one per template)."""
    (o,) = scene_objects(batch, i)
    phrase = f"{o['size']} {o['colour']} {o['shape']}"
    return [scene.format(objects=clause.format(phrase=phrase, where=POSITION_PHRASES[o["position"]]))
            for scene, clause in CAPTION_TEMPLATES]


@torch.no_grad()
def lm_loss_parts(model: BLIP, batch: SceneBatch) -> dict[str, float]:
    """The LM loss of single-object scenes, read apart (nats per predicted token).

    - ``lm``: the training loss (label-smoothed cross-entropy) of the scenes' own captions;
    - ``floor``: the least that loss can be. The caption of a single-object scene is fixed by the
      scene and one of the 5 templates, drawn uniformly, so at each token the true next-token
      distribution P is known (1 where the words are fixed, shares of the templates where they
      differ); a smoothed target ``(1 - eps) P + eps / V`` costs at least its entropy. Averaged
      over every token of every template's caption;
    - ``floor_smoothing``: the same if the template were known (P one-hot everywhere): the
      entropy of the smoothed one-hot target alone, ``-(1-eps+eps/V) ln(1-eps+eps/V) - (V-1) eps/V ln(eps/V)``;
    - ``shape_ce``: the unsmoothed cross-entropy of the shape word alone, given the true words
      before it (the image fixes the word, so a decoder that minimises the smoothed loss pays
      ``-ln(1 - eps + eps / V)``, about 0.10, and no more), ``shape_excess``: the shape word's
      share of ``lm - floor``, in the same units: its smoothed loss above the floor there (the
      KL divergence from the smoothed one-hot target, mean over scenes) divided by the tokens per
      caption, and ``shape_wrong``: the share of scenes whose most likely shape word is wrong.
    """
    if not bool((batch.valid.sum(1) == 1).all()):
        raise ValueError("batch must hold single-object scenes only (min_objects = max_objects = 1)")
    model.eval()
    tok = tokenizer_for(model)
    eps, V = model.cfg.label_smoothing, model.cfg.text.vocab_size
    pad = model.cfg.text.pad_token_id
    tokens = _trim(tok(list(batch.captions), argument="captions"))
    logits = model.lm_logits(model.encode_image(batch.images), tokens)                      # (B, L, V)
    targets = lm_targets(tokens, pad)                                                         # (B, L)
    lm = float(lm_loss(logits, tokens, pad, eps))
    # the shape word: the target position whose token is a shape name
    shape_ids = torch.tensor([tok.stoi[s] for s in SHAPES])
    at_shape = torch.isin(targets, shape_ids)                                                 # (B, L), one per row
    logp = logits.log_softmax(-1)[at_shape]                                                   # (B, V)
    true = targets[at_shape]
    shape_ce = float(-logp.gather(1, true[:, None]).mean())
    shape_wrong = float((logp.argmax(-1) != true).float().mean())
    # the floor, template by template
    total = total_smooth = count = 0.0
    h_onehot = float(_entropy(torch.full((V,), eps / V) + (1 - eps) * torch.eye(V)[0]))
    for i in range(len(batch)):
        seqs = [[j for j in row.tolist()[1:] if j != pad] for row in tok(_template_captions(batch, i))]  # words, [SEP]
        for s in seqs:
            for t in range(len(s)):
                same = [r for r in seqs if r[:t] == s[:t]]
                p = torch.zeros(V)
                for r in same:
                    p[r[t]] += 1.0 / len(same)
                total += float(_entropy((1 - eps) * p + eps / V))
                total_smooth += h_onehot
                count += 1
    tokens_per_caption = float((targets != IGNORE).sum()) / len(batch)
    # the smoothed loss at the shape word minus its floor there (the image fixes the word: P one-hot)
    shape_kl = float(F.cross_entropy(logp, true, label_smoothing=eps)) - h_onehot
    shape_excess = shape_kl / tokens_per_caption
    return {"lm": lm, "floor": total / count, "floor_smoothing": total_smooth / count, "shape_ce": shape_ce,
            "shape_excess": shape_excess, "shape_wrong": shape_wrong}

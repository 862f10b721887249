"""CapFilt on ShapesWorld, end to end: corrupt captions, pretrain, fine-tune a captioner and a
filter on a small clean set, bootstrap a new training set, pretrain on it, compare.

``bench/blip.py`` runs the full size (``python -m bench.blip capfilt``), notebook 05 a small one.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from ..protocol import Estimate, proportion
from ..protocol import seeds as protocol_seeds
from .captions import caption_outcomes, content_key, one_word_change, parse_caption, sample_scenes
from .evaluate import PROTOCOL_DRAWS, clustered_mean, generate_captions, one_word_comparisons, rerank_retrieval, zero_shot_hits
from .model import BLIP
from .train import PairSet, tokenizer_for, train_blip


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


def filter_estimates(keep: torch.Tensor, corrupted: torch.Tensor) -> dict[str, Estimate]:
    """How well a filter finds corrupted captions, with binomial standard errors: ``precision``, the
    share of the rejected captions that were corrupted; ``recall``, the share of the corrupted
    captions that were rejected; ``kept``, the share kept. An empty denominator gives value 0, n 0."""
    rejected = ~keep
    empty = Estimate(0.0, 0.0, 0)
    return {"precision": proportion(corrupted[rejected]) if bool(rejected.any()) else empty,
            "recall": proportion(rejected[corrupted]) if bool(corrupted.any()) else empty,
            "kept": proportion(keep)}


def filter_quality(keep: torch.Tensor, corrupted: torch.Tensor) -> dict[str, float]:
    """The values of :func:`filter_estimates`: precision and recall of "rejected" against "corrupted", share kept."""
    return {k: e.value for k, e in filter_estimates(keep, corrupted).items()}


# Draws per protocol seed for the CapFilt comparison (the registry's sizes, mmcourse.blip.evaluate.PROTOCOL_DRAWS).
CAPFILT_DRAWS = {k: PROTOCOL_DRAWS[k] for k in ("zero_shot", "retrieval", "caption_single", "matching_single")}


def capfilt_metrics(model: BLIP, part: str = "test", k_seeds: int | None = None,
                    draws: dict[str, int] | None = None) -> dict[str, Estimate]:
    """The measurements CapFilt compares, pooled over ``part``'s protocol seeds (the draws of the
    registry's numbers, :func:`mmcourse.blip.evaluate.protocol_metrics`): zero-shot over the 30
    classes, image->text recall@1 by ITC, greedy captions of single objects all right, and ITM's
    true caption over a one-word-changed one (standard error clustered by scene)."""
    d = dict(CAPFILT_DRAWS, **(draws or {}))
    if set(d) != set(CAPFILT_DRAWS):
        raise ValueError(f"draws must name some of {sorted(CAPFILT_DRAWS)}, got {sorted(draws)}")
    model.eval()
    acc: dict[str, list[torch.Tensor]] = {"zero_shot": [], "i2t_attribute_r1": [], "caption_all_right": [],
                                          "itm_one_word": [], "scene": []}
    for s in protocol_seeds("blip", part, *(() if k_seeds is None else (k_seeds,))):
        acc["zero_shot"].append(zero_shot_hits(model, d["zero_shot"], seed=s))
        acc["i2t_attribute_r1"].append(rerank_retrieval(model, d["retrieval"], seed=s, k=1)["i2t_itc"])
        one = sample_scenes(d["caption_single"], seed=s, split="test", min_objects=1, max_objects=1)
        acc["caption_all_right"].append(caption_outcomes(generate_captions(model, one.images), one)["all_right"])
        c = one_word_comparisons(model, sample_scenes(d["matching_single"], seed=s, split="test", min_objects=1,
                                                      max_objects=1), s)
        acc["itm_one_word"].append(c["itm_won"])
        acc["scene"].append(c["scene"] + 1_000_000 * s)
    out = {k: proportion(torch.cat(acc[k])) for k in ("zero_shot", "i2t_attribute_r1", "caption_all_right")}
    out["itm_one_word"] = clustered_mean(torch.cat(acc["itm_one_word"]), torch.cat(acc["scene"]))
    return out


def capfilt_experiment(n_images: int = 2000, noise: float = 0.4, clean_share: float = 0.05, steps: int = 500,
                       finetune_steps: int = 150, batch_size: int = 64, threshold: float = 0.5, seed: int = 0,
                       min_objects: int = 1, max_objects: int = 1, eval_part: str = "test", eval_seeds: int | None = None,
                       eval_draws: dict[str, int] | None = None, progress: bool = True) -> dict:
    """BLIP's CapFilt on ShapesWorld, end to end (bench/blip.py runs the full size, the notebook a small one).

    1. ``n_images`` training scenes (``min_objects``..``max_objects`` objects); a share ``noise`` of their captions corrupted
       (:func:`corrupt_captions`); pretrain on the noisy set.
    2. A clean subset (``clean_share`` of the images, true captions): fine-tune a copy of the
       model as captioner (LM only) and one as filter (ITC + ITM), as BLIP does on COCO.
    3. Caption every image (nucleus sampling), filter the original and the synthetic captions
       (ITM probability >= ``threshold``), pretrain a new model on what survives plus the clean set.
    4. Pretrain on the true captions for comparison; measure all three (:func:`capfilt_metrics` on
       ``eval_part``'s protocol draws, ``eval_seeds`` seeds of ``eval_draws`` scenes).

    Every number comes with its standard error (``Estimate.to_dict``): the filter's over the
    ``n_images`` captions it judged, the models' over the protocol draws. Both are errors of
    measurement within one training run (``seed``), not the spread between runs.
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
    results = {name: capfilt_metrics(m, eval_part, eval_seeds, eval_draws)
               for name, m in (("noisy", m_noisy), ("bootstrapped", m_boot), ("clean", m_clean))}
    gap = results["clean"]["zero_shot"].value - results["noisy"]["zero_shot"].value
    return {
        "recipe": dict(n_images=n_images, noise=noise, clean_share=clean_share, steps=steps, finetune_steps=finetune_steps,
                       batch_size=batch_size, threshold=threshold, seed=seed, objects=[min_objects, max_objects]),
        "filter": {k: e.to_dict() for k, e in filter_estimates(keep_web, corrupted).items()},
        "filter_by_threshold": {f"{t:.1f}": filter_quality(p_web >= t, corrupted) for t in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)},
        "synthetic": {"right": float(synthetic_right.float().mean()), "kept": float(keep_syn.float().mean()),
                      "right_among_kept": float(synthetic_right[keep_syn].float().mean()) if keep_syn.any() else 0.0},
        "bootstrapped_set": {"pairs": len(boot_caps), "right": float(boot_right.float().mean())},
        "noisy_set_right": float((~corrupted).float().mean()),
        "eval": {"part": eval_part, "seeds": list(protocol_seeds("blip", eval_part, *(() if eval_seeds is None else (eval_seeds,)))),
                 "draws_per_seed": dict(CAPFILT_DRAWS, **(eval_draws or {}))},
        "models": {name: {k: e.to_dict() for k, e in m.items()} for name, m in results.items()},
        "zero_shot_gap_recovered": (results["bootstrapped"]["zero_shot"].value - results["noisy"]["zero_shot"].value) / gap
                                   if gap > 0 else None,
        "examples": [{"web": noisy[i], "corrupted": bool(corrupted[i]), "p_web": round(float(p_web[i]), 3),
                      "synthetic": synthetic[i], "kept_web": bool(keep_web[i]), "kept_synthetic": bool(keep_syn[i])}
                     for i in range(8)],
        "seconds": time.perf_counter() - t0,
    }


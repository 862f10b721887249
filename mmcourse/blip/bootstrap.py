"""CapFilt on ShapesWorld, end to end: corrupt captions, pretrain, fine-tune a captioner and a
filter on a small clean set, bootstrap a new training set, pretrain on it, compare.

``bench/blip.py`` runs the full size (``python -m bench.blip capfilt``), notebook 05 a small one.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from .captions import content_key, one_word_change, parse_caption, sample_scenes
from .evaluate import caption_accuracy, generate_captions, matching_accuracy, retrieval_r1, zero_shot_accuracy
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


def filter_quality(keep: torch.Tensor, corrupted: torch.Tensor) -> dict[str, float]:
    """How well a filter finds corrupted captions: precision and recall of "rejected" against "corrupted"."""
    rejected = ~keep
    hit = float((rejected & corrupted).sum())
    return {"precision": hit / max(1.0, float(rejected.sum())), "recall": hit / max(1.0, float(corrupted.sum())),
            "kept": float(keep.float().mean())}


def capfilt_metrics(model: BLIP, n: int = 500) -> dict[str, float]:
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
    4. Pretrain on the true captions for comparison; measure all three (:func:`capfilt_metrics`).
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
    results = {name: capfilt_metrics(m, eval_n) for name, m in (("noisy", m_noisy), ("bootstrapped", m_boot), ("clean", m_clean))}
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


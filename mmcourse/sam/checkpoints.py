"""Builders of the SAM topic's shipped checkpoints (found by ``python -m mmcourse.weights.build``),
their protocol evaluators (``EVALUATORS``, for the builder and ``make weights-check``) and targets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
CURVES = ROOT / "bench" / "results" / "sam_training.json"
# Issue 11's targets (seen shapes; held-out shape type). Issue 26's targets are reported, not
# enforced: text on seen phrases >= 0.75 (``sam_shapes``: 0.14, below the 0.40 of a mask of every
# object; ``sam_shapes_text``, trained for text: 0.766 ± 0.009 on the test draws, its recipe at
# training seed 1 0.728 ± 0.009, bench ``text_seed``: not met) and tracking >= 0.80 over 40 clips
# (``sam_shapes`` with 12 overlap scenes a step, the box rule with frame 1's margin 3: 0.82 ± 0.01 on
# the test and the check clips; the per-frame oracle box 0.85).
TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "sam_shapes": {"seen_1click_miou": {"min": 0.92}, "seen_box_miou": {"min": 0.92},
                   "heldout_1click_miou": {"min": 0.78}},
    "sam_shapes_text": {},
}


def evaluate_sam_shapes(part: str, sam=None) -> dict:
    """The protocol metrics of the shipped ``sam_shapes`` (or of ``sam``) on ``part``'s seeds:
    200 scenes at each of 5 seeds, pooled (:func:`mmcourse.sam.evaluate.evaluate`), and the tracking
    rules over 4 clips at each seed (:func:`evaluate_tracking`)."""
    from .evaluate import evaluate
    from .train import load_sam

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sam = load_sam() if sam is None else sam
        return {**evaluate(sam, part), **evaluate_tracking(sam, part)}
    finally:
        torch.set_num_threads(threads)


# The tracker's rule (notebook 06, bench ``tracking``): the box where the object should be, without
# the previous mask as the dense prompt; its margin, tolerance and frame-1 margin chosen on validation clips.
TRACK_RULE = dict(rule="box", margin=1.0, tolerance=0.5, dense=False, first_margin=3.0)


@torch.no_grad()
def evaluate_tracking(sam, part: str, per_seed: int = 8) -> dict:
    """mIoU per clip over ``per_seed`` clips at each of ``part``'s seeds (:func:`mmcourse.sam.track.clip_set`:
    half passing behind a large object, half in front) for three rules: today's
    (:data:`TRACK_RULE`), click + mask (the first rule) and the per-frame oracle box (its ceiling)."""
    from ..protocol import mean, seeds
    from .track import clip_set, track

    clips = clip_set(seeds("sam", part), per_seed)
    rules = {"tracking_miou": TRACK_RULE, "tracking_click_mask_miou": dict(rule="click+mask"),
             "tracking_oracle_box_miou": dict(rule="oracle box")}
    return {name: mean([track(sam, c, k, **kw)["miou"] for c, k, _ in clips]) for name, kw in rules.items()}


def evaluate_sam_shapes_text(part: str, sam=None) -> dict:
    """The protocol metrics of ``sam_shapes_text`` (or of ``sam``) on ``part``'s seeds: those of
    :func:`mmcourse.sam.evaluate.evaluate` (text moved across the stored modality gap, and as CLIP
    gives it), and which word of the phrase its text prompt reads (:func:`mmcourse.sam.evaluate.twin_choice`,
    100 scenes at each seed): ``twin_shape_word_picks``, the share of scenes where the mask covers the
    named object better than a twin of its colour and another shape, and ``twin_colour_word_picks``,
    against a twin of its shape and another colour (chance 0.5 each)."""
    from ..protocol import proportion, seeds
    from .evaluate import evaluate, twin_choice
    from .train import TEXT_CHECKPOINT, load_sam

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sam = load_sam(TEXT_CHECKPOINT) if sam is None else sam
        out = evaluate(sam, part)
        for same, word in (("colour", "shape"), ("shape", "colour")):
            picks = [twin_choice(sam, 100, s, same)["picks"] for s in seeds("sam", part)]
            out[f"twin_{word}_word_picks"] = proportion(torch.cat(picks))
        return out
    finally:
        torch.set_num_threads(threads)


EVALUATORS = {"sam_shapes": evaluate_sam_shapes, "sam_shapes_text": evaluate_sam_shapes_text}


def _train(name: str, recipe, cfg=None):
    """Train one checkpoint's recipe on one thread; keep its weights and curve in build/ before
    anything is measured (a run that misses its targets is kept to study). (model, curve)."""
    from safetensors.torch import save_file

    from .train import train_sam

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu0 = time.process_time()
        sam, hist, seconds = train_sam(recipe, cfg=cfg, desc=name)
        cpu = time.process_time() - cpu0
    finally:
        torch.set_num_threads(threads)
    last = ROOT / "build" / f"{name}_last.safetensors"
    last.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(last))
    smooth = hist.smoothed(50)
    idx = np.linspace(0, len(smooth) - 1, 100).round().astype(int)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    curve = {"recipe": recipe.__dict__, "train_cpu_s": round(cpu, 1), "train_wall_s": round(seconds, 1),
             "threads": 1, "loadavg_at_end": load, "step": (idx + 1).tolist(),
             "loss": [round(float(v), 4) for v in smooth[idx]], "final_loss": round(hist.final(), 4)}
    last.with_suffix(".json").write_text(json.dumps(curve) + "\n")
    return sam, curve


def build_sam_shapes(steps: int | None = None) -> dict:
    """Notebook 06's SAM: the interactive recipe of :mod:`mmcourse.sam.train`, one thread; its
    numbers measured by :func:`evaluate_sam_shapes` on the protocol's test draws."""
    from .train import CHECKPOINT, Recipe

    sam, curve = _train(CHECKPOINT, Recipe() if steps is None else Recipe(steps=steps))
    return register_sam_shapes(sam, curve)


def build_sam_shapes_text() -> dict:
    """Notebook 06's text-prompt SAM: :data:`mmcourse.sam.train.TEXT_SLOT_RECIPE` with
    :func:`mmcourse.sam.train.text_slot_config` (the modality gap computed from training data and
    stored with the weights), one thread; measured by :func:`evaluate_sam_shapes_text`."""
    from .train import TEXT_CHECKPOINT, TEXT_SLOT_RECIPE, text_slot_config

    sam, curve = _train(TEXT_CHECKPOINT, TEXT_SLOT_RECIPE, text_slot_config())
    return register_sam_shapes(sam, curve, name=TEXT_CHECKPOINT)


def register_sam_shapes(sam, curve: dict, targets: dict | None = None, name: str | None = None) -> dict:
    """Measure ``sam`` on the test draws, enforce ``targets`` (default :data:`TARGETS` of ``name``,
    default ``sam_shapes``) and register it with its training curve."""
    from ..weights import save
    from .train import CHECKPOINT

    name = name or CHECKPOINT
    metrics = EVALUATORS[name]("test", sam)
    print({k: str(v) for k, v in metrics.items()}, f"{curve['train_cpu_s']:.0f} s CPU")
    targets = TARGETS[name] if targets is None else targets
    missed = {k: str(metrics[k]) for k, t in targets.items() if metrics[k].value < t["min"]}
    if missed:
        raise RuntimeError(f"{name} missed its targets {targets}: {missed} (weights kept in build/{name}_last.safetensors)")
    metrics.update(train_cpu_s=curve["train_cpu_s"], train_wall_s=curve["train_wall_s"], final_loss=curve["final_loss"])
    save(name, sam.state_dict(), sam.cfg.to_dict(), f"python -m mmcourse.weights.build {name}", metrics,
         targets=targets)
    curves = json.loads(CURVES.read_text()) if CURVES.exists() else {}
    curves[name] = curve
    CURVES.parent.mkdir(parents=True, exist_ok=True)
    CURVES.write_text(json.dumps(curves, indent=1) + "\n")
    return metrics


BUILDERS = {"sam_shapes": build_sam_shapes, "sam_shapes_text": build_sam_shapes_text}

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
LAST = ROOT / "build" / "sam_shapes_last.safetensors"
# Issue 11's targets (seen shapes; held-out shape type). Issue 26's targets are not met and so are
# reported, not enforced: text on seen phrases >= 0.75 (the shipped model: 0.09, below the 0.40 of
# a mask of every object; a build giving text 14 of 32 prompts at twice the weight reached 0.59 but
# cost the click and box targets, README maintainer notes; bench ``text_gap`` stores issue 26's
# text-slot recipe, not shipped) and tracking >= 0.80 over 40 clips (the box rule with frame 1's
# margin 3: 0.77 ± 0.02, the per-frame oracle box 0.83 ± 0.01: the ceiling is segmentation).
TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "sam_shapes": {"seen_1click_miou": {"min": 0.92}, "seen_box_miou": {"min": 0.92},
                   "heldout_1click_miou": {"min": 0.78}},
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


EVALUATORS = {"sam_shapes": evaluate_sam_shapes}


def build_sam_shapes(steps: int | None = None) -> dict:
    """Notebook 06's SAM: the interactive recipe of :mod:`mmcourse.sam.train`, one thread; its
    numbers measured by :func:`evaluate_sam_shapes` on the protocol's test draws."""
    from .train import CHECKPOINT, Recipe, train_sam

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = Recipe() if steps is None else Recipe(steps=steps)
        cpu0 = time.process_time()
        sam, hist, seconds = train_sam(recipe, desc=CHECKPOINT)
        cpu = time.process_time() - cpu0
    finally:
        torch.set_num_threads(threads)
    # keep the weights and the curve before measuring: a run that misses its targets is kept to study
    from safetensors.torch import save_file

    LAST.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(LAST))
    smooth = hist.smoothed(50)
    idx = np.linspace(0, len(smooth) - 1, 100).round().astype(int)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    curve = {"recipe": recipe.__dict__, "train_cpu_s": round(cpu, 1), "train_wall_s": round(seconds, 1),
             "threads": 1, "loadavg_at_end": load, "step": (idx + 1).tolist(),
             "loss": [round(float(v), 4) for v in smooth[idx]], "final_loss": round(hist.final(), 4)}
    LAST.with_suffix(".json").write_text(json.dumps(curve) + "\n")
    return register_sam_shapes(sam, curve)


def register_sam_shapes(sam, curve: dict, targets: dict | None = None) -> dict:
    """Measure ``sam`` on the test draws, enforce ``targets`` (default :data:`TARGETS`) and register
    it with its training curve."""
    from ..weights import save
    from .train import CHECKPOINT

    metrics = evaluate_sam_shapes("test", sam)
    print({k: str(v) for k, v in metrics.items()}, f"{curve['train_cpu_s']:.0f} s CPU")
    targets = TARGETS[CHECKPOINT] if targets is None else targets
    missed = {k: str(metrics[k]) for k, t in targets.items() if metrics[k].value < t["min"]}
    if missed:
        raise RuntimeError(f"{CHECKPOINT} missed its targets {targets}: {missed} (weights kept in {LAST})")
    metrics.update(train_cpu_s=curve["train_cpu_s"], train_wall_s=curve["train_wall_s"], final_loss=curve["final_loss"])
    save(CHECKPOINT, sam.state_dict(), sam.cfg.to_dict(), f"python -m mmcourse.weights.build {CHECKPOINT}", metrics,
         targets=targets)
    CURVES.parent.mkdir(parents=True, exist_ok=True)
    CURVES.write_text(json.dumps({CHECKPOINT: curve}, indent=1) + "\n")
    return metrics


BUILDERS = {"sam_shapes": build_sam_shapes}

"""Builders of the SAM topic's shipped checkpoints (found by ``python -m mmcourse.weights.build``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

CURVES = Path(__file__).resolve().parents[2] / "bench" / "results" / "sam_training.json"
LAST = Path(__file__).resolve().parents[2] / "build" / "sam_shapes_last.safetensors"
# Targets of issue 11 (seen shapes, 500 test scenes; held-out shape type). The earlier patch-8
# checkpoint (1,500 steps) stopped at 0.901 / 0.906 / 0.784, and 3,000 steps reached only 0.913 /
# 0.919 (bench/results/sam_longer_run.json): its 8 x 8 token grid was the limit. Patch 4 (16 x 16
# tokens, 64 x 64 low-res masks) meets them in 800 steps; the builder enforces them.
ISSUE_TARGETS = {"seen_1click_miou": 0.92, "seen_box_miou": 0.92, "heldout_1click_miou": 0.78}
TARGETS = ISSUE_TARGETS


def build_sam_shapes(steps: int | None = None) -> dict[str, float]:
    """Notebook 06's SAM: the interactive recipe of :mod:`mmcourse.sam.tasks`, one thread."""
    from ..weights import save
    from .tasks import CHECKPOINT, Recipe, evaluate, train_sam

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = Recipe() if steps is None else Recipe(steps=steps)
        sam, hist, seconds = train_sam(recipe, desc=CHECKPOINT)
        metrics = evaluate(sam)
    finally:
        torch.set_num_threads(threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print({k: round(v, 4) for k, v in metrics.items()}, f"{seconds:.0f} s, load {load}")
    # keep the weights of a run that misses its targets too (not registered), to study them
    from safetensors.torch import save_file

    LAST.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(LAST))
    missed = {k: round(metrics[k], 4) for k, v in TARGETS.items() if metrics[k] < v}
    if missed:
        raise RuntimeError(f"{CHECKPOINT} missed its targets {TARGETS}: {missed}")
    metrics.update(train_seconds=seconds, final_loss=hist.final())
    save(CHECKPOINT, sam.state_dict(), sam.cfg.to_dict(), f"python -m mmcourse.weights.build {CHECKPOINT}", metrics)
    smooth = hist.smoothed(50)
    idx = np.linspace(0, len(smooth) - 1, 100).round().astype(int)
    CURVES.parent.mkdir(parents=True, exist_ok=True)
    CURVES.write_text(json.dumps({
        CHECKPOINT: {"recipe": recipe.__dict__, "train_seconds": round(seconds, 1), "threads": 1,
                     "loadavg_at_end": load, "step": idx.tolist(),
                     "loss": [round(float(v), 4) for v in smooth[idx]]}}, indent=1) + "\n")
    return metrics


BUILDERS = {"sam_shapes": build_sam_shapes}

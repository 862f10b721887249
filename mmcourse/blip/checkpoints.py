"""Builders of the BLIP topic's shipped checkpoint (found by ``python -m mmcourse.weights.build``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "blip_shapes"
CURVES = Path(__file__).resolve().parents[2] / "bench" / "results" / "blip_training.json"
# The recipe: fresh scenes every step, half of each batch single-object scenes and half 1-3
# objects (so 2/3 of the scenes hold one object); image encoder started from notebook 04's CLIP.
# With plain 1-3 object batches (single_share 0) the same 1,500 steps gave greedy single-object
# captions 0.76 all right and image->text R@1 0.928: the shape word was the one it got wrong.
# ITM's loss counts twice (BLIP weighs the three equally): with equal weights and the single-object
# half, ITM only tied ITC on one-word changes (0.934 against 0.9285 on 2-3 objects, 0.9975 each on
# 1; the plain mix had led by 2.1 points on 2-3 objects); doubled, it leads on both (0.9425 against
# 0.9195, 0.9985 against 0.9964), at a cost in 2-3-object caption words and zero-shot accuracy.
# One seed per recipe (bench/results/blip_recipe.json, python -m bench.blip recipe).
RECIPE = dict(steps=1500, batch_size=64, lr=1e-3, negatives="hard", vit_init="clip_shapes_named", single_share=0.5,
              weights={"itm": 2.0}, seed=0)
# Targets of issue 10 (single-object test scenes unless named); the build fails below them.
TARGETS = {"caption_single_all_right": 0.95, "itm_one_word_single": 0.95, "i2t_attribute_r1": 0.95}
GATES = TARGETS


def checkpoint_metrics(model) -> dict[str, float]:
    """Everything the issue asks of the shipped model, measured on the test split."""
    from .tasks import caption_accuracy, matching_accuracy, retrieval_r1, zero_shot_accuracy

    one = caption_accuracy(model, 500, min_objects=1, max_objects=1)
    multi = caption_accuracy(model, 500, min_objects=2, max_objects=3)
    m1 = matching_accuracy(model, 500, min_objects=1, max_objects=1)
    m3 = matching_accuracy(model, 500, min_objects=2, max_objects=3)
    out = {"caption_single_all_right": one["all_right"],
           **{f"caption_multi_{k}": v for k, v in multi.items()},
           "itm_one_word_single": m1["itm"], "itc_one_word_single": m1["itc"],
           "itm_one_word_multi": m3["itm"], "itc_one_word_multi": m3["itc"],
           "itm_reject_single": m1["itm_reject"], "itm_accept_single": m1["itm_accept"],
           **retrieval_r1(model), "zero_shot": zero_shot_accuracy(model)}
    return out


def build_blip_shapes(steps: int | None = None) -> dict[str, float]:
    """Notebook 05's BLIP: :data:`RECIPE`, one thread; saved only if it meets :data:`TARGETS`."""
    from ..weights import save
    from .tasks import train_blip

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = dict(RECIPE, **({} if steps is None else {"steps": steps}))
        t0 = time.perf_counter()
        model, curves = train_blip(progress=True, desc=CHECKPOINT, **recipe)
        seconds = time.perf_counter() - t0
        metrics = checkpoint_metrics(model)
    finally:
        torch.set_num_threads(threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print({k: round(v, 4) for k, v in metrics.items()}, f"{seconds:.0f} s, load {load}")
    missed = {k: round(metrics[k], 4) for k, v in GATES.items() if metrics[k] < v}
    # ITM above ITC on one-word changes: on single objects both sit near 100% (a tie is allowed),
    # on 2-3 objects, where the task is hard, ITM must be strictly better
    itm_wins = (metrics["itm_one_word_single"] >= metrics["itc_one_word_single"]
                and metrics["itm_one_word_multi"] > metrics["itc_one_word_multi"])
    if missed or not itm_wins:
        raise RuntimeError(f"{CHECKPOINT} missed its gates {GATES} (and ITM above ITC on one-word changes): {missed}, "
                           f"ITM {metrics['itm_one_word_single']:.4f} / {metrics['itm_one_word_multi']:.4f}, "
                           f"ITC {metrics['itc_one_word_single']:.4f} / {metrics['itc_one_word_multi']:.4f} (1 / 2-3 objects)")
    metrics.update(train_seconds=seconds)
    save(CHECKPOINT, model.unique_state_dict(), model.cfg.to_dict(), f"python -m mmcourse.weights.build {CHECKPOINT}",
         metrics)
    write_curves(curves, recipe, seconds, load)
    return metrics


def write_curves(curves: dict[str, list[float]], recipe: dict, seconds: float, load: list[str]) -> None:
    """The three loss curves (running mean over 50 steps, 100 points) for the notebook's plot."""
    idx = np.linspace(0, len(curves["itc"]) - 1, 100).round().astype(int)
    out = {"recipe": recipe, "train_seconds": round(seconds, 1), "threads": 1, "load": load, "step": idx.tolist()}
    for k in ("itc", "itm", "lm"):
        x = np.asarray(curves[k])
        c = np.cumsum(np.insert(x, 0, 0.0))
        lo = np.maximum(idx + 1 - 50, 0)
        out[k] = [round(float(v), 4) for v in (c[idx + 1] - c[lo]) / (idx + 1 - lo)]
    CURVES.parent.mkdir(parents=True, exist_ok=True)
    CURVES.write_text(json.dumps({CHECKPOINT: out}, indent=1) + "\n")


def load_blip(name: str = CHECKPOINT):
    """The shipped checkpoint (hash-checked by :func:`mmcourse.weights.load`), in eval mode."""
    from ..weights import load
    from .model import BLIP, BlipConfig

    state, entry = load(name)
    return BLIP(BlipConfig.from_dict(entry.config)).load_unique_state_dict(state)


BUILDERS = {CHECKPOINT: build_blip_shapes}

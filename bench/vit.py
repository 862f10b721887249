"""ViT benchmarks (``python -m bench.vit``; part of ``make bench``).

1. Forward speed: ``mmcourse.vit.VisionTransformer`` against timm's ``VisionTransformer`` with the
   same tiny config and the same weights, on CPU (target: ours within 1.3x of timm).
2. Inductive bias: test accuracy against training-set size for the notebook's ViT and a CNN of
   about the same parameter count, on ShapesWorld shapes and on the 8x8 digits, with the full
   training recipe of the notebook's ViTs. Notebook 03 shows this table; it does not fit the
   notebook's time.
3. Choices behind the notebook's live runs (``ablations``): the digits ViT with 4x4 against 2x2
   patches, and the ShapesWorld ViT on raw pixels, on pixels rescaled to [-1, 1] and after
   ``subtract_background``. Same data, seeds and learning rate as the notebook's cells, with the
   full number of steps: the notebook's live runs are shorter (digits 150 steps; shapes 300 steps
   of 64 scenes from 8,000, or this recipe with ``FULL_RUN = True``, which matches its row).

Results go to bench/results/vit_speed.json, vit_data_size.json and vit_ablations.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
SPEED_FILE = RESULTS / "vit_speed.json"
DATA_SIZE_FILE = RESULTS / "vit_data_size.json"
ABLATIONS_FILE = RESULTS / "vit_ablations.json"

# The full recipes (steps, learning rate) of the notebook's ViTs; the sweep changes only the training-set size.
SHAPES_SIZES = (250, 1000, 4000, 16000)
DIGITS_SIZES = (100, 300, 700, 1438)
SHAPES_RECIPE = dict(steps=600, lr=1e-3)
DIGITS_RECIPE = dict(steps=500, lr=2e-3)


def _import_timm():
    """timm imports torchvision; the venv's start-up hook (installed by make setup, see
    tests/_torchvision_compat.py) lets it import beside the CPU torch."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    return TimmViT


def forward_speed(batch: int = 256, calls: int = 200) -> dict:
    """Forward time (ms) of ours and timm's on the notebook's shapes config, same weights.

    The two models are called alternately, one call each at a time, so a busy machine (other
    jobs on the same cores) slows both alike. Reported: each model's fastest call (the least
    disturbed estimate of its own speed), the medians, and the median of the per-pair ratios.
    """
    from mmcourse.vit import ViTConfig, VisionTransformer
    from mmcourse.vit.tasks import SHAPES_VIT

    TimmViT = _import_timm()
    cfg: ViTConfig = SHAPES_VIT
    torch.manual_seed(0)
    theirs = TimmViT(img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                     num_classes=cfg.num_classes, embed_dim=cfg.embed_dim, depth=cfg.depth,
                     num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio).eval()
    ours = VisionTransformer(cfg).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0))
    ours_t, theirs_t = [], []
    with torch.no_grad():
        max_diff = (ours(x) - theirs(x)).abs().max().item()
        for _ in range(10):  # warm-up: the first calls allocate memory and pick kernels
            ours(x), theirs(x)
        for i in range(calls):
            for model, times in ((ours, ours_t), (theirs, theirs_t)) if i % 2 else ((theirs, theirs_t), (ours, ours_t)):
                t0 = time.perf_counter()
                model(x)
                times.append(1000 * (time.perf_counter() - t0))
    result = {
        "config": cfg.to_dict(), "batch": batch, "threads": torch.get_num_threads(), "calls": calls,
        "ours_ms_min": round(min(ours_t), 3), "timm_ms_min": round(min(theirs_t), 3),
        "ours_ms_median": round(statistics.median(ours_t), 3), "timm_ms_median": round(statistics.median(theirs_t), 3),
        "ratio_of_minima": round(min(ours_t) / min(theirs_t), 3),
        "median_pair_ratio": round(statistics.median(o / t for o, t in zip(ours_t, theirs_t)), 3),
        "max_logit_diff": max_diff,
    }
    print(f"\n| model | fastest forward, batch {batch} (ms) | median (ms) |\n|---|---:|---:|")
    print(f"| mmcourse.vit | {result['ours_ms_min']:.2f} | {result['ours_ms_median']:.2f} |")
    print(f"| timm | {result['timm_ms_min']:.2f} | {result['timm_ms_median']:.2f} |")
    print(f"ratio ours / timm: {result['ratio_of_minima']:.2f} (fastest calls), {result['median_pair_ratio']:.2f} "
          f"(median of pairs); target <= 1.3. Max logit difference {max_diff:.1e}")
    return result


def _train_and_score(kind: str, task: str, n: int, seed: int = 0) -> tuple[float, int, float]:
    """Train the notebook's ViT or the CNN baseline on the first n training examples; return
    (test accuracy, parameters, seconds)."""
    from mmcourse.train import seed_everything
    from mmcourse.vit import SmallCNN, VisionTransformer, count_parameters
    from mmcourse.vit.tasks import (
        CNN_FOR, DIGITS_VIT, SHAPES_VIT, accuracy, digits_task, shapes_task, subtract_background, train_classifier,
    )

    if task == "shapes":
        x, y, _ = shapes_task(n, seed=seed)
        xt, yt, _ = shapes_task(2000, seed=10_001, split="test")
        x, xt = subtract_background(x), subtract_background(xt)
        cfg, recipe = SHAPES_VIT, SHAPES_RECIPE
    else:
        x, y, xt, yt = digits_task()
        # A random subset: a seeded permutation, then the first n.
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        x, y = x[perm], y[perm]
        cfg, recipe = DIGITS_VIT, DIGITS_RECIPE
    seed_everything(seed)
    model = VisionTransformer(cfg) if kind == "vit" else SmallCNN(CNN_FOR[cfg.img_size])
    t0 = time.perf_counter()
    train_classifier(model, x, y, seed=seed, progress=False, **recipe)
    return accuracy(model, xt, yt), count_parameters(model), time.perf_counter() - t0


def data_size_sweep() -> dict:
    """Test accuracy of the ViT and the CNN against the number of training examples."""
    rows = []
    for task, sizes in (("shapes", SHAPES_SIZES), ("digits", DIGITS_SIZES)):
        for n in sizes:
            row = {"task": task, "train_size": n}
            for kind in ("vit", "cnn"):
                acc, params, seconds = _train_and_score(kind, task, n)
                row[f"{kind}_accuracy"] = round(acc, 4)
                row[f"{kind}_params"] = params
                row[f"{kind}_seconds"] = round(seconds, 1)
            rows.append(row)
            print(f"{task:6s} n={n:6d}  ViT {row['vit_accuracy']:.3f}  CNN {row['cnn_accuracy']:.3f}", flush=True)
    result = {"recipes": {"shapes": SHAPES_RECIPE, "digits": DIGITS_RECIPE}, "rows": rows}
    print("\n" + markdown_table(result))
    return result


def markdown_table(result: dict) -> str:
    """The data-size sweep as a markdown table (also used by notebook 03)."""
    lines = ["| task | training examples | ViT test accuracy | CNN test accuracy |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['task']} | {r['train_size']:,} | {r['vit_accuracy']:.1%} | {r['cnn_accuracy']:.1%} |")
    return "\n".join(lines)


SHAPES_INPUTS = {  # name -> preprocessing of images in [0, 1]
    "raw pixels in [0, 1]": lambda x: x,
    "rescaled to [-1, 1]": lambda x: 2 * x - 1,
    "background subtracted": None,  # mmcourse.vit.tasks.subtract_background (the notebook's choice)
}


def ablations(seed: int = 0) -> dict:
    """The notebook's two live runs with one choice changed: digits patch size 4 (the notebook's)
    or 2; ShapesWorld inputs raw, rescaled or background-subtracted (the notebook's). The data,
    seeds and learning rates are those of notebook 03's cells, the steps their full recipe's."""
    from dataclasses import replace

    from mmcourse.train import seed_everything
    from mmcourse.vit import VisionTransformer
    from mmcourse.vit.tasks import DIGITS_VIT, SHAPES_VIT, accuracy, digits_task, shapes_task, subtract_background, train_classifier

    rows = []
    x, y, xt, yt = digits_task()
    for patch in (4, 2):
        seed_everything(seed)
        model = VisionTransformer(replace(DIGITS_VIT, patch_size=patch))
        t0 = time.perf_counter()
        train_classifier(model, x, y, seed=seed, progress=False, **DIGITS_RECIPE)
        rows.append({"task": "digits", "choice": f"{patch}x{patch} patches", "notebook": patch == DIGITS_VIT.patch_size,
                     "accuracy": round(accuracy(model, xt, yt), 4), "seconds": round(time.perf_counter() - t0, 1)})
        print(rows[-1], flush=True)
    raw, y, _ = shapes_task(20_000, seed=0, split="train")      # notebook 03's training and test scenes
    raw_t, yt, _ = shapes_task(2_000, seed=1, split="test")
    for name, prep in SHAPES_INPUTS.items():
        prep = prep or subtract_background
        seed_everything(seed)
        model = VisionTransformer(SHAPES_VIT)
        t0 = time.perf_counter()
        train_classifier(model, prep(raw), y, seed=seed, progress=False, **SHAPES_RECIPE)
        rows.append({"task": "shapes", "choice": name, "notebook": name == "background subtracted",
                     "accuracy": round(accuracy(model, prep(raw_t), yt), 4), "seconds": round(time.perf_counter() - t0, 1)})
        print(rows[-1], flush=True)
    return {"recipes": {"shapes": SHAPES_RECIPE, "digits": DIGITS_RECIPE}, "seed": seed,
            "threads": torch.get_num_threads(), "rows": rows}


def run(parts: tuple[str, ...] = ("speed", "sweep", "ablations")) -> None:
    RESULTS.mkdir(exist_ok=True)
    if "speed" in parts:
        SPEED_FILE.write_text(json.dumps(forward_speed(), indent=2) + "\n")
    if "sweep" in parts:
        DATA_SIZE_FILE.write_text(json.dumps(data_size_sweep(), indent=2) + "\n")
    if "ablations" in parts:
        ABLATIONS_FILE.write_text(json.dumps(ablations(), indent=2) + "\n")


if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or ("speed", "sweep", "ablations"))

"""SAM benchmarks (``python -m bench sam``; part of ``make bench``). Notebook 06 shows the results.

1. ``speed``: encoder time per image and decoder time per prompt of the shipped ``sam_shapes``
   (one thread, medians).
2. ``ambiguity``: the single-output ablation, trained with the checkpoint's recipe and steps but
   one mask for every prompt, against the shipped 3-output model on ambiguous clicks (the clicked
   object is partly hidden or overlaps another, so part, whole and group differ): IoU against
   each level, for the best of 3, the highest predicted IoU and each output token.
3. ``refinement``: mIoU after 1-5 clicks, with and without the mask prompt fed back, on plain
   targets (the visible object) and on ambiguous ones (whole shape, group).
4. ``route``: everything mode (AP50 of boxes from masks), recognition of the crops by the shipped
   CLIP, and tracking a moving object through a clip by feeding each frame's mask forward.

5. ``longer`` (not in the default set: it trains 3,000 steps, ~14 min quiet, 27 min at load 4): the
   earlier patch-8 model (8 x 8 tokens, 32 x 32 low-res masks; shipped until patch 4 replaced it)
   at twice its 1,500 steps, not registered, and ``resolution_bound``, the IoU its 32 x 32 masks
   could reach at best: what showed that the token grid, not the mask resolution, was the limit.

Results go to bench/results/sam_*.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from mmcourse.sam.tasks import (LEVELS, Recipe, click_curve, eval_set, load_sam, mask_iou, predict_batch,
                                shapes_sam_config, train_sam)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SINGLE_CACHE = ROOT / "build" / "sam_single_output.safetensors"


def _save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"sam_{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def train_single(progress: bool = True):
    """The single-output ablation (cached in build/ so the measurements can be rerun)."""
    from safetensors.torch import load_file, save_file

    from mmcourse.sam import Sam

    cfg, recipe = shapes_sam_config(), Recipe(multimask=False)
    key = json.dumps({"config": cfg.to_dict(), "recipe": recipe.__dict__}, sort_keys=True, default=str)
    meta_path = SINGLE_CACHE.with_suffix(".json")
    if SINGLE_CACHE.exists() and meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        sam = Sam(cfg)
        sam.load_state_dict(load_file(str(SINGLE_CACHE)))
        meta = json.loads(meta_path.read_text())
        meta.pop("key")
        return sam.eval(), meta
    torch.set_num_threads(1)
    sam, hist, seconds = train_sam(recipe, cfg=cfg, progress=progress, desc="single-output SAM")
    SINGLE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(SINGLE_CACHE))
    meta = {"train_seconds": round(seconds, 1), "final_loss": round(hist.final(), 4), "load": _load(),
            "steps": recipe.steps}
    meta_path.write_text(json.dumps({**meta, "key": key}))
    return sam, meta


@torch.no_grad()
def speed(sam, n: int = 60) -> dict:
    torch.set_num_threads(1)
    es = eval_set(8, seed=3)
    enc, dec = [], []
    for i in range(n):
        img = es.images[i % 8]
        t0 = time.perf_counter()
        sam.set_image(img)
        enc.append(1000 * (time.perf_counter() - t0))
        x, y = es.clicks[i % 8].tolist()
        t0 = time.perf_counter()
        sam.predict(points=[[x, y]], labels=[1])
        dec.append(1000 * (time.perf_counter() - t0))
    out = {"encoder_ms_median": round(statistics.median(enc), 2), "decoder_ms_median": round(statistics.median(dec), 2),
           "decoder_ms_p90": round(sorted(dec)[int(0.9 * n)], 2), "threads": 1, "load": _load()}
    print("speed:", out)
    return out


@torch.no_grad()
def ambiguity(multi, single, n: int = 400) -> dict:
    es = eval_set(n, seed=11, target="ambiguous")
    ones = torch.ones(n, 1, dtype=torch.long)
    m_masks, m_iou, _ = predict_batch(multi, multi.embed(es.images), es.clicks[:, None], ones)
    s_masks, _, _ = predict_batch(single, single.embed(es.images), es.clicks[:, None], ones, multimask=False)
    chosen = m_masks[torch.arange(n), m_iou.argmax(1)]
    rows = {}
    for j, level in enumerate(LEVELS):
        t = es.levels[:, j]
        per_out = mask_iou(m_masks, t[:, None]).mean(0).tolist()
        rows[level] = {"best_of_3": mask_iou(m_masks, t[:, None]).amax(1).mean().item(),
                       "highest_predicted": mask_iou(chosen, t).mean().item(),
                       "single_output": mask_iou(s_masks[:, 0], t).mean().item(),
                       "per_output": per_out}
    out = {"n": n, "levels": rows,
           "chosen_output_share": torch.bincount(m_iou.argmax(1), minlength=3).div(n).tolist()}
    print("ambiguity:", json.dumps(out, indent=1))
    return out


@torch.no_grad()
def refinement(sam, n: int = 400) -> dict:
    out = {}
    plain = eval_set(n, seed=12)
    amb = eval_set(n, seed=13, target="ambiguous")
    for name, es, level in (("plain_part", plain, 0), ("ambiguous_whole", amb, 1), ("ambiguous_group", amb, 2)):
        out[name] = {f"mask_fed_back": click_curve(sam, es, es.levels[:, level], 5, feed_mask=True),
                     "points_only": click_curve(sam, es, es.levels[:, level], 5, feed_mask=False)}
    # what limits plain targets: where the wrong pixels of the first click lie
    emb = sam.embed(plain.images)
    masks, iou, _ = predict_batch(sam, emb, plain.clicks[:, None], torch.ones(n, 1, dtype=torch.long))
    pred = masks[torch.arange(n), iou.argmax(1)]
    target = plain.levels[:, 0]
    wrong = pred ^ target
    t = target[:, None].float()
    near = torch.nn.functional.max_pool2d(t, 3, 1, 1) != -torch.nn.functional.max_pool2d(-t, 3, 1, 1)  # within 1 px of the boundary
    out["plain_wrong_pixels_near_boundary"] = (wrong & near[:, 0]).sum().item() / max(1, wrong.sum().item())
    out["plain_mean_object_pixels"] = target.flatten(1).sum(1).float().mean().item()
    print("refinement:", json.dumps(out, indent=1))
    return out


def route_and_tracking(sam, n: int = 100) -> dict:
    from mmcourse.sam.tasks import moving_clip, route, track

    torch.set_num_threads(1)
    out = {"seen": route(sam, n=n, seed=21), "heldout shapes included": route(sam, n=n, seed=22, heldout=True)}
    print("route:", json.dumps(out, indent=1))
    clips = [track(sam, *moving_clip(12, seed=s))["miou"] for s in range(10)]
    tracking = {"clips": 10, "frames": 12, "miou_mean": sum(clips) / len(clips), "miou_per_clip": clips}
    print("tracking:", tracking)
    return out, tracking


@torch.no_grad()
def resolution_bound(n: int = 500) -> float:
    """mIoU of the ground-truth masks themselves after a trip through the decoder's 32 x 32 grid
    (area down, bilinear up, threshold 0.5): what the low-res masks could reach at best."""
    es = eval_set(n, seed=1)
    t = es.levels[:, 0, None].float()
    low = torch.nn.functional.interpolate(t, size=(32, 32), mode="area")
    up = torch.nn.functional.interpolate(low, size=t.shape[-2:], mode="bilinear", align_corners=False)
    return mask_iou(up[:, 0] > 0.5, es.levels[:, 0]).mean().item()


def longer_run(steps: int = 3000) -> dict:
    """The earlier patch-8 model at ``steps`` (the recipe otherwise the shipped one), evaluated like
    the builder and not registered."""
    import numpy as np

    from mmcourse.sam.tasks import evaluate

    torch.set_num_threads(1)
    recipe = Recipe(steps=steps)
    sam, hist, seconds = train_sam(recipe, cfg=shapes_sam_config(patch_size=8), desc=f"SAM patch 8, {steps} steps")
    metrics = {k: round(v, 4) for k, v in evaluate(sam).items()}
    smooth = hist.smoothed(50)
    idx = np.linspace(0, len(smooth) - 1, 100).round().astype(int)
    out = {"what": "the patch-8 model at twice its 1,500 steps, not shipped",
           "encoder_patch_size": 8,
           "recipe": recipe.__dict__, "train_seconds": round(seconds, 1), "threads": 1,
           "loadavg_at_end": _load().split(), "metrics_500_scenes": metrics,
           "final_loss": round(hist.final(), 4),
           "resolution_bound": {"what": "mIoU of the ground-truth masks taken to 32 x 32 and back", "miou": round(resolution_bound(), 4)},
           "step": idx.tolist(), "loss": [round(float(v), 4) for v in smooth[idx]]}
    print("longer run:", {k: v for k, v in out.items() if k not in ("step", "loss")})
    return out


def run(parts: tuple[str, ...] = ("speed", "refinement", "route", "ambiguity")) -> None:
    multi = load_sam()
    if "speed" in parts:
        _save("speed", speed(multi))
    if "refinement" in parts:
        _save("refinement", refinement(multi))
    if "route" in parts:
        route, tracking = route_and_tracking(multi)
        _save("route", route)
        _save("tracking", tracking)
    if "longer" in parts:
        _save("longer_run", longer_run())
    if "ambiguity" not in parts:
        return
    single, meta = train_single()
    amb = ambiguity(multi, single)
    amb["single_output_training"] = meta
    _save("ambiguity", amb)


if __name__ == "__main__":
    import sys

    run(tuple(sys.argv[1:]) or ("speed", "refinement", "route", "ambiguity"))

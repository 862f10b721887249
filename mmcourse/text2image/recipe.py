"""The recipe of the shipped text-to-image checkpoint (`python -m mmcourse.weights.build text2image_shapes`, registered by checkpoints.py).

Trains both stages on the two threads of the course's 2-core machine (the autoencoder, then the
text-conditioned denoiser on its latents; two threads train these small models about 1.3x (U-Net)
to 1.8x (autoencoder) faster than one), checks the targets, registers the weights and stores the
loss curves and timings in ``bench/results/text2image_training.json`` for notebook 08.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

# Checked before the checkpoint is saved.
TARGETS = {"ae_shape_kept": 0.98, "best_shape_and_colour": 0.90}
# The autoencoder's edge weight and the denoiser's Min-SNR weighting were what moved the targets
# (``bench/results/text2image_probes.json``): without them the same budget kept 0.877 of shapes and
# drew shape and colour right on 0.630 of seen prompts.
RECIPE = dict(ae_steps=3000, ae_edge_weight=20.0, steps=9000, batch_size=64, n_train=20_000, ae_latent_noise=0.05,
              snr_gamma=2.0, seed=0)
THREADS = 2
EVAL = dict(n_prompts=300, guidance_scales=(0.0, 1.0, 2.0, 4.0, 8.0), steps=50, seed=0)


def _curve(hist, n: int = 100, window: int = 50) -> dict | None:
    if not hist.loss:  # stage 1 reused without its history
        return None
    smooth = hist.smoothed(window)
    idx = np.linspace(0, len(smooth) - 1, n).round().astype(int)
    return {"step": idx.tolist(), "loss": [round(float(v), 5) for v in smooth[idx]]}


def autoencoder_quality(ae, judges, n: int = 2000, seed: int = 7) -> dict[str, float]:
    """Reconstruction MSE and the share of scenes whose ViT shape label survives encode -> decode."""
    from .tasks import world

    out = {}
    for split in ("test", "heldout"):
        b = world(ae.image_size).sample(n, seed=seed, split=split)
        with torch.no_grad():
            r = ae.decode(ae.encode(b.images))
        out[f"ae_mse_{split}"] = float(((r - b.images) ** 2).mean())
        out[f"ae_shape_kept_{split}"] = float((judges.shape(r) == judges.shape(b.images)).float().mean())
    out["ae_shape_kept"] = out["ae_shape_kept_test"]
    return out


def guidance_accuracy(model, judges, n_prompts: int, guidance_scales, steps: int = 50, seed: int = 0,
                      split: str = "test") -> dict[str, dict[str, float]]:
    """Per guidance scale: the judges' per-attribute accuracy on n_prompts prompts of ``split``."""
    from .prompts import prompt_set
    from .tasks import generate

    prompts, labels = prompt_set(n_prompts, seed=seed, split=split)
    table = {}
    for w in guidance_scales:
        x = generate(model, prompts, w, steps=steps, seed=seed)
        got = judges.labels(x)
        ok = got == labels
        table[str(float(w))] = {"shape": float(ok[:, 0].float().mean()), "colour": float(ok[:, 1].float().mean()),
                                "size": float(ok[:, 2].float().mean()), "position": float(ok[:, 3].float().mean()),
                                "shape_and_colour": float(ok[:, :2].all(dim=1).float().mean()),
                                "all": float(ok.all(dim=1).float().mean())}
    return table


def build_text2image_shapes(stage1=None) -> None:
    """Notebook 08's model: autoencoder + text-conditioned latent U-Net (CLIP text tower frozen).

    ``stage1``: see :func:`~mmcourse.text2image.tasks.train_text2image` (reuse a finished stage 1).
    """
    from ..weights import save
    from .judges import Judges
    from .tasks import CHECKPOINT, RESULTS, config_dict, state_dict, train_text2image

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        model, info = train_text2image(**RECIPE, stage1=stage1)
        train_seconds = time.perf_counter() - t0
        judges = Judges.load()
        metrics = autoencoder_quality(model.ae, judges)
        table = guidance_accuracy(model, judges, EVAL["n_prompts"], EVAL["guidance_scales"], EVAL["steps"], EVAL["seed"])
        load_after = os.getloadavg()[0]
    finally:
        torch.set_num_threads(threads)
    best_w = max(table, key=lambda w: table[w]["shape_and_colour"])
    metrics.update({"best_guidance_scale": float(best_w), "best_shape_and_colour": table[best_w]["shape_and_colour"],
                    "best_position": table[best_w]["position"], "best_size": table[best_w]["size"],
                    "w0_shape_and_colour": table["0.0"]["shape_and_colour"], "train_seconds": round(train_seconds, 1),
                    "ae_seconds": round(info["ae_seconds"], 1), "denoiser_seconds": round(info["seconds"], 1),
                    "final_loss": info["history"].final(100)})
    from safetensors.torch import save_file

    (RESULTS.parents[1] / "build").mkdir(exist_ok=True)  # a copy outside the registry, for inspection
    save_file(state_dict(model), str(RESULTS.parents[1] / "build" / "text2image_last.safetensors"))
    # A missed target is recorded (and printed), not hidden: the registry row says which.
    missed = {k: round(metrics[k], 4) for k, v in TARGETS.items() if metrics[k] < v}
    metrics["targets_met"] = float(not missed)
    if missed:
        print(f"text2image_shapes MISSED its targets {TARGETS}: {missed}", flush=True)
    save(CHECKPOINT, state_dict(model), config_dict(model.cfg), f"python -m mmcourse.weights.build {CHECKPOINT}",
         {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text2image_training.json").write_text(json.dumps({
        "recipe": RECIPE, "eval": {**EVAL, "guidance_scales": list(EVAL["guidance_scales"])}, "threads": THREADS,
        "train_seconds": round(train_seconds, 1), "ae_seconds": round(info["ae_seconds"], 1),
        "denoiser_seconds": round(info["seconds"], 1), "loadavg_before": round(load_before, 2),
        "loadavg_after": round(load_after, 2), "ae_curve": _curve(info["ae_history"]), "curve": _curve(info["history"]),
        "guidance_seen": table, "targets": TARGETS, "targets_missed": missed, "metrics": metrics}, indent=1) + "\n")



"""The recipe of the shipped text-to-image checkpoint (`python -m mmcourse.weights.build text2image_shapes`,
registered by checkpoints.py).

Trains both stages on the two threads of the course's 2-core machine (the autoencoder, then the
text-conditioned denoiser on its latents, keeping one moving average of the denoiser's weights
per decay in ``RECIPE["ema_decays"]``; two threads train these small models about 1.3x (U-Net)
to 1.8x (autoencoder) faster than one). Then, following :mod:`mmcourse.protocol`, it chooses the
decay and the guidance scale on validation draws only (:data:`~mmcourse.text2image.evaluate.GUIDANCE_GRID`),
measures the checkpoint once on test draws (:func:`~mmcourse.text2image.evaluate.evaluate_text2image`,
the same function ``make weights-check`` calls), registers the weights with those numbers and
their standard errors, and stores the loss curves, the validation sweep and the timings (wall
and CPU seconds of each stage and of the evaluation) in ``bench/results/text2image_training.json``
for notebook 08.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

# Checked on the test draws before the checkpoint is saved (a miss is recorded and printed).
TARGETS = {"ae_shape_kept": {"min": 0.98}, "shape_and_colour": {"min": 0.90}}
# The autoencoder's edge weight and the denoiser's Min-SNR weighting were what moved the targets
# (README, maintainer notes for 08, single runs whose probes were not kept). The 2026-12-07
# rebuild (issue 27) trained the autoencoder 5,000 steps instead of 3,000 (its remaining misses
# are small objects' outlines: a cross read as a diamond and back) and the denoiser 10,000 instead
# of 9,000, and searches the guidance scale past 2.5 (GUIDANCE_GRID). Its test score, 0.905 ± 0.009,
# missed the target by the two-standard-error bar, so the second rebuild that day trains the
# denoiser 15,000 steps and keeps three moving averages of its weights in the one run; the build
# chooses the decay on validation draws (choose_and_measure), as it chooses w.
RECIPE = dict(ae_steps=5000, ae_edge_weight=20.0, steps=15_000, batch_size=64, n_train=20_000, ae_latent_noise=0.05,
              snr_gamma=2.0, seed=0, ema_decays=(0.995, 0.999, 0.9995))
THREADS = 2
# The EMA decays are compared on validation draws at the guidance scale the 10,000-step build chose
# (one scale, not the whole grid, for each: the grid is then searched for the winner alone).
DECAY_CHOICE_SCALE = 3.0


def _curve(hist, n: int = 100, window: int = 50) -> dict | None:
    if not hist.loss:  # stage 1 reused without its history
        return None
    smooth = hist.smoothed(window)
    idx = np.linspace(0, len(smooth) - 1, n).round().astype(int)
    return {"step": idx.tolist(), "loss": [round(float(v), 5) for v in smooth[idx]]}


def choose_and_measure(model, denoisers: dict, judges) -> tuple:
    """The protocol for this checkpoint: on the validation draws, first the EMA decay (each
    candidate denoiser at w = ``DECAY_CHOICE_SCALE``), then w for that denoiser; then the test numbers.

    Returns (the model with the chosen denoiser, its decay, w, the candidates' validation numbers
    and the validation sweep as plain numbers, the test metrics as Estimates).
    """
    from dataclasses import replace

    from .evaluate import choose_guidance_scale, evaluate_text2image, guidance_sweep, sweep_to_json, validation_sweep

    key = str(float(DECAY_CHOICE_SCALE))
    candidates = {d: guidance_sweep(replace(model, unet=unet), judges, [DECAY_CHOICE_SCALE], part="val")[key]
                  for d, unet in denoisers.items()}
    decay = max(candidates, key=lambda d: candidates[d]["shape_and_colour"].value)  # the first of equals
    model = replace(model, unet=denoisers[decay])
    val = validation_sweep(model, judges, known={key: candidates[decay]})
    w = choose_guidance_scale(val)
    by_decay = {str(d): {a: e.to_dict() for a, e in row.items()} for d, row in candidates.items()}
    return model, decay, w, by_decay, sweep_to_json(val), evaluate_text2image("test", model, w, judges)


def register(model, metrics: dict, info: dict) -> dict:
    """Save the weights and the registry row; print and return the targets missed."""
    from ..weights import save
    from .model import CHECKPOINT, config_dict, state_dict

    # Met means the mean lies at least two standard errors above the bound (issue 27's bar).
    missed = {k: round(metrics[k].value, 4) for k, b in TARGETS.items() if not metrics[k].clears(b["min"], k=2)}
    if missed:
        print(f"text2image_shapes MISSED its targets {TARGETS}: {missed}", flush=True)
    save(CHECKPOINT, state_dict(model), config_dict(model.cfg), f"python -m mmcourse.weights.build {CHECKPOINT}",
         {**metrics, **info, "targets_met": float(not missed)}, targets=TARGETS)
    return missed


def build_text2image_shapes(stage1=None) -> None:
    """Notebook 08's model: autoencoder + text-conditioned latent U-Net (CLIP text tower frozen).

    ``stage1``: see :func:`~mmcourse.text2image.train.train_text2image` (reuse a finished stage 1).
    """
    from .evaluate import RESULTS
    from .judges import Judges
    from .model import state_dict
    from .train import train_text2image

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        load_before = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        model, info = train_text2image(**RECIPE, stage1=stage1)
        train_seconds, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        if stage1 is not None:  # a stage 1 trained earlier counts as part of the training
            train_seconds += info["ae_seconds"]
            train_cpu += info["ae_cpu_seconds"] or 0.0
        load_after = os.getloadavg()[0]
        judges = Judges.load()
        t1, c1 = time.perf_counter(), time.process_time()
        model, decay, w, by_decay, val, test = choose_and_measure(model, info["denoisers"], judges)
        eval_seconds, eval_cpu = time.perf_counter() - t1, time.process_time() - c1
    finally:
        torch.set_num_threads(threads)
    from safetensors.torch import save_file

    (RESULTS.parents[1] / "build").mkdir(exist_ok=True)  # a copy outside the registry, for inspection
    save_file(state_dict(model), str(RESULTS.parents[1] / "build" / "text2image_last.safetensors"))
    timing = {"guidance_scale": w, "ema_decay": decay, "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
              "ae_seconds": round(info["ae_seconds"], 1), "denoiser_seconds": round(info["seconds"], 1),
              "ae_cpu_seconds": info["ae_cpu_seconds"] and round(info["ae_cpu_seconds"], 1), "denoiser_cpu_seconds": round(info["cpu_seconds"], 1),
              "final_loss": round(info["history"].final(100), 4),
              "evaluate_seconds": round(eval_seconds, 1), "evaluate_cpu_seconds": round(eval_cpu, 1)}
    missed = register(model, test, timing)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text2image_training.json").write_text(json.dumps({
        "recipe": RECIPE, "threads": THREADS, **timing, "loadavg_before": round(load_before, 2),
        "loadavg_after": round(load_after, 2), "ae_curve": _curve(info["ae_history"]), "curve": _curve(info["history"]),
        "val_ema_decays": {"guidance_scale": DECAY_CHOICE_SCALE, **by_decay}, "val_sweep": val, "test": {k: v.to_dict() for k, v in test.items()}, "targets": TARGETS,
        "targets_missed": missed}, indent=1) + "\n")

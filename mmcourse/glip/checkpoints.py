"""The shipped GLIP checkpoints: their recipe, builders, evaluators and targets.

- ``glip_shapes``: the notebook's model: deep fusion on, the "phrases" text side (each phrase's
  pooled embedding from notebook 04's broad CLIP, frozen; see :mod:`.text`).
- ``glip_shapes_tokens``: the same recipe with GLIP's "tokens" text side, a random frozen tower
  (the comparison: words that mean nothing before training).
- ``glip_shapes_tokens_nofusion``: that, with the fusion layers switched off (the fusion ablation).

``python -m mmcourse.weights.build glip_shapes`` trains on one thread, measures the model on the
protocol's test draws (:func:`.evaluate.measure`), checks :data:`TARGETS` and saves it.
``EVALUATORS[name](part)`` measures the shipped file the same way (``make weights-check``).
"""

from __future__ import annotations

import os
import time
from typing import Callable

import torch

from ..protocol import Estimate
from .data import KINDS
from .evaluate import measure
from .model import GLIP, GLIPConfig
from .train import train_glip

RECIPE = {"steps": 800, "batch_size": 24, "lr": 3e-3, "soft_token_weight": 1.0, "freeze_text": True}
# The two text sides (notebook section 5): GLIP's token features from a random frozen tower, or
# the pooled CLIP embedding of each phrase from the broad CLIP (notebook 04).
TEXT_SIDES = {"tokens": {"text_encoder": "tokens", "align_to_text": False, "text_init": "random"},
              "phrases": {"text_encoder": "phrases", "align_to_text": True, "text_init": "clip_shapes_broad"}}
CHECKPOINTS = {"glip_shapes": {"fusion": True, "text": "phrases"},
               "glip_shapes_tokens": {"fusion": True, "text": "tokens"},
               "glip_shapes_tokens_nofusion": {"fusion": False, "text": "tokens"}}
TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "glip_shapes": {"names_AP50": {"min": 0.95}, "attributes_heldout_AP50": {"min": 0.60},
                    "caption_accuracy": {"min": 0.90}},
    "glip_shapes_tokens": {"names_AP50": {"min": 0.95}, "caption_accuracy": {"min": 0.90}},
    "glip_shapes_tokens_nofusion": {"names_AP50": {"min": 0.95}},
}


def train_variant(fusion: bool = True, text: str = "phrases", seed: int = 0, kinds: tuple[str, ...] = KINDS,
                  align_to_text: bool | None = None, project_text: bool | None = None, progress: bool = True,
                  desc: str = "GLIP", soft_token_weight: float | None = None) -> tuple[GLIP, object]:
    """The shipped recipe with one thing changed: fusion on/off, the text side, the seed, the
    prompt kinds, how the phrases meet the regions (``align_to_text``: unfused or fused;
    ``project_text``: with or without the head's learned projection) or the soft-token loss's
    weight (``soft_token_weight``; 0: focal loss alone) (the arms of ``python -m bench glip``)."""
    if text not in TEXT_SIDES:
        raise ValueError(f"text must be one of {sorted(TEXT_SIDES)}, got {text!r}")
    side = TEXT_SIDES[text]
    align = side["align_to_text"] if align_to_text is None else align_to_text
    if soft_token_weight is not None and soft_token_weight < 0:
        raise ValueError(f"soft_token_weight must be >= 0, got {soft_token_weight}")
    recipe = RECIPE if soft_token_weight is None else {**RECIPE, "soft_token_weight": soft_token_weight}
    cfg = GLIPConfig(fusion=fusion, text_encoder=side["text_encoder"], align_to_text=align, project_text=project_text)
    return train_glip(cfg, seed=seed, kinds=kinds, text_init=side["text_init"], progress=progress, desc=desc, **recipe)


def load_glip(name: str = "glip_shapes") -> GLIP:
    """A shipped checkpoint (hash-checked by :func:`mmcourse.weights.load`), in eval mode."""
    from ..weights import load

    state, entry = load(name)
    cfg = GLIPConfig(**{k: v for k, v in entry.config.items() if k != "training"})
    model = GLIP(cfg)
    model.load_state_dict(state)
    return model.eval()


def evaluate_checkpoint(name: str, part: str, model: GLIP | None = None) -> dict[str, Estimate]:
    """The protocol metrics of checkpoint ``name`` (the shipped file, or ``model`` in memory) on
    ``part``'s draws, measured on one thread."""
    if name not in CHECKPOINTS:
        raise ValueError(f"name must be one of {sorted(CHECKPOINTS)}, got {name!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure(load_glip(name) if model is None else model.eval(), part)
    finally:
        torch.set_num_threads(threads)


def build_checkpoint(name: str) -> None:
    """Train checkpoint ``name`` on one thread, measure it on the test draws, check its targets, save it."""
    from ..weights import save

    if name not in CHECKPOINTS:
        raise ValueError(f"name must be one of {sorted(CHECKPOINTS)}, got {name!r}")
    spec = CHECKPOINTS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        model, hist = train_variant(spec["fusion"], spec["text"], seed=0, desc=name)
        train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    metrics: dict = evaluate_checkpoint(name, "test", model)
    missed = {m: round(metrics[m].value, 4) for m, b in TARGETS[name].items()
              if ("min" in b and metrics[m].value < b["min"]) or ("max" in b and metrics[m].value > b["max"])}
    if missed:
        raise RuntimeError(f"{name} missed its targets {TARGETS[name]}: {missed}")
    metrics.update(final_loss=hist.final(100), train_cpu_s=train_cpu, train_wall_s=train_wall,
                   load_1min=os.getloadavg()[0])
    training = {**RECIPE, "seed": 0, "text_init": TEXT_SIDES[spec["text"]]["text_init"]}
    save(name, model.state_dict(), {**model.cfg.to_dict(), "training": training},
         f"python -m mmcourse.weights.build {name}", metrics, targets=TARGETS[name])


def _builder(name: str) -> Callable[[], None]:
    return lambda: build_checkpoint(name)


def _evaluator(name: str) -> Callable[[str], dict[str, Estimate]]:
    return lambda part: evaluate_checkpoint(name, part)


BUILDERS: dict[str, Callable[[], None]] = {name: _builder(name) for name in CHECKPOINTS}
EVALUATORS: dict[str, Callable[[str], dict[str, Estimate]]] = {name: _evaluator(name) for name in CHECKPOINTS}

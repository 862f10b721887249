"""A small, seeded training loop shared by every topic.

The loop is deliberately plain: sample a batch, compute a loss, take an optimiser step, record the
loss. What it adds over a hand-written loop is what a course needs: a ``tqdm.auto`` progress bar
(a widget in Jupyter, text elsewhere), a loss history to plot, and determinism for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class History:
    """Losses recorded by :func:`fit`: one value per step, plus any extra metrics by name."""

    loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def smoothed(self, window: int = 20) -> np.ndarray:
        """Running mean of the loss over ``window`` steps (shorter at the start), shape (steps,)."""
        x = np.asarray(self.loss, dtype=np.float64)
        if x.size == 0:
            return x
        c = np.cumsum(np.insert(x, 0, 0.0))
        idx = np.arange(1, x.size + 1)
        lo = np.maximum(idx - window, 0)
        return (c[idx] - c[lo]) / (idx - lo)

    def final(self, window: int = 50) -> float:
        """Mean loss over the last ``window`` steps: a stabler summary than the last batch."""
        if not self.loss:
            raise ValueError("History is empty: no step was recorded")
        return float(np.mean(self.loss[-window:]))


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Generator], torch.Tensor],
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    warmup: int = 0,
    cosine: bool = False,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "training",
    history: History | None = None,
) -> History:
    """Train ``model`` for ``steps`` optimiser steps.

    ``loss_fn(model, generator)`` draws its own batch (with ``generator`` for any randomness) and
    returns a scalar loss. Keeping batch sampling inside ``loss_fn`` lets the same loop serve
    diffusion (random t and noise), classification and contrastive training.

    Args:
        steps: number of optimiser steps, > 0.
        optimizer: "adamw" or "adam" or "sgd".
        warmup: linear learning-rate warm-up steps; ``cosine`` decays to zero after it.
        grad_clip: clip the global gradient norm to this value when given.
        history: append to an existing :class:`History` (to continue training).

    Returns:
        The :class:`History` with one loss per step.
    """
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    g = seed_everything(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be one of 'adamw', 'adam', 'sgd', got {optimizer!r}")

    def lr_at(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cosine:
            progress_ = (step - warmup) / max(1, steps - warmup)
            return 0.5 * (1.0 + float(np.cos(np.pi * progress_)))
        return 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history = history if history is not None else History()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=0.5)
    for step in bar:
        loss = loss_fn(model, g)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; try a lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        sched.step()
        history.loss.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{history.smoothed(20)[-1]:.4f}", refresh=False)
    model.eval()
    return history


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in chunks along dim 0 and concatenate: evaluation without memory spikes."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)], dim=0)

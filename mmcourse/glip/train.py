"""GLIP's training on ShapesWorld: the losses of a batch and the training run."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..train import History, fit
from .data import KINDS, GroundingBatch, glip_world, make_batch
from .losses import grounding_loss
from .model import GLIP, GLIPConfig
from .targets import assign_locations, centerness_target, encode_ltrb, token_targets

SOFT_TOKEN_WEIGHT = 1.0  # MDETR's soft-token loss beside GLIP's focal loss (see the module note)


def batch_loss(model: GLIP, batch: GroundingBatch, soft_token_weight: float = SOFT_TOKEN_WEIGHT) -> dict[str, torch.Tensor]:
    """The GLIP losses of one batch (see :func:`.losses.grounding_loss`)."""
    out = model(batch.images, batch.tokens, batch.units)
    assigned = assign_locations(model.points, batch.boxes, batch.valid, model.stride,
                                image_size=model.cfg.img_size)   # (B, N)
    positive = assigned >= 0
    target_boxes = batch.boxes.gather(1, assigned.clamp(min=0)[..., None].expand(-1, -1, 4))  # (B, N, 4)
    ctr = centerness_target(encode_ltrb(model.points, target_boxes)) * positive
    return grounding_loss(out["logits"], token_targets(assigned, batch.box_tokens), model.token_mask(batch.tokens),
                          out["boxes"], target_boxes, out["centerness"], ctr, positive, soft_token_weight)


def train_glip(cfg: GLIPConfig | None = None, steps: int = 2000, batch_size: int = 32, lr: float = 2e-3,
               seed: int = 0, kinds: tuple[str, ...] = KINDS, progress: bool = True, desc: str = "GLIP",
               text_init: str | None = "random", freeze_text: bool = True,
               soft_token_weight: float = SOFT_TOKEN_WEIGHT) -> tuple[GLIP, History]:
    """Train a GLIP on fresh ShapesWorld scenes (a new batch every step).

    The text transformer (mmcourse.clip's) starts with ``text_init``: "random" (word embeddings at
    std 1), a CLIP checkpoint name, or None (CLIP's own small initialisation); ``freeze_text``
    keeps it fixed. The history's ``metrics`` hold each loss term per step ("cls" focal, "box"
    GIoU, "ctr" centerness, "token" soft-token, unweighted)."""
    torch.manual_seed(seed)
    model = GLIP(cfg or GLIPConfig())
    if text_init == "random" and model.cfg.text_encoder == "phrases":
        raise ValueError('text_init="random" is for the "tokens" text side; the "phrases" side needs a CLIP checkpoint')
    if text_init == "random":
        # Word embeddings at nn.Embedding's default scale (std 1, CLIP's is 0.02): the tower's
        # output is then dominated by the word itself, and different words start nearly
        # orthogonal (cosine ~0.2) instead of 0.8 as in the CLIP checkpoint's token features.
        nn.init.normal_(model.text.token_embedding.weight, std=1.0)
    elif text_init:
        model.load_clip_text(text_init)
    if freeze_text:
        # Trained along with focal loss only, the tower collapsed every token onto one "object"
        # direction within 150 steps (cosine 0.99 between "circle" and "square").
        model.text.requires_grad_(False)
    world = glip_world()
    rng = np.random.default_rng(seed)

    terms: dict[str, list[float]] = {"cls": [], "box": [], "ctr": [], "token": []}

    def loss_fn(m, g):
        scenes = world.sample(batch_size, seed=int(rng.integers(2**31)), split="train")
        batch = make_batch(scenes, list(rng.choice(kinds, size=batch_size)), rng, m.tokenizer)
        losses = batch_loss(m, batch, soft_token_weight)
        for k, v in terms.items():  # each term per step, unweighted (History.metrics)
            v.append(float(losses[k].detach()))
        return losses["total"]

    hist = fit(model, loss_fn, steps, lr=lr, seed=seed, weight_decay=1e-4, warmup=100, cosine=True,
               grad_clip=1.0, progress=progress, desc=desc)
    hist.metrics.update(terms)
    return model, hist

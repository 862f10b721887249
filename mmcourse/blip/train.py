"""Training BLIP on ShapesWorld: the model's size, the batches and the three-loss training run.

ITM's plateau (measured while writing this module, one seed each, batch 32 unless named). From
scratch, ITM sits at 0.636, the loss of always answering "match" with probability 1/3 (one true
pair for two negatives), while ITC and LM learn; it is not a bug in the pairs or the labels
(``tests/test_blip.py`` checks both, and ITM's gradient reaches cross-attention, norm 0.1-0.4):

- random ViT, no gradient clipping: ITC stuck at ln 32 = 3.47 too, ITM 0.636 after 300 steps;
- gradient norm clipped, 50 warm-up steps: ITC 0.90 after 300 steps, ITM still 0.637;
- ITM alone with random negatives: 0.637 after 200 steps;
- image encoder started from notebook 04's CLIP (``vit_init``): ITC 0.27 by step 100, and ITM
  leaves the plateau at step 250-300, as LM falls below about 1.1 (0.49 at step 350).

At initialisation cross-attention is uniform over the 17 image tokens (entropy = ln 17) and the
[ENC] state varies little with the caption (std 0.07 across captions, 0.19 across images):
nothing in it correlates with "match", a product of caption and image. LM, which shares the
cross-attention, teaches it to look words up in the image, and ITM follows. The shipped recipe
(:mod:`.checkpoints`, batch 64) shows the same: ITM 0.636 until step 250, 0.54 at 400, 0.16 at 900.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train import fit
from .captions import CONTEXT_LENGTH, content_ids, sample_scenes
from .model import BLIP, BlipConfig
from .text import TextConfig
from .tokenizer import BlipTokenizer


def shapes_blip_config(**text_overrides) -> BlipConfig:
    """The course's ShapesWorld BLIP: the ViT of notebooks 03-04 (64 wide, 3 blocks, 4x4 patches
    of 8 pixels + the class token) and a 2-layer, 64-wide text transformer, context 32."""
    tok = BlipTokenizer(context_length=CONTEXT_LENGTH)
    text = TextConfig(**{"vocab_size": tok.vocab_size, "context_length": CONTEXT_LENGTH, **tok.token_ids(),
                         **text_overrides})
    return BlipConfig(text=text)


def tokenizer_for(model: BLIP) -> BlipTokenizer:
    """The word tokenizer at the model's context length."""
    return BlipTokenizer(context_length=model.cfg.text.context_length)


def _trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns at the end of a batch of token ids (saves time, same result)."""
    return tokens[:, : max(2, int((tokens != 0).sum(1).max()))]


@dataclass
class PairSet:
    """A fixed training set: N images with one caption each (CapFilt's noisy, filtered or clean sets)."""

    images: torch.Tensor   # (N, 3, 32, 32)
    captions: list[str]

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.images):
            raise ValueError(f"captions must hold one caption per image ({len(self.images)}), got {len(self.captions)}")

    def __len__(self) -> int:
        return len(self.captions)


def _batch(source: PairSet | None, batch_size: int, seed: int, single_share: float = 0.0) -> tuple[torch.Tensor, list[str]]:
    """A fresh training batch: new ShapesWorld scenes (source None) or a random draw from ``source``.

    ``single_share``: the share of the fresh scenes that hold exactly one object (the rest hold
    1 to 3, so single-object scenes make up ``single_share + (1 - single_share) / 3`` of the batch).
    """
    if source is None:
        n1 = int(round(batch_size * single_share))
        if n1 == 0:
            b = sample_scenes(batch_size, seed=seed)
            return b.images, list(b.captions)
        one = sample_scenes(n1, seed=seed, min_objects=1, max_objects=1)
        if n1 == batch_size:
            return one.images, list(one.captions)
        rest = sample_scenes(batch_size - n1, seed=seed + 7919)
        return torch.cat([one.images, rest.images]), list(one.captions) + list(rest.captions)
    idx = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return source.images[idx], [source.captions[i] for i in idx.tolist()]


def blip_loss_fn(batch_size: int = 64, source: PairSet | None = None, negatives: str = "hard",
                 itm_start: int = 0, weights: dict[str, float] | None = None, history: dict | None = None,
                 single_share: float = 0.0):
    """A ``loss_fn(model, generator)`` for :func:`mmcourse.train.fit`: the sum of the three losses
    on a fresh batch (``weights`` scales them, e.g. ``{"itm": 0}``; ITM counts from step ``itm_start``;
    ``single_share`` of fresh batches are single-object scenes, see :func:`_batch`).

    ``history``, if given, collects every loss per step (``{"itc": [...], ...}``).
    """
    if not 0.0 <= single_share <= 1.0:
        raise ValueError(f"single_share must be in [0, 1], got {single_share!r}")
    weights = {"itc": 1.0, "itm": 1.0, "lm": 1.0, **(weights or {})}
    step = [0]

    def loss_fn(model: BLIP, g: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        images, captions = _batch(source, batch_size, seed, single_share)
        tok = tokenizer_for(model)
        tokens = _trim(tok(captions, argument="captions"))
        losses = model(images, tokens, content_ids(captions), generator=g, negatives=negatives)
        w = dict(weights)
        if step[0] < itm_start:
            w["itm"] = 0.0
        step[0] += 1
        if history is not None:
            for k, v in losses.items():
                history.setdefault(k, []).append(float(v.detach()))
        return sum(w[k] * v for k, v in losses.items())

    return loss_fn


def init_from_clip(model: BLIP, name: str = "clip_shapes_named") -> BLIP:
    """Start the image encoder from notebook 04's CLIP image tower, as BLIP starts from a
    pre-trained ViT (same architecture: 64 wide, 3 blocks, 8-pixel patches)."""
    from ..clip.tasks import load_clip

    model.visual.load_state_dict(load_clip(name).visual.state_dict())
    return model


def train_blip(steps: int = 1000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
               source: PairSet | None = None, negatives: str = "hard", itm_start: int = 0,
               weights: dict[str, float] | None = None, model: BLIP | None = None, vit_init: str | None = "clip_shapes_named",
               single_share: float = 0.0, progress: bool = True, desc: str = "BLIP") -> tuple[BLIP, dict[str, list[float]]]:
    """Train BLIP on ShapesWorld (``source`` None: fresh scenes every step) or on a fixed
    :class:`PairSet`; AdamW, 5% warm-up then cosine decay, gradient norm clipped to 1.

    ``model``: continue training it (fine-tuning) instead of a fresh one; ``vit_init``: the CLIP
    checkpoint a fresh model's image encoder starts from (None: random); ``single_share``: the
    share of each fresh batch drawn as single-object scenes (:func:`_batch`). Returns the model (eval
    mode) and the per-step losses ``{"itc", "itm", "lm", "total"}``.
    """
    torch.manual_seed(seed)
    if model is None:
        model = BLIP(shapes_blip_config())
        if vit_init:
            init_from_clip(model, vit_init)
    curves: dict[str, list[float]] = {}
    loss_fn = blip_loss_fn(batch_size, source, negatives, itm_start, weights, curves, single_share)
    hist = fit(model, loss_fn, steps=steps, lr=lr, seed=seed, weight_decay=0.05, warmup=max(1, steps // 20),
               cosine=True, grad_clip=1.0, progress=progress, desc=desc)
    curves["total"] = hist.loss
    model.clamp_temp()
    return model.eval(), curves


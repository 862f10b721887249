"""CapFilt: BLIP cleans its own training data with a captioner and a filter.

Web image-text pairs are noisy: the alt-text often does not describe the image. BLIP fine-tunes
two copies of the pretrained model on a small clean set, then

1. the **captioner** (the image-grounded decoder) writes a synthetic caption for every web image,
   with nucleus sampling so the captions are diverse (:func:`caption`);
2. the **filter** (the image-grounded encoder's ITM head) keeps a caption, web or synthetic, only
   if its match probability passes a threshold (:func:`filter`);

and a new model is pretrained on the pairs that survive.

Functions take a :class:`mmcourse.blip.BLIP` and, optionally, a :class:`mmcourse.blip.BlipTokenizer`
(default: ShapesWorld's words at the model's context length).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .decode import generate
from .tokenizer import BlipTokenizer


def _tokenizer(model, tokenizer: BlipTokenizer | None) -> BlipTokenizer:
    t = model.cfg.text
    tokenizer = tokenizer or BlipTokenizer(context_length=t.context_length)
    ids = tokenizer.token_ids()
    if tokenizer.vocab_size != t.vocab_size or any(getattr(t, k) != v for k, v in ids.items()):
        raise ValueError(f"tokenizer does not fit the model: vocab_size {tokenizer.vocab_size} and ids {ids}, "
                         f"model vocab_size {t.vocab_size}")
    if tokenizer.context_length > t.context_length:
        raise ValueError(f"tokenizer context_length {tokenizer.context_length} exceeds the model's {t.context_length}")
    return tokenizer


@torch.no_grad()
def caption(model, images: torch.Tensor, tokenizer: BlipTokenizer | None = None, method: str = "nucleus",
            max_length: int | None = None, top_p: float = 0.9, num_beams: int = 3,
            generator: torch.Generator | None = None) -> list[str]:
    """Synthetic captions (one str per image) from the decoder; ``method`` greedy, beam or nucleus."""
    tokenizer = _tokenizer(model, tokenizer)
    # at most context_length - 2 words, so that [CLS] caption [SEP] fits the encoder (the filter) again
    max_length = model.cfg.text.context_length - 1 if max_length is None else max_length
    ids = generate(model, images, method=method, max_length=max_length, num_beams=num_beams, top_p=top_p,
                   generator=generator)
    return [tokenizer.decode(row) for row in ids]


@torch.no_grad()
def filter(model, images: torch.Tensor, captions: Sequence[str], threshold: float = 0.5,  # noqa: A001 (BLIP's name)
           tokenizer: BlipTokenizer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Which (image i, caption i) pairs ITM accepts.

    Returns ``keep`` (B,) bool = match probability >= ``threshold``, and the probabilities (B,).
    """
    model.check_images(images)
    if isinstance(captions, str) or len(captions) != len(images):
        raise ValueError(f"captions must be a list of {len(images)} strings (one per image), got "
                         f"{'a str' if isinstance(captions, str) else len(captions)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    tokenizer = _tokenizer(model, tokenizer)
    tokens = tokenizer(captions, argument="captions").to(images.device)
    probs = model.match_probability(images, tokens)
    return probs >= threshold, probs

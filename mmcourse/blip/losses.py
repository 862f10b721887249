"""BLIP's three losses, one per job of the text transformer.

- **ITC** (image-text contrastive): CLIP's symmetric InfoNCE on the unimodal features
  (:func:`mmcourse.clip.clip_loss`), with BLIP's temperature (a parameter clamped to [0.001, 0.5]).
- **ITM** (image-text matching): a 2-way classifier on the image-grounded [ENC] token, fed the B
  positive pairs and 2B hard negatives (:mod:`.negatives`); labels 1 = match, 0 = no match.
- **LM** (language modelling): the image-grounded decoder predicts token t+1 from tokens <= t;
  cross-entropy with label smoothing 0.1, padding ignored.

Shapes: B = batch, L = text length, V = vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..clip.loss import clip_loss

IGNORE = -100  # cross_entropy's ignore_index: padding positions do not count


def itc_loss(image_features: torch.Tensor, text_features: torch.Tensor, temp: torch.Tensor | float,
             content_ids: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's loss with BLIP's temperature: logits = cos / temp. Duplicates (equal ``content_ids``)
    are left out of the softmaxes (see :func:`mmcourse.clip.clip_loss`)."""
    return clip_loss(image_features, text_features, 1.0 / temp, caption_ids=content_ids)


def lm_targets(tokens: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """(B, L) targets for the decoder's logits (B, L, V): position t predicts token t+1.

    Padding and the last position (nothing follows it) are ``IGNORE``.
    """
    targets = tokens.masked_fill(tokens == pad_token_id, IGNORE)
    return torch.cat([targets[:, 1:], torch.full_like(targets[:, :1], IGNORE)], dim=1)


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, pad_token_id: int, label_smoothing: float = 0.1) -> torch.Tensor:
    """Mean next-token cross-entropy over the non-padding targets (BLIP: ``label_smoothing=0.1``).

    Label smoothing 0.1 asks for probability 0.9 + 0.1/V on the right word and 0.1/V on each other
    one, so the loss never reaches 0 and the decoder stays a little unsure, which helps sampling.
    """
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits (B, L, V) and tokens (B, L) disagree: {tuple(logits.shape)} and {tuple(tokens.shape)}")
    targets = lm_targets(tokens, pad_token_id)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, label_smoothing=label_smoothing)


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the ITM head's (N, 2) logits against (N,) labels (1 = match)."""
    return F.cross_entropy(logits, labels)


def itm_labels(num_pos: int, num_neg: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[1] * num_pos + [0] * num_neg, the order :meth:`mmcourse.blip.BLIP.itm_batch` builds."""
    return torch.cat([torch.ones(num_pos, dtype=torch.long), torch.zeros(num_neg, dtype=torch.long)]).to(device)

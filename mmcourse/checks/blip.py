"""Checkers for the BLIP notebook: hard-negative weights, the decoder's attention mask, the nucleus."""

from __future__ import annotations

import torch

from .core import Case, Verdict, check, expect, format_bound  # noqa: F401  (notebook 05 prints with expect)


def hard_negative_weights_reference(sim_i2t: torch.Tensor, content_ids: torch.Tensor):
    from ..blip.negatives import hard_negative_weights

    return hard_negative_weights(sim_i2t, content_ids)


def _negative_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    sim = lambda b: torch.randn(b, b, generator=g) * 3  # noqa: E731
    return [
        Case((sim(2), torch.tensor([0, 1])), "2 pairs, all different: each row has one candidate"),
        Case((sim(4), torch.arange(4)), "4 different pairs: only the diagonal is masked"),
        Case((sim(5), torch.tensor([0, 1, 0, 2, 1])), "5 pairs where 0 and 2, 1 and 4 have the same content"),
        Case((sim(3), torch.tensor([7, 7, 7])), "3 pairs of the same content: no negative anywhere (rows of zeros)"),
        Case((sim(4) * 30, torch.tensor([0, 1, 2, 1])), "large similarities (a softmax without care overflows)"),
        Case((sim(6), torch.tensor([3, 3, 1, 0, 1, 2])), "6 pairs, two duplicate groups"),
    ]


def check_hard_negative_weights(fn) -> Verdict:
    """Check ``fn(sim_i2t (B, B), content_ids (B,)) -> (w_t2i, w_i2t)``, the masked softmax rows."""
    return check("check_hard_negative_weights", fn, hard_negative_weights_reference, _negative_cases())


def decoder_mask_reference(tokens: torch.Tensor, num_image_tokens: int, pad_token_id: int) -> torch.Tensor:
    from ..blip.text import mode_mask

    return mode_mask(tokens, num_image_tokens, pad_token_id, "decoder")


def _mask_cases() -> list[Case]:
    return [
        Case((torch.tensor([[35, 4, 9, 33]]), 2, 0), "one caption, no padding, 2 image tokens"),
        Case((torch.tensor([[35, 4, 33, 0, 0]]), 3, 0), "one caption with two [PAD]s at the end"),
        Case((torch.tensor([[35, 33], [35, 0]]), 1, 0), "two captions, one image token"),
        Case((torch.tensor([[35, 4, 9, 12, 33, 0], [35, 7, 33, 0, 0, 0], [35, 1, 2, 3, 4, 33]]), 17, 0),
             "three captions, the 17 tokens of the course's ViT"),
        Case((torch.tensor([[9, 4, 2, 9]]), 2, 9), "[PAD] is id 9 here, and appears first"),
    ]


def check_decoder_mask(fn) -> Verdict:
    """Check ``fn(tokens (B, L), num_image_tokens, pad_token_id) -> (B, L, L + T)`` bool."""
    return check("check_decoder_mask", fn, decoder_mask_reference, _mask_cases())


def nucleus_mask_reference(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    from ..blip.decode import nucleus_mask

    return nucleus_mask(logits, top_p)


def _nucleus_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    return [
        Case((probs.log(), 0.9), "probabilities 0.5, 0.3, 0.15, 0.05 and top_p 0.9: three tokens kept"),
        Case((probs.log(), 0.75), "the same, top_p 0.75: two tokens kept"),
        Case((probs.log()[:, [2, 0, 3, 1]], 0.5), "shuffled vocabulary, top_p 0.5: only the most likely token"),
        Case((torch.randn(3, 10, generator=g) * 2, 0.95), "3 rows of 10 random logits, top_p 0.95"),
        Case((torch.randn(2, 7, generator=g), 1.0), "top_p 1: nothing removed"),
        Case((torch.randn(4, 36, generator=g) * 3, 0.01), "top_p 0.01: greedy (only the best token)"),
    ]


def check_nucleus_mask(fn) -> Verdict:
    """Check ``fn(logits (B, V), top_p) -> (B, V)`` bool, True for the tokens in the nucleus."""
    return check("check_nucleus_mask", fn, nucleus_mask_reference, _nucleus_cases())

"""ITM's hard negatives: for every text a wrong image, for every image a wrong text, chosen hard.

A random wrong pair is usually easy ("a red circle" against a picture of a blue square), so the
ITM head learns little from it. BLIP instead draws the negative from the softmax of the in-batch
ITC similarities: the more an image resembles the text, the likelier it is picked as its negative.

The catch: the most similar "other" image is often not wrong at all. A batch may hold two scenes
with the same caption (ShapesWorld repeats captions; web data repeats images). Drawing one of
them as a negative teaches ITM to reject a true match. So every pair whose content is identical
(the positive itself included) is masked out before sampling, as BLIP's retrieval code does with
its image ids (``mask = idx == idx.T``). BLIP's pretraining code only zeroes the diagonal.

Shapes: B = batch. ``sim_i2t`` (B, B): row i = image i against every text; content ids (B,).
"""

from __future__ import annotations

import torch


def same_content_mask(content_ids: torch.Tensor) -> torch.Tensor:
    """(B, B) bool, True where pair (i, j) has the same content, the diagonal (positives) included."""
    if not isinstance(content_ids, torch.Tensor) or content_ids.ndim != 1:
        raise ValueError(f"content_ids must be a tensor of shape (B,), got {getattr(content_ids, 'shape', content_ids)!r}")
    return content_ids[:, None] == content_ids[None, :]


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``weights`` (B, B) >= 0; -1 for a row with no candidate (all zero)."""
    ok = weights.sum(dim=1) > 0
    picks = torch.full((len(weights),), -1, dtype=torch.long, device=weights.device)
    if ok.any():
        picks[ok] = torch.multinomial(weights[ok], 1, generator=generator).squeeze(1)
    return picks


def sample_hard_negatives(
    sim_i2t: torch.Tensor,
    content_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one hard negative per text and per image from the softmax of the similarities.

    Args:
        sim_i2t: (B, B) image-to-text similarities (logits, e.g. cosine / temperature); no gradient needed.
        content_ids: (B,) equal ids for pairs with identical content (e.g. :func:`mmcourse.clip.caption_ids`
            of the captions). None: every pair is distinct, only the diagonal is masked.
        generator: for reproducible draws.

    Returns:
        ``neg_image_for_text`` (B,): for text j, the index of a negative image;
        ``neg_text_for_image`` (B,): for image i, the index of a negative text.
        Never a pair of the same content. -1 where a row has no possible negative (every pair in
        the batch has the same content as it); :func:`mmcourse.blip.itm_loss` drops those.
    """
    if sim_i2t.ndim != 2 or sim_i2t.shape[0] != sim_i2t.shape[1]:
        raise ValueError(f"sim_i2t must be a square (B, B) matrix, got {tuple(sim_i2t.shape)}")
    B = len(sim_i2t)
    if content_ids is None:
        content_ids = torch.arange(B, device=sim_i2t.device)
    if content_ids.shape != (B,):
        raise ValueError(f"content_ids must have shape ({B},), got {tuple(content_ids.shape)}")
    w_t2i, w_i2t = hard_negative_weights(sim_i2t, content_ids)
    return _draw(w_t2i, generator), _draw(w_i2t, generator)


def hard_negative_weights(sim_i2t: torch.Tensor, content_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The probabilities :func:`sample_hard_negatives` draws from: (B, B) ``w_t2i`` (row j: text j
    over the images) and ``w_i2t`` (row i: image i over the texts).

    Each row is the softmax of the similarities with every same-content pair (the diagonal
    included) left out; a row with no allowed pair is all zeros.
    """
    mask = same_content_mask(content_ids.to(sim_i2t.device))               # (B, B): not a negative
    sim = sim_i2t.detach().float().masked_fill(mask, float("-inf"))
    # softmax of an all -inf row is NaN; those rows get weight 0 (and index -1 when drawing)
    w_t2i = sim.T.softmax(dim=1).nan_to_num(0.0)                             # row j: text j over images
    w_i2t = sim.softmax(dim=1).nan_to_num(0.0)                               # row i: image i over texts
    return w_t2i, w_i2t


def sample_negatives_diagonal_only(sim_i2t: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BLIP's pretraining sampler, for comparison: softmax + 1e-4, zero the diagonal, draw.

    It knows only that pair (i, i) is positive; a duplicate elsewhere in the batch can be drawn.
    """
    w_i2t = sim_i2t.detach().float().softmax(dim=1) + 1e-4
    w_t2i = sim_i2t.detach().float().T.softmax(dim=1) + 1e-4
    w_i2t.fill_diagonal_(0)
    w_t2i.fill_diagonal_(0)
    return torch.multinomial(w_t2i, 1, generator=generator).squeeze(1), torch.multinomial(w_i2t, 1, generator=generator).squeeze(1)


def mask_failure_demo(sim_i2t: torch.Tensor, content_ids: torch.Tensor, draws: int = 200,
                      seed: int = 0) -> dict[str, float | str]:
    """What goes wrong without the same-content mask, measured on one batch with duplicates.

    Returns:
        ``false_negative_rate_diagonal_only``: share of negatives drawn by BLIP's pretraining
        sampler (diagonal masked only) that have the same content as their anchor, i.e. are
        really positives; ``false_negative_rate_masked``: the same for
        :func:`sample_hard_negatives` (0 by construction); ``error_without_fallback``: the
        message ``torch.multinomial`` raises on a row whose every entry is masked (a batch whose
        pairs all share one content), which :func:`sample_hard_negatives` answers with -1.
    """
    same = same_content_mask(content_ids)
    g = torch.Generator().manual_seed(seed)
    B = len(content_ids)
    rows = torch.arange(B)
    bad_diag = bad_masked = total = 0
    for _ in range(draws):
        img, txt = sample_negatives_diagonal_only(sim_i2t, g)
        bad_diag += int(same[img, rows].sum() + same[rows, txt].sum())
        img, txt = sample_hard_negatives(sim_i2t, content_ids, g)
        ok_img, ok_txt = img >= 0, txt >= 0
        bad_masked += int(same[img[ok_img], rows[ok_img]].sum() + same[rows[ok_txt], txt[ok_txt]].sum())
        total += 2 * B
    all_same = torch.zeros(B, dtype=torch.long)
    weights = sim_i2t.detach().float().softmax(dim=1).masked_fill(same_content_mask(all_same), 0.0)
    try:
        torch.multinomial(weights, 1, generator=g)
        error = ""
    except RuntimeError as err:
        error = str(err).splitlines()[0]
    return {"false_negative_rate_diagonal_only": bad_diag / total, "false_negative_rate_masked": bad_masked / total,
            "error_without_fallback": error}

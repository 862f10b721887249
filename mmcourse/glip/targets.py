"""Training targets: which locations are positive, which tokens each positive location must light up.

Two steps, as in GLIP (``modeling/rpn/loss.py`` with ATSS; here FCOS's centre sampling):

1. **Locations -> boxes.** A grid location (the centre of a feature cell, stride s pixels) is
   *positive* for a ground-truth box when it lies inside the box AND within ``radius * s`` pixels
   of the box centre along both axes (FCOS's centre sampling, Tian et al., 2019/2020). A location
   inside several such boxes takes the smallest one. Everything else is background.
2. **Boxes -> tokens.** Each box comes with its phrase's character span in the prompt
   (ShapesWorld's ``spans``). The span becomes the set of tokens whose words overlap it
   (GLIP's ``create_positive_map``, binary as in its collate). A positive location's target row is
   its box's token set: a binary N x M matrix instead of a one-hot over classes.
"""

from __future__ import annotations

import re

import torch

from ..clip.tokenizer import WordTokenizer

RADIUS = 1.5  # centre-sampling radius in strides (FCOS's CENTER_SAMPLING_RADIUS)


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of each word that :meth:`WordTokenizer.split` produces.

    The tokenizer replaces punctuation with spaces (same length) and splits on whitespace, so the
    offsets are those of the non-space runs of that replaced string.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    cleaned = re.sub(r"[^\w\s]", " ", text.lower())
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", cleaned)]


def span_to_tokens(text: str, span: tuple[int, int], first_token: int = 1) -> list[int]:
    """Token positions covered by the character span ``(start, end)`` of ``text``.

    A word belongs to the span when their character ranges overlap. Token position = word index +
    ``first_token`` (1: the tokenizer puts ``<start>`` at position 0). Raises ValueError for a span
    outside the text or one that covers no word.
    """
    start, end = span
    if not (0 <= start < end <= len(text)):
        raise ValueError(f"span={span!r} must satisfy 0 <= start < end <= len(text) = {len(text)}")
    tokens = [first_token + i for i, (s, e) in enumerate(word_offsets(text)) if s < end and e > start]
    if not tokens:
        raise ValueError(f"span={span!r} covers no word of {text!r}")
    return tokens


def positive_map(text: str, spans: list[tuple[int, int] | None], length: int) -> torch.Tensor:
    """(K, length) bool: row k marks the tokens of phrase k (a row of False for ``None``).

    ``length`` is the tokenized width (the context length); tokens past it are an error.
    """
    out = torch.zeros(len(spans), length, dtype=torch.bool)
    for k, span in enumerate(spans):
        if span is None:
            continue
        toks = span_to_tokens(text, span)
        if max(toks) >= length - 1:  # the last slot of a full row is <end>
            raise ValueError(f"span {span!r} of {text!r} reaches token {max(toks)}, past the context length {length}")
        out[k, toks] = True
    return out


def grid_points(size: int, stride: int) -> torch.Tensor:
    """(N, 2) xy pixel centres of the cells of a (size/stride)^2 feature grid, row by row.

    Cell (i, j) covers pixels [j*s, (j+1)*s) x [i*s, (i+1)*s), so its centre is j*s + s/2.
    """
    if size % stride:
        raise ValueError(f"size ({size}) must be a multiple of stride ({stride})")
    g = size // stride
    c = torch.arange(g, dtype=torch.float32) * stride + stride / 2
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def assign_locations(points: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, stride: int,
                     radius: float = RADIUS, image_size: int | None = None) -> torch.Tensor:
    """Centre sampling: (B, N) index of the box each location is positive for, -1 = background.

    Args:
        points: (N, 2) xy location centres (:func:`grid_points`).
        boxes: (B, K, 4) xyxy pixel boxes. valid: (B, K) bool, False for padding / unprompted boxes.
        stride: the grid stride in pixels. radius: the sampling radius in strides.
        image_size: when given, every valid box must lie inside [0, image_size] with x0 < x1, y0 < y1.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or valid.shape != boxes.shape[:2]:
        raise ValueError(f"boxes must be (B, K, 4) and valid (B, K), got {tuple(boxes.shape)} and {tuple(valid.shape)}")
    if image_size is not None and valid.any():
        b = boxes[valid]
        bad = (b < 0).any(-1) | (b > image_size).any(-1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        if bad.any():
            raise ValueError(f"boxes must be xyxy inside the {image_size} x {image_size} image with x0 < x1 and "
                             f"y0 < y1; got {b[bad][0].tolist()}")
    x, y = points[:, 0][None, :, None], points[:, 1][None, :, None]       # (1, N, 1)
    x0, y0, x1, y1 = (boxes[..., i][:, None, :] for i in range(4))        # (B, 1, K)
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, radius * stride
    inside = (x > x0) & (x < x1) & (y > y0) & (y < y1)                     # (B, N, K)
    central = ((x - cx).abs() < r) & ((y - cy).abs() < r)
    ok = inside & central & valid[:, None, :]
    area = ((x1 - x0) * (y1 - y0)).expand_as(ok).masked_fill(~ok, float("inf"))
    best = area.argmin(dim=-1)                                             # smallest box wins
    return torch.where(ok.any(dim=-1), best, torch.full_like(best, -1))


def encode_ltrb(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Distances from each point (..., 2) to the sides of its box (..., 4): (left, top, right, bottom)."""
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y], dim=-1)


def decode_ltrb(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`encode_ltrb`: xyxy boxes (..., 4)."""
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]], dim=-1)


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS's centerness sqrt(min(l, r)/max(l, r) * min(t, b)/max(t, b)), in [0, 1], shape (...)."""
    lr, tb = ltrb[..., [0, 2]], ltrb[..., [1, 3]]
    ratio = (lr.min(-1).values / lr.max(-1).values.clamp(min=1e-6)) * (tb.min(-1).values / tb.max(-1).values.clamp(min=1e-6))
    return ratio.clamp(min=0).sqrt()


def token_targets(assigned: torch.Tensor, box_tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, M) binary token targets: row n is the token set of the box location n is assigned to.

    Args:
        assigned: (B, N) box index per location, -1 = background (:func:`assign_locations`).
        box_tokens: (B, K, M) bool, the tokens of each box's phrase (:func:`positive_map`).
    """
    B, N = assigned.shape
    idx = assigned.clamp(min=0)[..., None].expand(B, N, box_tokens.shape[-1])
    rows = box_tokens.gather(1, idx)                                        # (B, N, M)
    return (rows & (assigned >= 0)[..., None]).float()


def tokenize_with_spans(tokenizer: WordTokenizer, texts: list[str], spans: list[list[tuple[int, int] | None]]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) and the per-box token sets (B, K, L) for prompts with phrase spans.

    K is the longest spans list; shorter ones are padded with empty rows.
    """
    ids = tokenizer(texts)
    ids = ids[:, : int((ids != tokenizer.pad_token_id).sum(1).max())]  # drop the all-padding columns
    K = max((len(s) for s in spans), default=0)
    maps = torch.zeros(len(texts), K, ids.shape[1], dtype=torch.bool)
    for i, (text, sp) in enumerate(zip(texts, spans)):
        if sp:
            maps[i, : len(sp)] = positive_map(text, sp, ids.shape[1])
    return ids, maps

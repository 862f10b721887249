"""Checkers for the GLIP notebook: token targets from spans, the alignment logits, NMS."""

from __future__ import annotations

import torch

from .core import Case, Verdict, check


def positive_map_reference(text: str, spans: list, length: int) -> torch.Tensor:
    from ..glip.targets import positive_map

    return positive_map(text, spans, length)


def _positive_map_cases() -> list[Case]:
    cap = "a small red circle at the top left and a large blue square on the right"
    s1, s2 = cap.index("small red circle"), cap.index("large blue square")
    return [
        Case(("circle. square. triangle. diamond. cross.", [(0, 6), (8, 14), (16, 24), (26, 33), (35, 40)], 12),
             "the detection prompt of the five shape names (one token per phrase)"),
        Case(("red circle. blue square.", [(0, 10), (12, 23)], 8), "two two-word phrases separated by '. '"),
        Case((cap, [(s1, s1 + 16), (s2, s2 + 17)], 20), "a caption with two phrases (tokens 2-4 and 11-13)"),
        Case((cap, [(s2, s2 + 17), None], 20), "a phrase and a None (an object the prompt does not name)"),
        Case(("there is a large yellow cross", [(11, 29)], 10), "one phrase at the end of the caption"),
    ]


def check_positive_map(fn) -> Verdict:
    """Check ``fn(text, spans, length) -> (K, length) bool`` token targets of each phrase."""
    return check("check_positive_map", fn, positive_map_reference, _positive_map_cases())


def alignment_logits_reference(regions, tokens, tau, bias):
    from ..glip.head import alignment_logits

    return alignment_logits(regions, tokens, tau, bias)


def _alignment_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    return [
        Case((r(1, 1, 4), r(1, 1, 4), 1.0, torch.zeros(1, 1)), "one location, one token, tau 1, no bias"),
        Case((r(1, 3, 4), r(1, 2, 4), 0.5, torch.full((1, 2), -4.595)), "3 locations, 2 tokens, tau 0.5, the prior bias"),
        Case((r(2, 6, 8), r(2, 5, 8), 2.0, r(2, 5)), "a batch of 2, different biases per token"),
        Case((r(3, 16, 8), r(3, 7, 8), torch.tensor(0.1), r(3, 7)), "tau as a tensor"),
    ]


def check_alignment_logits(fn) -> Verdict:
    """Check ``fn(regions (B, N, D), tokens (B, M, D), tau, bias (B, M)) -> (B, N, M)``."""
    return check("check_alignment_logits", fn, alignment_logits_reference, _alignment_cases())


def nms_reference(boxes, scores, iou_threshold):
    """The course's box toolkit (``mmcourse.boxes.nms``, tested against torchvision's semantics)."""
    from ..boxes import nms

    return nms(boxes, scores, iou_threshold)


def _nms_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)

    def rand(n):
        xy = torch.rand(n, 2, generator=g) * 40
        return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 20 + 1], 1), torch.rand(n, generator=g)

    b1 = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    return [
        Case((b1[:1], torch.tensor([0.9]), 0.5), "a single box"),
        Case((b1, torch.tensor([0.9, 0.8, 0.7]), 0.5), "two overlapping boxes (IoU 0.68) and a separate one"),
        Case((b1, torch.tensor([0.7, 0.8, 0.9]), 0.5), "the same boxes, scores reversed (the order of the output)"),
        Case((b1, torch.tensor([0.9, 0.8, 0.7]), 0.7), "threshold 0.7: the overlap 0.68 is kept"),
        Case((*rand(40), 0.5), "40 random boxes, threshold 0.5"),
        Case((*rand(60), 0.3), "60 random boxes, threshold 0.3"),
    ]


def check_nms(fn) -> Verdict:
    """Check ``fn(boxes (n, 4), scores (n,), iou_threshold) -> kept indices, best first``."""
    return check("check_nms", fn, nms_reference, _nms_cases())


from .core import expect, format_bound  # noqa: E402,F401

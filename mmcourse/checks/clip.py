"""Checkers for the CLIP notebook: the contrastive loss and the prompt-ensembled classifier."""

from __future__ import annotations

import math
import zlib

import torch

from .core import Case, Verdict, check


def clip_loss_reference(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric cross-entropy over the scaled cosine-similarity matrix (no duplicate masking)."""
    from ..clip.loss import clip_loss

    return clip_loss(image_features, text_features, logit_scale)


def _loss_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)

    def feats(b: int, d: int) -> torch.Tensor:
        # rows of very different lengths: a loss that forgets to normalise gets other numbers
        return torch.randn(b, d, generator=g) * torch.linspace(0.3, 4.0, b)[:, None]

    dup_txt = feats(5, 8)
    dup_txt[3] = dup_txt[1]  # two identical captions in one batch
    return [
        Case((feats(1, 8), feats(1, 8), 14.0), "a batch of one pair (its loss is 0: no negatives)"),
        Case((feats(4, 8), feats(4, 8), 1 / 0.07), "4 pairs, features of different lengths, scale 1/0.07"),
        Case((feats(6, 16), feats(6, 16), 1.0), "6 pairs, scale 1"),
        Case((feats(6, 16), feats(6, 16), 100.0), "6 pairs, scale 100 (the clamp's maximum)"),
        Case((feats(5, 8), dup_txt, torch.tensor(20.0)), "5 pairs where captions 1 and 3 are identical; scale a tensor"),
        Case((feats(32, 12), feats(32, 12), torch.tensor(math.exp(2.0))), "32 pairs, scale exp(2) as a tensor"),
    ]


def check_clip_loss(fn) -> Verdict:
    """Check ``fn(image_features (B, E), text_features (B, E), logit_scale) -> scalar loss``."""
    return check("check_clip_loss", fn, clip_loss_reference, _loss_cases())


class FakeTextTower:
    """A stand-in text encoder for the checker: each string gets a fixed pseudo-random vector of
    a pseudo-random length (0.2 to 5), so averaging without normalising gives other numbers."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(zlib.crc32(t.encode()))
            v = torch.randn(self.dim, generator=g)
            rows.append(v / v.norm() * (0.2 + 4.8 * torch.rand((), generator=g)))
        return torch.stack(rows)

    def __repr__(self) -> str:
        return f"a text encoder (list of N strings -> ({'N'}, {self.dim}) features)"


def build_zero_shot_weights_reference(encode_text, classnames, templates) -> torch.Tensor:
    from ..clip.zero_shot import build_zero_shot_weights

    return build_zero_shot_weights(encode_text, classnames, templates)


def _zero_shot_cases() -> list[Case]:
    from ..clip.zero_shot import shapes_classnames

    return [
        Case((FakeTextTower(8), ["a red circle"], ["{}"]), "one class, one template"),
        Case((FakeTextTower(8), ["a red circle", "a blue square", "a green cross"], ["a picture of {}"]),
             "three classes, one template"),
        Case((FakeTextTower(8), ["cat", "dog", "bird", "fish"], ["a photo of a {}", "a drawing of a {}", "a {} again"]),
             "four classes, three templates"),
        Case((FakeTextTower(16), shapes_classnames(),
              ["{}", "there is {} at the top", "a picture of {} on the left",
               "an image with {} at the bottom right", "at the top left there is {}"]),
             "the 30 ShapesWorld classes, five caption-style templates"),
    ]


def check_build_zero_shot_weights(fn) -> Verdict:
    """Check ``fn(encode_text, classnames, templates) -> (D, C)`` prompt-ensembled class weights."""
    return check("check_build_zero_shot_weights", fn, build_zero_shot_weights_reference, _zero_shot_cases())


from .core import expect, format_bound  # noqa: E402,F401  (notebook 04 prints its measurements the same way)

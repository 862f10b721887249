"""Judges of a generated ShapesWorld image, all from the course: is it what the prompt asked for?

- **shape**: the shipped shape ViT (``vit_shapes_broad``, notebook 03) on the background-subtracted image;
- **colour**: the object's pixels (those far from the background colour, the image's median)
  averaged and matched to the nearest named palette colour;
- **position**: the object's centre (the mean of its pixel coordinates), in thirds of the image;
- **size**: the object's area against a threshold for the judged shape (ShapesWorld's small and
  large radii, 0.11 and 0.16 of the side, give areas k_shape * r^2; the threshold sits at the
  geometric mean of the two);
- **CLIP score**: the cosine similarity of the image and the prompt under the course's CLIP
  (``clip_shapes_broad``, notebook 04).

A judge is only worth its verdict if it agrees with ShapesWorld's own labels on real scenes:
:func:`agreement` measures it (tests require >= 98% per attribute on seen colour-shape pairs).

Shapes: images (B, 3, 32, 32) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.shapes import COLOURS, COLOUR_NAMES, POSITIONS, RADIUS, SHAPES, SIZES

SHAPE_JUDGE = "vit_shapes_broad"
CLIP_JUDGE = "clip_shapes_broad"
OBJECT_THRESHOLD = 0.3  # RGB distance from the background above which a pixel belongs to the object
# Area of each shape in units of r^2 (see mmcourse.data.shapes: _circle ... _cross).
AREA_PER_R2 = {"circle": math.pi, "square": 1.6**2, "triangle": 1.75, "diamond": 2.0, "cross": 2 * 1.4 - 0.7**2}
_PALETTE = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])  # (6, 3)


def object_masks(images: torch.Tensor, threshold: float = OBJECT_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks (B, H, W) bool, distance from the background (B, H, W)) of one-object images.

    The background colour is each channel's median pixel (the object covers well under half).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    background = images.flatten(2).median(dim=-1).values[:, :, None, None]  # (B, 3, 1, 1)
    dist = (images - background).norm(dim=1)                                # (B, H, W)
    return dist > threshold, dist


def judge_colour(images: torch.Tensor) -> torch.Tensor:
    """(B,) index into COLOUR_NAMES of the object's colour, -1 when no object is found.

    The colour is the mean of the object's core pixels (more than half the largest distance from
    the background: edge pixels are blended with it).
    """
    masks, dist = object_masks(images)
    core = masks & (dist > 0.5 * dist.flatten(1).max(dim=1).values[:, None, None])
    w = core.float()[:, None]                                               # (B, 1, H, W)
    rgb = (images * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp(min=1)     # (B, 3)
    out = torch.cdist(rgb, _PALETTE).argmin(dim=1)
    return torch.where(masks.flatten(1).any(dim=1), out, -1)


def object_centres(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(xy centres (B, 2) in pixels, areas (B,) in pixels) of each image's object mask."""
    masks, _ = object_masks(images)
    H, W = masks.shape[1:]
    m = masks.float()
    area = m.sum(dim=(1, 2))
    ys = torch.arange(H, dtype=torch.float32) + 0.5
    xs = torch.arange(W, dtype=torch.float32) + 0.5
    cx = (m.sum(dim=1) * xs).sum(dim=1) / area.clamp(min=1)
    cy = (m.sum(dim=2) * ys).sum(dim=1) / area.clamp(min=1)
    return torch.stack([cx, cy], dim=1), area


def judge_position(images: torch.Tensor) -> torch.Tensor:
    """(B,) index into POSITIONS: the 3x3 cell (thirds of the image) holding the object's centre; -1 if none."""
    xy, area = object_centres(images)
    S = images.shape[-1]
    col = (xy[:, 0] * 3 / S).floor().clamp(0, 2).long()
    row = (xy[:, 1] * 3 / S).floor().clamp(0, 2).long()
    return torch.where(area > 0, row * 3 + col, -1)


def judge_size(images: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """(B,) index into SIZES from the object's area, given its (judged) shape (B,) index into SHAPES."""
    _, area = object_centres(images)
    S = images.shape[-1]
    k = torch.tensor([AREA_PER_R2[s] for s in SHAPES])[shape.clamp(min=0)]
    threshold = k * (RADIUS["small"] * S) * (RADIUS["large"] * S)          # k * r_small * r_large
    return torch.where(area > 0, (area > threshold).long(), -1)


@dataclass
class Judges:
    """The shape ViT and the CLIP used for judging (loaded once: :meth:`load`)."""

    vit: torch.nn.Module
    clip: torch.nn.Module

    @classmethod
    def load(cls) -> "Judges":
        from ..clip.tasks import load_clip
        from ..vit.tasks import load_vit

        return cls(load_vit(SHAPE_JUDGE), load_clip(CLIP_JUDGE))

    @torch.no_grad()
    def shape(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) index into SHAPES by the shipped ViT."""
        from ..vit.tasks import subtract_background

        return self.vit(subtract_background(images)).argmax(dim=-1)

    @torch.no_grad()
    def labels(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 4) judged shape, colour, size, position indices (-1: no object found)."""
        shape = self.shape(images)
        return torch.stack([shape, judge_colour(images), judge_size(images, shape), judge_position(images)], dim=1)

    @torch.no_grad()
    def clip_score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """(B,) cosine similarity of each image with its prompt under the course's CLIP."""
        from ..clip.tokenizer import WordTokenizer

        tok = WordTokenizer(context_length=self.clip.cfg.text.context_length)
        img = self.clip.encode_image(images, normalize=True)
        txt = self.clip.encode_text(tok(prompts), normalize=True)
        return (img * txt).sum(dim=1)

    def verdict(self, images: torch.Tensor, asked: list[dict]) -> list[dict[str, bool | None]]:
        """Per image, per attribute the prompt named: True when the judged value is the asked one."""
        got = self.labels(images)
        names = (SHAPES, COLOUR_NAMES, SIZES, POSITIONS)
        out = []
        for row, want in zip(got.tolist(), asked):
            out.append({a: (None if want.get(a) is None else (row[i] >= 0 and names[i][row[i]] == want[a]))
                        for i, a in enumerate(("shape", "colour", "size", "position"))})
        return out


def agreement(judges: Judges, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Share of images on which each judge agrees with the true labels (B, 4) (shape, colour, size, position)."""
    got = judges.labels(images)
    out = {a: float((got[:, i] == labels[:, i]).float().mean()) for i, a in enumerate(("shape", "colour", "size", "position"))}
    out["all"] = float((got == labels).all(dim=1).float().mean())
    return out

"""SAM's prompt encoder: the user's intent as tokens (sparse) and a map (dense).

* A point is where, plus what: its random-Fourier positional encoding (``pe_layer``) plus a
  learned embedding saying positive (``point_embeddings[1]``) or negative (``[0]``).
* A box is its two corners, each a point with its own "top-left" / "bottom-right" embedding
  (``point_embeddings[2]``, ``[3]``): two tokens.
* Text (the course's addition, SAM's paper sketches it): the frozen CLIP text tower's pooled
  embedding, projected by ``text_proj`` into one token.
* A mask is already a picture aligned with the image, so it stays dense: a small CNN
  (``mask_downscaling``) shrinks it 4x to the embedding grid and it is *added* to the image
  embedding. No mask: ``no_mask_embed`` is added everywhere instead.

Parameter names are segment-anything's (segment_anything/modeling/prompt_encoder.py), so its
state dicts load unchanged; ``text_proj`` exists only when ``text_dim`` is given.

Shapes: B prompts, N points, C = embed_dim, (h, w) the embedding grid, (H, W) the input image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of a position (Tancik et al., 2020).

    A fixed Gaussian matrix G (2, C/2) projects the normalised coordinates c in [0, 1]^2:
    ``pe(c) = [sin(2 pi (2c - 1) G), cos(2 pi (2c - 1) G)]``. Nearby points get similar codes, far
    ones nearly orthogonal codes, at every scale the frequencies in G cover.
    """

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) coordinates in [0, 1] -> (..., C)."""
        coords = 2 * coords - 1                                     # [-1, 1]
        coords = coords @ self.positional_encoding_gaussian_matrix  # (..., C/2)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """The dense grid's encoding (C, h, w): cell (i, j) at its centre ((j + .5) / w, (i + .5) / h)."""
        h, w = size
        G = self.positional_encoding_gaussian_matrix
        y = (torch.arange(h, device=G.device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=G.device, dtype=torch.float32) + 0.5) / w
        xy = torch.stack([x[None, :].expand(h, w), y[:, None].expand(h, w)], dim=-1)  # (h, w, 2)
        return self._pe_encoding(xy).permute(2, 0, 1)                                  # (C, h, w)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) pixel coordinates (x, y) in an image of image_size = (H, W) -> (B, N, C)."""
        coords = coords_input.clone().float()
        coords[..., 0] = coords[..., 0] / image_size[1]
        coords[..., 1] = coords[..., 1] / image_size[0]
        return self._pe_encoding(coords)


class PromptEncoder(nn.Module):
    """Points, boxes, text -> sparse tokens (B, N_tokens, C); mask -> dense map (B, C, h, w)."""

    def __init__(
        self, embed_dim: int, image_embedding_size: tuple[int, int], input_image_size: tuple[int, int],
        mask_in_chans: int, activation: type[nn.Module] = nn.GELU, text_dim: int | None = None,
        text_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos halves), got {embed_dim}")
        if mask_in_chans % 4:
            raise ValueError(f"mask_in_chans must be divisible by 4, got {mask_in_chans}")
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.num_point_embeddings = 4  # negative point, positive point, box top-left, box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self.text_dim = text_dim
        # A unit CLIP embedding has entries of about 1 / sqrt(text_dim); scaled by sqrt(text_dim) they
        # are of order 1, like the point tokens' (Fourier codes + type embeddings), so text_proj
        # starts at the scale of the other prompts instead of ~20x below it.
        self.text_scale = text_scale
        if text_dim is not None:
            self.text_proj = nn.Linear(text_dim, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, h, w): the positional encoding of every cell of the image embedding."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) xy pixels, (B, N) labels (1 positive, 0 negative, -1 padding) -> (B, N [+1], C)."""
        points = points + 0.5  # the centre of the pixel
        if pad:  # SAM appends one "not a point" when there is no box
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        pe = self.pe_layer.forward_with_coords(points, self.input_image_size)  # (B, N, C)
        lab = labels[..., None]
        return torch.where(lab == -1, self.not_a_point_embed.weight, pe
                           + torch.where(lab == 1, self.point_embeddings[1].weight, 0.0)
                           + torch.where(lab == 0, self.point_embeddings[0].weight, 0.0))

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) xyxy pixels -> two corner tokens (B, 2, C)."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        return pe + torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])[None]

    def _embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask logits -> (B, C, h, w)."""
        return self.mask_downscaling(masks)

    def embed_text(self, text_features: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) pooled text features -> one token (B, 1, C)."""
        if self.text_dim is None:
            raise ValueError("text: this prompt encoder has no text path (built without text_dim)")
        return self.text_proj(text_features * self.text_scale)[:, None]

    def forward(
        self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
        masks: torch.Tensor | None, text: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens (B, N_tokens, C) = [points (+ padding point), box corners, text token];
        dense (B, C, h, w) = the mask's embedding, or ``no_mask_embed`` everywhere."""
        self._check(points, boxes, masks, text)
        bs = next((t.shape[0] for t in (points[0] if points else None, boxes, masks, text) if t is not None), 1)
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((bs, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if text is not None:
            sparse.append(self.embed_text(text))
        if masks is not None:
            dense = self._embed_masks(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense

    def _check(self, points, boxes, masks, text) -> None:
        if points is not None:
            coords, labels = points
            if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise ValueError(f"points must be (coords (B, N, 2), labels (B, N)), got "
                                 f"{tuple(coords.shape)} and {tuple(labels.shape)}")
            if not bool(((labels == -1) | (labels == 0) | (labels == 1)).all()):
                raise ValueError(f"point labels must be 1 (positive), 0 (negative) or -1 (padding), "
                                 f"got {sorted(set(labels.flatten().tolist()))}")
        if boxes is not None and (boxes.ndim != 2 or boxes.shape[-1] != 4):
            raise ValueError(f"boxes must have shape (B, 4) xyxy, got {tuple(boxes.shape)}")
        if masks is not None and (masks.ndim != 4 or tuple(masks.shape[1:]) != (1, *self.mask_input_size)):
            raise ValueError(f"masks must have shape (B, 1, {self.mask_input_size[0]}, {self.mask_input_size[1]}) "
                             f"(4x the embedding grid), got {tuple(masks.shape)}")
        if text is not None and (text.ndim != 2 or text.shape[1] != self.text_dim):
            raise ValueError(f"text must be pooled text features (B, {self.text_dim}), got {tuple(text.shape)}")

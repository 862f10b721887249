"""SAM's image encoder: the course ViT over the patch grid (no class token), then a neck.

Heavy, and run once per image: its output, the image embedding (C, h, w), is cached and every
prompt reuses it. Recipe (segment_anything/modeling/image_encoder.py, ViTDet style):

1. ``patch_embed``: P x P patches -> D numbers each, a (h, w) grid of tokens (h = H / P),
2. ``pos_embed``: a learned absolute position embedding per grid cell (no class token: every
   token is a piece of the image, none summarises it),
3. ``blocks``: pre-norm transformer blocks from :mod:`mmcourse.nn`; most attend only inside
   windows of ``window_size`` x ``window_size`` tokens (cheap on big grids), the blocks listed in
   ``global_attn_indexes`` attend over the whole grid; optionally decomposed relative position
   biases (``use_rel_pos``),
4. ``neck``: 1x1 conv -> LayerNorm2d -> 3x3 conv -> LayerNorm2d, from D to the prompt width C.

Parameter names are SAM's except the blocks' MLP (``mlp.fc1/fc2``, timm's and the course's; SAM
says ``lin1/lin2``) and ``pos_embed``, stored (1, h * w, D) like the course ViT (SAM: (1, h, w, D));
:func:`mmcourse.sam.convert.from_segment_anything` maps both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..nn import Block
from ..vit.patch_embed import PatchEmbed
from .common import LayerNorm2d


@dataclass
class ImageEncoderConfig:
    """Hyper-parameters of :class:`ImageEncoderViT` (names follow segment-anything's constructor)."""

    img_size: int = 64
    patch_size: int = 8
    in_chans: int = 3
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    out_chans: int = 64
    qkv_bias: bool = True
    use_rel_pos: bool = False
    window_size: int = 0            # 0: every block attends globally
    global_attn_indexes: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "out_chans"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        self.global_attn_indexes = tuple(int(i) for i in self.global_attn_indexes)
        if any(not 0 <= i < self.depth for i in self.global_attn_indexes):
            raise ValueError(f"global_attn_indexes must lie in 0..depth-1 = 0..{self.depth - 1}, "
                             f"got {self.global_attn_indexes}")

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        return d


class ImageEncoderViT(nn.Module):
    """Images (B, 3, S, S), normalised -> image embeddings (B, out_chans, S/P, S/P)."""

    def __init__(self, cfg: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ImageEncoderConfig()
        self.cfg = cfg
        g, D = cfg.grid, cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D)
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g, D))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            Block(D, cfg.num_heads, cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, eps=1e-6,
                  window_size=0 if i in cfg.global_attn_indexes else cfg.window_size,
                  rel_pos_size=(g, g) if cfg.use_rel_pos else None)
            for i in range(cfg.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(D, cfg.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(cfg.out_chans),
            nn.Conv2d(cfg.out_chans, cfg.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(cfg.out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.in_chans, cfg.img_size, cfg.img_size):
            raise ValueError(f"x must have shape (B, {cfg.in_chans}, {cfg.img_size}, {cfg.img_size}), "
                             f"got {tuple(x.shape)}")
        g = cfg.grid
        x = self.patch_embed(x) + self.pos_embed                   # (B, N, D), N = g * g
        for block in self.blocks:
            x = block(x, hw=(g, g))                                  # (B, N, D)
        x = x.transpose(1, 2).reshape(x.shape[0], -1, g, g)        # (B, D, g, g)
        return self.neck(x)                                         # (B, C, g, g)

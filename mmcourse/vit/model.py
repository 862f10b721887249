"""The Vision Transformer (ViT), readable in one sitting; the course's reference implementation.

Recipe (Dosovitskiy et al., 2020, "An Image is Worth 16x16 Words"):

1. cut the image into P x P patches and embed each one linearly (``patch_embed``),
2. prepend a learned class token (``cls_token``, 分类标记) whose output will be classified,
3. add a learned position embedding (``pos_embed``, 位置编码): attention itself ignores order,
4. run ``depth`` pre-norm transformer blocks (``blocks``, from :mod:`mmcourse.nn`),
5. apply a final LayerNorm (``norm``) and read the class token through a linear ``head``.

CLIP's image tower adds a LayerNorm before the blocks (``norm_pre``, with ``pre_norm=True``,
which also drops the patch convolution's bias) and uses QuickGELU (``act="quick_gelu"``).

Parameter names are timm's (``timm.models.vision_transformer.VisionTransformer`` with its
defaults: class-token pooling, bias in qkv, LayerNorm eps 1e-6, exact GELU), so a timm state dict
loads with ``load_state_dict`` and no renaming. CLIP's image tower, BLIP and SAM's encoder in
later notebooks reuse this class.

Shapes: B = batch, C = channels, N = patches, T = N + 1 tokens, D = width, H = heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..nn import Block, activation
from .patch_embed import PatchEmbed, check_divisible


# Images are in [0, 1] or normalised to a few units; far past this, float32 squares overflow (NaN).
MAX_PIXEL = 1e4


@dataclass
class ViTConfig:
    """Hyper-parameters of :class:`VisionTransformer` (names follow timm's constructor)."""

    img_size: int = 32
    patch_size: int = 8
    in_chans: int = 3
    num_classes: int = 5        # 0: no head, forward returns the class-token features (B, D)
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6      # timm's value; transformers' ViTConfig defaults to 1e-12
    act: str = "gelu"           # "quick_gelu" for OpenAI CLIP's image tower
    pre_norm: bool = False      # CLIP's tower: LayerNorm before the blocks, patch conv without bias

    def __post_init__(self) -> None:
        check_divisible(self.img_size, self.img_size, self.patch_size)
        for name in ("in_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {self.num_classes!r}")
        activation(self.act)  # raises ValueError naming the allowed values
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


class VisionTransformer(nn.Module):
    """ViT classifier: images (B, C, S, S) -> logits (B, num_classes).

    ``forward(x, return_attn=True)`` also returns every block's attention weights, a list of
    ``depth`` tensors (B, H, T, T), for attention maps and :func:`mmcourse.vit.attention_rollout`.
    """

    def __init__(self, cfg: ViTConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = cfg or ViTConfig()
        if overrides:
            cfg = ViTConfig(**{**cfg.to_dict(), **overrides})
        self.cfg = cfg
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D, bias=not cfg.pre_norm)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, D))  # cls first
        # timm's layout: an Identity (no parameters) unless pre_norm, so plain ViT keys are unchanged
        self.norm_pre = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.pre_norm else nn.Identity()
        act = activation(cfg.act)
        self.blocks = nn.ModuleList(
            Block(D, cfg.num_heads, cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, act=act, eps=cfg.norm_eps)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.head = nn.Linear(D, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the class token and position embeddings as timm does (small random values).

        The linear layers keep PyTorch's default initialisation rather than timm's std-0.02
        truncated normal. With std 0.02 the query-key products start near zero, attention stays
        uniform for hundreds of steps, and the small models of this course learn noticeably
        slower (ShapesWorld, 600 steps: 75% instead of 84% test accuracy). Loading pretrained
        weights overwrites all of this anyway.
        """
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def _check_input(self, x: torch.Tensor) -> None:
        cfg = self.cfg
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a tensor of images (B, C, H, W), got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
        dtype = self.cls_token.dtype
        if x.dtype != dtype:
            hint = " (uint8 pixels: x.float() / 255, then the model's preprocessing)" if x.dtype == torch.uint8 else ""
            raise ValueError(f"x must have the model's dtype {dtype}, got {x.dtype}{hint}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x must be finite: the images hold NaN or inf")
        if x.numel() and float(x.abs().max()) > MAX_PIXEL:
            raise ValueError(f"x must hold pixel values of magnitude at most {MAX_PIXEL:g} (images in [0, 1] or "
                             f"normalised), got {float(x.abs().max()):.3g}: LayerNorm's squares would overflow")
        if tuple(x.shape[1:]) != (cfg.in_chans, cfg.img_size, cfg.img_size):
            try:
                check_divisible(x.shape[2], x.shape[3], cfg.patch_size)
                why = "its position embeddings were learned for that grid"
            except ValueError as err:
                why = str(err)
            raise ValueError(f"x has shape {tuple(x.shape)}, but this ViT takes (B, {cfg.in_chans}, {cfg.img_size}, "
                             f"{cfg.img_size}): {why}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Steps 1-3: images (B, C, S, S) -> tokens (B, T, D), class token first, positions added."""
        self._check_input(x)
        tokens = self.patch_embed(x)                                  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)          # (B, 1, D), shared by all images
        return torch.cat([cls, tokens], dim=1) + self.pos_embed       # (B, T, D)

    def forward_features(
        self, x: torch.Tensor, return_attn: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images (B, C, S, S) -> normalised tokens (B, T, D) [, attention weights: depth x (B, H, T, T)]."""
        x = self.norm_pre(self.embed(x))
        attns = []
        for block in self.blocks:
            if return_attn:
                x, a = block(x, return_attn=True)
                attns.append(a)
            else:
                x = block(x)
        x = self.norm(x)
        return (x, attns) if return_attn else x

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised tokens (B, T, D) -> logits (B, num_classes): classify the class token only."""
        return self.head(tokens[:, 0])

    def forward(
        self, x: torch.Tensor, return_attn: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if return_attn:
            tokens, attns = self.forward_features(x, return_attn=True)
            return self.forward_head(tokens), attns
        return self.forward_head(self.forward_features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

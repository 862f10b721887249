"""CLIP: two towers that map images and texts into one space where matching pairs are close.

Recipe (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision"; 对比学习 contrastive learning, 双塔 two towers):

1. the image tower ``visual`` is the course's ViT (:mod:`mmcourse.vit`) without a head: it
   returns the class token's features (B, D_img), which ``image_projection`` maps to E numbers;
2. the text tower ``text`` (:mod:`.text_encoder`) returns E numbers per caption;
3. both are L2-normalised, so their dot product is the cosine similarity, in [-1, 1];
4. similarities are multiplied by a learned scale ``exp(logit_scale)`` (an inverse temperature)
   to become logits; :func:`.loss.clip_loss` then asks every image to pick its own caption out
   of the batch and every caption its own image.

``logit_scale`` starts at ln(1/0.07) (temperature 0.07) and is clamped to at most ln(100):
without the cap it keeps growing, the softmax saturates and training becomes unstable.

Shapes: B = batch, S = image side, L = context length, E = embed_dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..vit.model import ViTConfig, VisionTransformer
from .text_encoder import TextConfig, TextTransformer

INIT_LOGIT_SCALE = math.log(1 / 0.07)   # OpenAI's initial temperature 0.07
MAX_LOGIT_SCALE = math.log(100.0)       # open_clip's clamp: the scale never exceeds 100


def _default_vision() -> ViTConfig:
    return ViTConfig(img_size=32, patch_size=8, num_classes=0, embed_dim=64, depth=3, num_heads=4)


@dataclass
class CLIPConfig:
    """Hyper-parameters of :class:`CLIP`: the joint width and one config per tower."""

    embed_dim: int = 64
    vision: ViTConfig = field(default_factory=_default_vision)
    text: TextConfig = field(default_factory=TextConfig)

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = ViTConfig(**self.vision)
        if isinstance(self.text, dict):
            self.text = TextConfig(**self.text)
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {self.embed_dim!r}")
        if self.vision.num_classes != 0:
            raise ValueError(f"vision.num_classes must be 0 (CLIP reads the class-token features, no head), "
                             f"got {self.vision.num_classes}")

    def to_dict(self) -> dict:
        return {"embed_dim": self.embed_dim, "vision": self.vision.to_dict(), "text": self.text.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> CLIPConfig:
        return cls(embed_dim=d["embed_dim"], vision=ViTConfig(**d["vision"]), text=TextConfig(**d["text"]))


class CLIP(nn.Module):
    """Images (B, 3, S, S) and token ids (B, L) -> normalised features and the logit scale.

    ``forward`` returns what open_clip's CLIP returns: (image_features (B, E), text_features
    (B, E), both unit length, and ``logit_scale.exp()``, a scalar), ready for
    :func:`mmcourse.clip.clip_loss`. ``logits`` gives the (B, B) similarity matrices.
    """

    def __init__(self, cfg: CLIPConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or CLIPConfig()
        self.cfg = cfg
        # The towers' own initialisation is replaced below. Building them with the random state
        # restored afterwards keeps the result independent of how much randomness they use.
        with torch.random.fork_rng(devices=[]):
            self.visual = VisionTransformer(cfg.vision)
            self.text = TextTransformer(cfg.text, cfg.embed_dim)
        self.image_projection = nn.Parameter(torch.empty(cfg.vision.embed_dim, cfg.embed_dim))  # x @ W
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenAI's CLIP initialisation (open_clip's ``init_parameters``), every tensor set here.

        The ViT's classifier init (a class token of ~1e-6, std-0.02 position embeddings) makes
        every image's class token, and every caption's end token, start out almost the same
        vector. The contrastive loss then finds it quickest to make them *exactly* the same:
        every logit is equal, the loss sits at ln(B) and the gradients vanish. Weights of std
        width^-1/2 make the towers' outputs depend on their inputs from the first step.
        """
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for tower, width, layers in ((self.visual, self.cfg.vision.embed_dim, self.cfg.vision.depth),
                                     (self.text, self.cfg.text.width, self.cfg.text.layers)):
            attn_std, fc_std = width**-0.5, (2 * width) ** -0.5
            proj_std = width**-0.5 * (2 * layers) ** -0.5  # residual branches shrink with depth
            for block in tower.blocks:
                for linear, std in ((block.attn.qkv, attn_std), (block.attn.proj, proj_std),
                                    (block.mlp.fc1, fc_std), (block.mlp.fc2, proj_std)):
                    nn.init.normal_(linear.weight, std=std)
                    if linear.bias is not None:
                        nn.init.zeros_(linear.bias)
        conv = self.visual.patch_embed.proj
        nn.init.normal_(conv.weight, std=conv.weight[0].numel() ** -0.5)  # unit-scale patch tokens
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        scale = self.cfg.vision.embed_dim**-0.5
        nn.init.normal_(self.visual.cls_token, std=scale)
        nn.init.normal_(self.visual.pos_embed, std=scale)
        nn.init.normal_(self.image_projection, std=scale)
        self.text.reset_embeddings()
        with torch.no_grad():
            self.logit_scale.fill_(INIT_LOGIT_SCALE)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, 3, S, S) images -> (B, E) features (unit length if ``normalize``)."""
        x = self.visual(images) @ self.image_projection  # (B, D_img) -> (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, L) token ids -> (B, E) features (unit length if ``normalize``)."""
        x = self.text(tokens)
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_image(images, normalize=True), self.encode_text(tokens, normalize=True), self.logit_scale.exp()

    def logits(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_per_image (B_img, B_txt), logits_per_text = its transpose)."""
        img, txt, scale = self(images, tokens)
        logits_per_image = scale * img @ txt.T
        return logits_per_image, logits_per_image.T

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep ``logit_scale`` in [0, ln 100] (open_clip clamps after every optimiser step)."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

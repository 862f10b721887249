"""GLIP on ShapesWorld: detection as phrase grounding, in one readable module.

Recipe (Li et al., 2022, "Grounded Language-Image Pre-training"):

1. image -> stride-4 feature map (:class:`.backbone.Backbone`), flattened to N locations;
2. prompt -> token features P (the text transformer of :mod:`mmcourse.clip`, every token, not
   the pooled vector), one row per token of e.g. "circle. square. triangle. diamond. cross.";
3. deep fusion: ``fusion_layers`` rounds of bi-directional cross-attention
   (:class:`.fusion.FusionLayer`), each followed by a 3 x 3 convolution on the image side;
   ``fusion=False`` keeps the convolutions and skips the attention (the ablation);
4. dense head (:class:`.head.DenseHead`): box distances, centerness, region features O;
5. word-region alignment (:class:`.head.AlignmentHead`): logits S (N x M) instead of N x C classes.

Shapes: B = batch, N = locations (16 x 16 = 256 for 64 x 64 images), M = tokens, D = width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..clip.text_encoder import TextConfig, TextTransformer
from ..clip.tokenizer import WordTokenizer
from .backbone import Backbone, conv_block
from .fusion import FusionLayer
from .head import AlignmentHead, ClassHead, DenseHead
from .targets import decode_ltrb, grid_points
from .text import CLIP_CONTEXT, TEXT_ENCODERS, PhraseEncoder

HEADS = ("alignment", "classes")


@dataclass
class GLIPConfig:
    """Hyper-parameters of :class:`GLIP`."""

    img_size: int = 64
    dim: int = 64                 # D: image features, token features, region features
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 56      # a 4-object caption has up to 48 words + <start>, <end>
    fusion: bool = True           # the switch of the ablation
    fusion_layers: int = 2
    fusion_heads: int = 2
    fusion_init: float = 0.1      # starting value of the residual scales gamma
    text_encoder: str = "tokens"  # or "phrases": CLIP's pooled embedding of each phrase (.text)
    align_to_text: bool = False   # align regions with the text side's own (unfused) features
    project_text: bool | None = None  # the head's learned text projection; None: only when not align_to_text
    head: str = "alignment"       # or "classes": a fixed C-way classifier (notebook section 1)
    num_classes: int = 5

    def __post_init__(self) -> None:
        for name in ("img_size", "dim", "text_layers", "text_heads", "context_length", "fusion_layers",
                     "fusion_heads", "num_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {TEXT_ENCODERS}, got {self.text_encoder!r}")
        if self.project_text is not None and not isinstance(self.project_text, bool):
            raise ValueError(f"project_text must be None or a bool, got {self.project_text!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.dim % 8 or self.dim % self.fusion_heads or self.dim % self.text_heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of 8 and of the head counts")

    def to_dict(self) -> dict:
        return asdict(self)


class GLIP(nn.Module):
    """Images (B, 3, S, S) and token ids (B, M) -> per-location boxes, centerness and token logits."""

    def __init__(self, cfg: GLIPConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = cfg or GLIPConfig()
        if overrides:
            cfg = GLIPConfig(**{**cfg.to_dict(), **overrides})
        self.cfg = cfg
        self.tokenizer = WordTokenizer(context_length=cfg.context_length)
        tok = self.tokenizer
        self.backbone = Backbone(cfg.img_size, cfg.dim)
        if cfg.text_encoder == "tokens":
            self.text = TextTransformer(TextConfig(
                vocab_size=tok.vocab_size, context_length=cfg.context_length, width=cfg.dim,
                layers=cfg.text_layers, heads=cfg.text_heads, eot_token_id=tok.eot_token_id), embed_dim=cfg.dim)
        else:  # notebook 04's CLIP text tower; its joint embedding width must be D
            self.text = PhraseEncoder(TextConfig(
                vocab_size=tok.vocab_size, context_length=CLIP_CONTEXT, width=cfg.dim,
                layers=cfg.text_layers, heads=cfg.text_heads, eot_token_id=tok.eot_token_id), embed_dim=cfg.dim)
        self.fusion = nn.ModuleList(
            FusionLayer(cfg.dim, cfg.dim, cfg.fusion_heads, cfg.fusion_init) for _ in range(cfg.fusion_layers)
        ) if cfg.fusion else None
        self.towers = nn.ModuleList(conv_block(cfg.dim, cfg.dim) for _ in range(cfg.fusion_layers))
        self.head = DenseHead(cfg.dim, Backbone.stride)
        project = not cfg.align_to_text if cfg.project_text is None else cfg.project_text
        self.align = (AlignmentHead(cfg.dim, project_text=project) if cfg.head == "alignment"
                      else ClassHead(cfg.dim, cfg.num_classes))
        self.register_buffer("points", grid_points(cfg.img_size, Backbone.stride), persistent=False)

    def load_clip_text(self, name: str = "clip_shapes_broad") -> None:
        """Copy a shipped CLIP checkpoint's text tower (notebook 04) into the text side.

        Every weight is copied, the projection to the joint space included. The "phrases" side
        uses the pooled, projected embedding; the "tokens" side reads the features before pooling
        (the projection goes unused), and its longer context takes CLIP's 16 position embeddings
        in its first 16 rows, later positions (only long captions reach them) starting as a copy
        of the 16th.
        Raises ValueError when the checkpoint's tower does not fit.
        """
        from ..weights import load

        state, _ = load(name)
        text = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
        tower = self.text.tower if isinstance(self.text, PhraseEncoder) else self.text
        own = tower.state_dict()
        if sorted(text) != sorted(own):
            raise ValueError(f"{name}'s text tower has keys {sorted(set(text) ^ set(own))} that differ from GLIP's")
        pos = text["positional_embedding"]
        L = own["positional_embedding"].shape[0]
        text["positional_embedding"] = torch.cat([pos[:L], pos[-1:].expand(max(0, L - len(pos)), -1)])
        for k, v in text.items():
            if v.shape != own[k].shape:
                raise ValueError(f"{k}: shape {tuple(v.shape)} in {name}, {tuple(own[k].shape)} in GLIP")
        tower.load_state_dict(text)

    @property
    def stride(self) -> int:
        return Backbone.stride

    def token_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, M) bool: the word tokens (not padding, <start> or <end>): the columns that count."""
        t = self.tokenizer
        return (tokens != t.pad_token_id) & (tokens != t.sot_token_id) & (tokens != t.eot_token_id)

    def encode_text(self, tokens: torch.Tensor, units: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, M) ids -> token features (B, M, D) and the attention mask (B, M), True = real token.

        ``units`` (B, M) (:func:`.text.prompt_units`) says which phrase each token belongs to; the
        "phrases" text side needs it, the "tokens" side ignores it."""
        real = tokens != self.tokenizer.pad_token_id
        if isinstance(self.text, PhraseEncoder):
            return self.text(tokens, units), real
        return self.text.forward_features(tokens), real

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, units: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Returns a dict: "logits" (B, N, M) (or (B, N, C) for the class head), "ltrb" (B, N, 4),
        "boxes" (B, N, 4) xyxy pixels, "centerness" (B, N) logits, "regions" (B, N, D),
        "text" (B, M, D) fused token features. ``units``: see :meth:`encode_text`."""
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] != images.shape[0]:
            raise ValueError(f"tokens must be (B, M) with B = {images.shape[0]} images, got "
                             f"{tuple(getattr(tokens, 'shape', ())) or type(tokens).__name__}")
        fmap = self.backbone(images)                               # (B, D, g, g)
        B, D, g, _ = fmap.shape
        text, real = self.encode_text(tokens, units)               # (B, M, D), (B, M)
        text_in = text
        for i, tower in enumerate(self.towers):
            if self.fusion is not None:
                v = fmap.flatten(2).transpose(1, 2)                # (B, N, D)
                v, text = self.fusion[i](v, text, text_mask=real)
                fmap = v.transpose(1, 2).reshape(B, D, g, g)
            fmap = fmap + tower(fmap)                              # spread what was read to neighbours
        ltrb, ctr, regions = self.head(fmap)
        logits = self.align(regions, text_in if self.cfg.align_to_text else text)
        return {"logits": logits, "ltrb": ltrb, "boxes": decode_ltrb(self.points, ltrb),
                "centerness": ctr, "regions": regions, "text": text}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""CLIP's text tower: a small causal transformer read out at the end-of-text token.

Recipe (Radford et al., 2021, as in OpenAI's ``clip/model.py``):

1. embed each token (``token_embedding``) and add a learned position (``positional_embedding``),
2. run ``layers`` pre-norm blocks with a **causal** mask: token t attends to tokens 0..t only,
3. apply ``ln_final`` and read the hidden state at the end-of-text token: thanks to the causal
   mask it is the only position that has seen the whole sentence, and padding after it is
   never seen by anyone,
4. project it to the joint embedding space with ``text_projection`` (width x embed_dim).

Shapes: B = texts, L = context length, D = width, E = joint embedding width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..nn import ACTIVATIONS, Block, QuickGELU, activation  # noqa: F401  (re-exported)

POOLING = ("eot", "argmax")


@dataclass
class TextConfig:
    """Hyper-parameters of :class:`TextTransformer` (OpenAI CLIP's names in comments)."""

    vocab_size: int = 34          # ShapesWorld's WordTokenizer: 31 words + pad, start, end
    context_length: int = 16      # OpenAI: 77
    width: int = 64               # transformer_width
    layers: int = 2               # transformer_layers
    heads: int = 4                # transformer_heads
    mlp_ratio: float = 4.0
    act: str = "gelu"             # OpenAI weights: "quick_gelu"
    norm_eps: float = 1e-5        # PyTorch's (and CLIP's) LayerNorm default
    eot_token_id: int = 33        # the pooled position: first occurrence of this id ...
    pool: str = "eot"             # ... ("eot", transformers) or the largest id ("argmax", OpenAI)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "width", "layers", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if not 0 <= self.eot_token_id < self.vocab_size:
            raise ValueError(f"eot_token_id must be in 0..vocab_size-1 = 0..{self.vocab_size - 1}, got {self.eot_token_id}")
        activation(self.act)
        if self.pool not in POOLING:
            raise ValueError(f"pool must be one of {POOLING}, got {self.pool!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def causal_mask(length: int) -> torch.Tensor:
    """(L, L) bool, True where query t may attend key s, i.e. s <= t (lower triangle)."""
    return torch.ones(length, length, dtype=torch.bool).tril()


class TextTransformer(nn.Module):
    """Token ids (B, L) -> text features (B, E), not normalised.

    Args:
        cfg: the tower's :class:`TextConfig`.
        embed_dim: E, the width of the joint image-text space.
    """

    def __init__(self, cfg: TextConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.width
        self.token_embedding = nn.Embedding(cfg.vocab_size, D)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, D))
        act = activation(cfg.act)
        self.blocks = nn.ModuleList(
            Block(D, cfg.heads, cfg.mlp_ratio, act=act, eps=cfg.norm_eps) for _ in range(cfg.layers)
        )
        self.ln_final = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.text_projection = nn.Parameter(torch.empty(D, embed_dim))  # used as x @ W (OpenAI's layout)
        self.register_buffer("attn_mask", causal_mask(cfg.context_length), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small weights in the blocks, OpenAI's scales for the embeddings and the projection.

        :class:`mmcourse.clip.CLIP` re-initialises the blocks with OpenAI's larger scales.
        """
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.reset_embeddings()

    def reset_embeddings(self) -> None:
        """Token and position embeddings (std 0.02 and 0.01) and the projection (std width^-1/2,
        which keeps the projected features at unit scale whatever the width)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=self.cfg.width**-0.5)

    def pool_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) position of the end-of-text token in each row of ``tokens`` (B, L)."""
        if self.cfg.pool == "argmax":
            return tokens.argmax(dim=-1)  # OpenAI: the end token has the largest id
        is_eot = tokens == self.cfg.eot_token_id
        if not bool(is_eot.any(dim=-1).all()):
            bad = int((~is_eot.any(dim=-1)).nonzero()[0])
            raise ValueError(f"tokens row {bad} has no end-of-text token (id {self.cfg.eot_token_id}); "
                             "encode texts with the model's tokenizer")
        return is_eot.int().argmax(dim=-1)  # argmax of 0/1 returns the first 1

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 without pooling: (B, L) ids -> (B, L, D) hidden states after ``ln_final``."""
        if not isinstance(tokens, torch.Tensor):
            raise ValueError(f"tokens must be a tensor of integer ids (B, L) (the tokenizer's output), "
                             f"got {type(tokens).__name__}")
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be integer ids of shape (B, L), got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and not (0 <= int(tokens.min()) and int(tokens.max()) < self.cfg.vocab_size):
            raise ValueError(f"tokens must be ids in 0..{self.cfg.vocab_size - 1} (the vocabulary), "
                             f"got {int(tokens.min())}..{int(tokens.max())}")
        L = tokens.shape[1]
        if L > self.cfg.context_length:
            raise ValueError(f"tokens have length {L}, more than context_length {self.cfg.context_length}")
        x = self.token_embedding(tokens) + self.positional_embedding[:L]  # (B, L, D)
        mask = self.attn_mask[:L, :L]                                      # (L, L), broadcast over B, heads
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.ln_final(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(tokens)                                  # (B, L, D)
        pooled = x[torch.arange(x.shape[0], device=x.device), self.pool_index(tokens)]  # (B, D)
        return pooled @ self.text_projection                               # (B, E)

"""SAM's two-way transformer: prompt tokens and image embedding attend to each other.

Each of the ``depth`` blocks does four things (segment_anything/modeling/transformer.py):

1. self-attention among the tokens (output tokens + prompt tokens),
2. token -> image cross-attention: each token gathers what it needs from the image,
3. an MLP on the tokens,
4. image -> token cross-attention: every image position reads the tokens back (the "two way").

Positional encodings are added to queries and keys at every attention, never to the values.
Blocks are post-norm (LayerNorm after each residual). Cross-attention works in a narrower space,
``embedding_dim // attention_downsample_rate`` (SAM's attention downsampling, a cost saving).
A last token -> image attention (``final_attn_token_to_image``) finishes the tokens.

Shapes: B prompts, T tokens, N = h * w image positions, C = embedding_dim.
"""

from __future__ import annotations

import torch
from torch import nn

import torch.nn.functional as F
from .common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections into ``embedding_dim // downsample_rate``."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide embedding_dim // downsample_rate "
                             f"({self.internal_dim})")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _separate_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, heads, n, c/heads)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, C), k and v (B, Nk, C) -> (B, Nq, C)."""
        q = self._separate_heads(self.q_proj(q))
        k = self._separate_heads(self.k_proj(k))
        v = self._separate_heads(self.v_proj(v))
        # softmax(q kᵀ / sqrt(d)) v, as mmcourse.nn.attention writes it out; the fused kernel
        # gives the same numbers (the segment-anything cross-check) in fewer steps per prompt.
        out = F.scaled_dot_product_attention(q, k, v)          # (B, heads, Nq, c/heads)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.internal_dim))


class TwoWayAttentionBlock(nn.Module):
    """One block of the four steps above; ``skip_first_layer_pe``: layer 0's self-attention sees
    the raw tokens (which already are positional encodings) and has no residual."""

    def __init__(
        self, embedding_dim: int, num_heads: int, mlp_dim: int = 2048, activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2, skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=k, v=keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=k, k=q, v=queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """(image (B, C, h, w), its positional encoding (B, C, h, w), tokens (B, T, C)) ->
    (tokens (B, T, C), image positions (B, h * w, C))."""

    def __init__(
        self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU, attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth, self.embedding_dim, self.num_heads, self.mlp_dim = depth, embedding_dim, num_heads, mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, activation, attention_downsample_rate,
                                 skip_first_layer_pe=(i == 0))
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).transpose(1, 2)   # (B, N, C)
        key_pe = image_pe.flatten(2).transpose(1, 2)        # (B, N, C)
        queries = point_embedding                            # (B, T, C)
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=point_embedding, key_pe=key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q=q, k=k, v=keys))
        return queries, keys

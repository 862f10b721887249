"""Building blocks shared by the transformer-based topics (ViT, CLIP, BLIP, SAM, GLIP).

Parameter names follow timm (``qkv``, ``proj``, ``fc1``, ``fc2``, ``norm1``, ``norm2``) so that a
learner who reads ``timm/models/vision_transformer.py`` afterwards recognises every piece.

Shapes use B = batch, N = tokens, D = model width, H = heads, hd = D // H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out, returning the weights too.

    Args:
        q: (..., Nq, hd) queries.  k: (..., Nk, hd) keys.  v: (..., Nk, hv) values.
        mask: optional, broadcastable to (..., Nq, Nk). Boolean: True = may attend.
            Float: added to the scores (use -inf to block).

    Returns:
        out (..., Nq, hv) and weights (..., Nq, Nk); each row of weights sums to one.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last dim, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of tokens, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Nq, Nk)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (timm's layout).

    ``forward(x, mask=None, return_attn=False)``: x (B, N, D) -> (B, N, D), and the attention
    weights (B, H, N, N) when ``return_attn`` is true.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attn: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, hd)
        if return_attn:
            out, attn = attention(q, k, v, mask)  # (B, H, N, hd), (B, H, N, N)
        else:
            # The fused kernel is faster; it gives the same numbers (tested).
            out, attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
        out = self.proj(out.transpose(1, 2).reshape(B, N, D))  # (B, N, D)
        return (out, attn) if return_attn else out


ACTIVATIONS = ("gelu", "quick_gelu")  # names as in transformers' hidden_act


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation, ``x * sigmoid(1.702 x)``: a cheap approximation of GELU.

    The released CLIP weights were trained with it, so they need it to reproduce their outputs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation(name: str) -> type[nn.Module]:
    """The activation class for ``name`` in ACTIVATIONS ("gelu" = exact erf GELU)."""
    if name == "gelu":
        return nn.GELU
    if name == "quick_gelu":
        return QuickGELU
    raise ValueError(f"act must be one of {ACTIVATIONS}, got {name!r}")


class Mlp(nn.Module):
    """Two linear layers with an activation between: (B, N, D) -> (B, N, D_out)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    LayerNorm eps is 1e-6 as in timm's ViT. ``forward(x, mask=None, return_attn=False)`` maps
    (B, N, D) -> (B, N, D), plus the attention weights (B, H, N, N) when asked.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
        act: type[nn.Module] = nn.GELU, eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attn: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if return_attn:
            a, attn = self.attn(self.norm1(x), mask=mask, return_attn=True)
            x = x + a
            return x + self.mlp(self.norm2(x)), attn
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) time steps, as in the Transformer and DDPM.

    Args:
        t: (B,) time steps.  dim: embedding width (even).
    Returns:
        (B, dim): ``[cos(t * f_i), sin(t * f_i)]`` with frequencies f_i = max_period^(-i / (dim/2)).
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (MAE-style): (grid_h * grid_w, dim), row-major.

    Half of the channels encode the row, half the column; ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    emb_y = timestep_embedding(ys.flatten(), dim // 2)  # (HW, dim/2)
    emb_x = timestep_embedding(xs.flatten(), dim // 2)
    return torch.cat([emb_y, emb_x], dim=1)

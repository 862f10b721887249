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

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, rel_pos_size: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Option (SAM's ViTDet encoder): decomposed relative position biases, one learned table per
        # axis, (2h - 1, hd) and (2w - 1, hd) for a (h, w) token grid. Zero at the start, as in SAM.
        self.rel_pos_size = rel_pos_size
        if rel_pos_size is not None:
            h, w = rel_pos_size
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * h - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * w - 1, self.head_dim))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attn: bool = False,
        hw: tuple[int, int] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``hw``: the (h, w) token grid of x (h * w = N), needed only with relative positions."""
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, hd)
        if self.rel_pos_size is not None:
            if hw is None or hw[0] * hw[1] != N:
                raise ValueError(f"hw must be the (h, w) token grid of x with h * w = N = {N}, got {hw!r}")
            bias = decomposed_rel_pos(q, self.rel_pos_h, self.rel_pos_w, hw, hw)  # (B, H, N, N)
            if mask is not None:
                bias = bias.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else bias + mask
            mask = bias
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
        act: type[nn.Module] = nn.GELU, eps: float = 1e-6, window_size: int = 0,
        rel_pos_size: tuple[int, int] | None = None,
    ) -> None:
        """Options of SAM's image encoder (both off by default): ``window_size`` > 0 makes attention
        local to non-overlapping window_size x window_size windows of the token grid (padded when
        the grid is not a multiple); ``rel_pos_size`` = the (h, w) token grid turns on decomposed
        relative position biases (tables sized for the window when windowed, else for the grid).
        """
        super().__init__()
        if not isinstance(window_size, int) or window_size < 0:
            raise ValueError(f"window_size must be an int >= 0 (0 = global attention), got {window_size!r}")
        self.window_size = window_size
        if rel_pos_size is not None and window_size > 0:
            rel_pos_size = (window_size, window_size)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, rel_pos_size=rel_pos_size)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attn: bool = False,
        hw: tuple[int, int] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``hw``: the (h, w) token grid of x, needed by the windowed and relative-position options."""
        if self.window_size > 0:
            if hw is None or hw[0] * hw[1] != x.shape[1]:
                raise ValueError(f"hw must be the (h, w) token grid of x with h * w = {x.shape[1]}, got {hw!r}")
            if mask is not None or return_attn:
                raise ValueError("windowed attention takes no mask and returns no attention weights")
            B, N, D = x.shape
            ws = self.window_size
            windows, pad_hw = window_partition(self.norm1(x).reshape(B, hw[0], hw[1], D), ws)  # (B*nW, ws, ws, D)
            a = self.attn(windows.reshape(-1, ws * ws, D), hw=(ws, ws))                        # (B*nW, ws*ws, D)
            x = x + window_unpartition(a.reshape(-1, ws, ws, D), ws, pad_hw, hw).reshape(B, N, D)
            return x + self.mlp(self.norm2(x))
        if return_attn:
            a, attn = self.attn(self.norm1(x), mask=mask, return_attn=True, hw=hw)
            x = x + a
            return x + self.mlp(self.norm2(x)), attn
        x = x + self.attn(self.norm1(x), mask=mask, hw=hw)
        return x + self.mlp(self.norm2(x))


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut a token grid (B, H, W, C) into windows (B * nW, ws, ws, C), zero-padding bottom/right.

    Returns the windows and the padded size (Hp, Wp). Padded tokens take part in the attention of
    their window, as in SAM (segment_anything/modeling/image_encoder.py).
    """
    B, H, W, C = x.shape
    pad_h, pad_w = (-H) % window_size, (-W) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, C), (Hp, Wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C), padding dropped."""
    (Hp, Wp), (H, W) = pad_hw, hw
    B = windows.shape[0] // ((Hp // window_size) * (Wp // window_size))
    x = windows.view(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, -1)
    return x[:, :H, :W].contiguous()


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Rows of a relative-position table (L, hd) for every (query, key) pair of one axis: (q, k, hd).

    A table of another length is linearly resized first (SAM's rule, for grids other than the
    one trained on).
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(rel_pos.T[None], size=max_rel_dist, mode="linear")[0].T
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)  # offsets shifted to >= 0
    return rel_pos[relative.long()]


def decomposed_rel_pos(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
    q_size: tuple[int, int], k_size: tuple[int, int],
) -> torch.Tensor:
    """Decomposed relative position bias (MViTv2, used by SAM's encoder), to add to the scores.

    bias[q, k] = q · Rh[row(q) - row(k)] + q · Rw[col(q) - col(k)]: one table per axis instead of
    one per 2-D offset. q: (..., q_h * q_w, hd) unscaled queries. Returns (..., Nq, Nk).
    """
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    Rh, Rw = get_rel_pos(q_h, k_h, rel_pos_h), get_rel_pos(q_w, k_w, rel_pos_w)  # (q_h, k_h, hd), (q_w, k_w, hd)
    r_q = q.reshape(*q.shape[:-2], q_h, q_w, q.shape[-1])
    rel_h = torch.einsum("...hwc,hkc->...hwk", r_q, Rh)  # (..., q_h, q_w, k_h)
    rel_w = torch.einsum("...hwc,wkc->...hwk", r_q, Rw)  # (..., q_h, q_w, k_w)
    bias = rel_h[..., :, None] + rel_w[..., None, :]      # (..., q_h, q_w, k_h, k_w)
    return bias.reshape(*q.shape[:-2], q_h * q_w, k_h * k_w)


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

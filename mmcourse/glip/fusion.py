"""Deep fusion: GLIP's bi-directional cross-attention between image and text (X-MHA).

Late fusion (CLIP, or a detector with a text classifier) lets the two towers meet only in the final
dot product. GLIP lets them talk *before* that, in a few fusion layers: every image location reads
from the words (text-to-image), and every word reads from the image (image-to-text), with ONE
shared score matrix (Li et al., 2022, eq. 4; microsoft/GLIP ``utils/fuse_helper.py``)::

    A      = (W_v O / sqrt(hd)) (W_l P)^T                   (N locations x M tokens, per head)
    O_t2i  = W_out_v softmax_over_tokens(A)   (W_vals_l P)   (every location gathers words)
    P_i2t  = W_out_l softmax_over_locations(A^T) (W_vals_v O) (every word gathers locations)

Parameter names follow transformers' ``GroundingDinoBiMultiHeadAttention`` (``vision_proj``,
``text_proj``, ``values_vision_proj``, ``values_text_proj``, ``out_vision_proj``,
``out_text_proj``), which the tests compare against with copied weights. Masks here are
**True = real token** (GLIP's convention); transformers uses True = padding.

Shapes: B = batch, N = image locations, M = text tokens, D = width, H = heads, hd = embed_dim // H.
"""

from __future__ import annotations

import torch
from torch import nn

CLAMP = 50_000.0  # GLIP and transformers clamp the scores to this range (a float16 guard)


class BiMultiHeadAttention(nn.Module):
    """One bi-directional cross-attention: image features and text features update each other.

    Args:
        vision_dim: width of the image features O.
        text_dim: width of the text features P.
        embed_dim: width of the shared attention space (divisible by num_heads).
        num_heads: attention heads.
    """

    def __init__(self, vision_dim: int, text_dim: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.vision_proj = nn.Linear(vision_dim, embed_dim)         # queries of the image side
        self.text_proj = nn.Linear(text_dim, embed_dim)             # keys of the text side
        self.values_vision_proj = nn.Linear(vision_dim, embed_dim)  # what a word reads from the image
        self.values_text_proj = nn.Linear(text_dim, embed_dim)      # what a location reads from the words
        self.out_vision_proj = nn.Linear(embed_dim, vision_dim)
        self.out_text_proj = nn.Linear(embed_dim, text_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        B, H, T, hd = x.shape
        return x.transpose(1, 2).reshape(B, T, H * hd)  # (B, T, embed_dim)

    def forward(
        self,
        vision: torch.Tensor,
        text: torch.Tensor,
        vision_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        return_attn: bool = False,
    ):
        """vision (B, N, Dv), text (B, M, Dl); masks (B, N) / (B, M) bool, True = real.

        Returns (delta_vision (B, N, Dv), delta_text (B, M, Dl)), plus the two attention maps
        (B, H, N, M) and (B, H, M, N) when ``return_attn``.
        """
        if vision.ndim != 3 or text.ndim != 3 or vision.shape[0] != text.shape[0]:
            raise ValueError(f"vision must be (B, N, Dv) and text (B, M, Dl) with the same B, got "
                             f"{tuple(vision.shape)} and {tuple(text.shape)}")
        q = self._heads(self.vision_proj(vision) * self.scale)   # (B, H, N, hd)
        k = self._heads(self.text_proj(text))                    # (B, H, M, hd)
        v_img = self._heads(self.values_vision_proj(vision))     # (B, H, N, hd)
        v_txt = self._heads(self.values_text_proj(text))         # (B, H, M, hd)
        # One score matrix serves both ways; its transpose is computed as its own product
        # (k q^T = (q k^T)^T) so that both softmaxes run over contiguous rows.
        s_t2i = (q @ k.transpose(-2, -1)).clamp(-CLAMP, CLAMP)   # (B, H, N, M)
        s_i2t = (k @ q.transpose(-2, -1)).clamp(-CLAMP, CLAMP)   # (B, H, M, N)

        # text-to-image: each location attends over the real tokens
        if text_mask is not None:
            s_t2i = s_t2i.masked_fill(~text_mask[:, None, None, :], float("-inf"))
        attn_t2i = s_t2i.softmax(dim=-1)                         # (B, H, N, M)
        # image-to-text: each token attends over the real locations
        if vision_mask is not None:
            s_i2t = s_i2t.masked_fill(~vision_mask[:, None, None, :], float("-inf"))
        attn_i2t = s_i2t.softmax(dim=-1)                         # (B, H, M, N)

        delta_vision = self.out_vision_proj(self._merge(attn_t2i @ v_txt))  # (B, N, Dv)
        delta_text = self.out_text_proj(self._merge(attn_i2t @ v_img))      # (B, M, Dl)
        if return_attn:
            return delta_vision, delta_text, attn_t2i, attn_i2t
        return delta_vision, delta_text


class FusionLayer(nn.Module):
    """GLIP's ``BiAttentionBlock``: normalise both sides, cross-attend, add scaled residuals.

    ``v = LN(v) + gamma_v * delta_v`` and ``l = LN(l) + gamma_l * delta_l``, with the learnable
    per-channel scales gamma started small (``init_scale``), so at the start of training the
    fused features are the unfused ones and the model learns how much to listen to the other side.

    Args:
        dim: width of both sides (D).
        embed_dim, num_heads: of the attention.
        init_scale: the starting value of gamma_v and gamma_l.
    """

    def __init__(self, dim: int, embed_dim: int, num_heads: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.norm_v = nn.LayerNorm(dim)
        self.norm_l = nn.LayerNorm(dim)
        self.attn = BiMultiHeadAttention(dim, dim, embed_dim, num_heads)
        self.gamma_v = nn.Parameter(torch.full((dim,), float(init_scale)))
        self.gamma_l = nn.Parameter(torch.full((dim,), float(init_scale)))

    def forward(self, vision: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """vision (B, N, D), text (B, M, D), text_mask (B, M) True = real -> the updated pair."""
        v, l = self.norm_v(vision), self.norm_l(text)
        dv, dl = self.attn(v, l, text_mask=text_mask)
        return v + self.gamma_v * dv, l + self.gamma_l * dl


def attention_from_hf_weights(hf_state: dict[str, torch.Tensor], module: BiMultiHeadAttention) -> None:
    """Copy a transformers ``GroundingDinoBiMultiHeadAttention`` state dict into ``module``.

    The parameter names are the same; the check that every key and shape matches is the point.
    """
    own = module.state_dict()
    if sorted(own) != sorted(hf_state):
        raise ValueError(f"key mismatch: ours {sorted(own)} vs reference {sorted(hf_state)}")
    for k, v in hf_state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} in the reference, {tuple(own[k].shape)} here")
    module.load_state_dict(hf_state)


__all__ = ["BiMultiHeadAttention", "FusionLayer", "attention_from_hf_weights", "CLAMP"]

"""Text conditioning for the denoiser: cross-attention to token features, pooled text in the time embedding.

Two paths carry a prompt into eps_theta(x_t, t, text), as in Stable Diffusion's U-Net:

1. **Cross-attention** (:class:`CrossAttention`, inside :class:`SpatialCrossAttention`): every
   position of a feature map is a query; the text tower's per-token features are the keys and
   values. A position can "look up" the words it needs ("red" for the colour, "left" for where).
   Padding tokens are masked out, so they never change the output.
2. **Pooled embedding**: the text tower's sentence embedding (CLIP's end-of-text feature) goes
   through a linear layer and is *added to the time embedding*, so every ResBlock gets one
   shift per channel from the prompt (as SDXL adds its pooled text embedding).

The network itself knows nothing about CLIP: it takes a :class:`TextCondition` (context (B, L, D),
mask (B, L), pooled (B, E)). :class:`FrozenTextEncoder` makes one from prompts with a frozen
CLIP text tower.

Shapes: B = batch, C = channels, N = H * W positions, L = tokens, D = token width, E = pooled width.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import timestep_embedding
from .models import Downsample, ResBlock, SelfAttention2d, Upsample, _check_t, _groups


class TextCondition(NamedTuple):
    """A batch of encoded prompts, what the conditioned denoiser reads."""

    context: torch.Tensor  # (B, L, D) per-token features (keys and values of cross-attention)
    mask: torch.Tensor     # (B, L) bool, True for real tokens, False for padding
    pooled: torch.Tensor   # (B, E) one sentence embedding per prompt

    def __len__(self) -> int:
        return self.context.shape[0]

    def index(self, idx: torch.Tensor | slice) -> "TextCondition":
        """Rows ``idx`` of every field."""
        return TextCondition(self.context[idx], self.mask[idx], self.pooled[idx])

    def repeat(self, n: int) -> "TextCondition":
        """A batch of one prompt repeated ``n`` times (B must be 1)."""
        if len(self) != 1:
            raise ValueError(f"repeat needs a batch of one prompt, got {len(self)}")
        return TextCondition(self.context.expand(n, -1, -1), self.mask.expand(n, -1), self.pooled.expand(n, -1))

    @staticmethod
    def cat(parts: Sequence["TextCondition"]) -> "TextCondition":
        """Concatenate batches along B (they must share L, D and E)."""
        return TextCondition(*(torch.cat([getattr(p, f) for p in parts]) for f in TextCondition._fields))


def where(keep: torch.Tensor, cond: TextCondition, other: TextCondition) -> TextCondition:
    """Row-wise choice: ``cond`` where ``keep`` (B,) is True, else ``other`` (B rows or 1 row, broadcast)."""
    k = keep.to(torch.bool)
    return TextCondition(
        torch.where(k[:, None, None], cond.context, other.context),
        torch.where(k[:, None], cond.mask, other.mask),
        torch.where(k[:, None], cond.pooled, other.pooled),
    )


class CrossAttention(nn.Module):
    """Multi-head attention from queries x (B, N, C) to a context (B, L, D), padding masked.

    ``forward(x, context, mask=None)`` -> (B, N, C). ``mask`` (B, L) bool is True for the tokens
    that may be attended; each row needs at least one True (a prompt always has its start token).
    """

    def __init__(self, query_dim: int, context_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        if query_dim % num_heads:
            raise ValueError(f"query_dim ({query_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, query_dim // num_heads
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)   # diffusers' attention names
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)
        self.record: Callable[[torch.Tensor], None] | None = None  # see recorded_cross_attention

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, C = x.shape
        if context.ndim != 3 or context.shape[0] != B:
            raise ValueError(f"context must have shape (B, L, D) with B = {B}, got {tuple(context.shape)}")
        L, H, hd = context.shape[1], self.num_heads, self.head_dim
        q = self.to_q(x).reshape(B, N, H, hd).transpose(1, 2)           # (B, H, N, hd)
        k = self.to_k(context).reshape(B, L, H, hd).transpose(1, 2)     # (B, H, L, hd)
        v = self.to_v(context).reshape(B, L, H, hd).transpose(1, 2)     # (B, H, L, hd)
        attn_mask = None
        if mask is not None:
            if mask.shape != (B, L) or mask.dtype != torch.bool:
                raise ValueError(f"mask must be bool of shape (B, L) = ({B}, {L}), got {tuple(mask.shape)} {mask.dtype}")
            if not bool(mask.any(dim=1).all()):
                raise ValueError("mask: every row needs at least one real token (True)")
            attn_mask = mask[:, None, None, :]                            # (B, 1, 1, L): padding gets weight 0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, N, hd)
        if self.record is not None:
            self.record(self.attention_probs(x, context, mask))
        return self.to_out(out.transpose(1, 2).reshape(B, N, C))        # (B, N, C)

    def attention_probs(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weights ``forward`` gives each token: softmax(q k^T / sqrt(head_dim)), padding 0.

        Returns (B, H, N, L): for every head and query position, a distribution over the L tokens.
        """
        B, N, C = x.shape
        L, H, hd = context.shape[1], self.num_heads, self.head_dim
        q = self.to_q(x).reshape(B, N, H, hd).transpose(1, 2)           # (B, H, N, hd)
        k = self.to_k(context).reshape(B, L, H, hd).transpose(1, 2)     # (B, H, L, hd)
        scores = q @ k.transpose(-1, -2) / hd**0.5                       # (B, H, N, L)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)


class SpatialCrossAttention(nn.Module):
    """A feature map attends to the prompt: GroupNorm, flatten, :class:`CrossAttention`, residual.

    ``forward(h, text)``: h (B, C, H, W), text a :class:`TextCondition` -> (B, C, H, W).
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = CrossAttention(channels, context_dim, num_heads)

    def forward(self, h: torch.Tensor, text: TextCondition) -> torch.Tensor:
        B, C, H, W = h.shape
        q = self.norm(h).flatten(2).transpose(1, 2)                      # (B, HW, C): one query per position
        out = self.attn(q, text.context, text.mask)                      # (B, HW, C)
        return h + out.transpose(1, 2).reshape(B, C, H, W)


class TextUNet(nn.Module):
    """The course's U-Net (:class:`mmcourse.diffusion.UNet`) with a prompt: eps_theta(x_t, t, text).

    Layout for ``channel_mults=(m_0, ..., m_L)``: as :class:`UNet`, plus a
    :class:`SpatialCrossAttention` after every ResBlock at the resolutions listed in
    ``cross_attention_levels`` (level 0 = full resolution) and in the middle block.

    ``forward(x, t, text)``: x (B, in_channels, S, S), t LongTensor (B,), text a
    :class:`TextCondition` of batch B -> eps_hat (B, in_channels, S, S).

    Args:
        context_dim: D of the token features.  pooled_dim: E of the sentence embedding.
        cross_attention_levels: which levels get cross-attention (default: all).
    """

    def __init__(
        self,
        in_channels: int = 4,
        base: int = 64,
        channel_mults: tuple[int, ...] = (1, 2),
        image_size: int = 8,
        context_dim: int = 64,
        pooled_dim: int = 64,
        num_heads: int = 4,
        cross_attention_levels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if not channel_mults:
            raise ValueError("channel_mults must have at least one level")
        if image_size % 2 ** (len(channel_mults) - 1):
            raise ValueError(f"image_size ({image_size}) must be divisible by 2**(len(channel_mults) - 1)")
        levels = tuple(range(len(channel_mults))) if cross_attention_levels is None else tuple(cross_attention_levels)
        self.in_channels, self.image_size, self.base = in_channels, image_size, base
        time_dim = 4 * base
        chs = [base * m for m in channel_mults]

        self.time_embedding = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        # Path 2: the pooled prompt embedding joins the time embedding (one vector per image).
        self.text_embedding = nn.Linear(pooled_dim, time_dim)
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)

        def xattn(i: int, c: int) -> nn.Module:
            return SpatialCrossAttention(c, context_dim, num_heads) if i in levels else nn.Identity()

        self.down_res, self.down_attn, self.down_samplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        ch = base
        for i, c in enumerate(chs):
            self.down_res.append(ResBlock(ch, c, time_dim))
            self.down_attn.append(xattn(i, c))
            self.down_samplers.append(Downsample(c) if i < len(chs) - 1 else nn.Identity())
            ch = c
        self.mid_res1 = ResBlock(ch, ch, time_dim)
        self.mid_self_attn = SelfAttention2d(ch, num_heads)
        self.mid_cross_attn = SpatialCrossAttention(ch, context_dim, num_heads)
        self.mid_res2 = ResBlock(ch, ch, time_dim)
        self.up_samplers, self.up_res, self.up_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(chs))):
            self.up_samplers.append(Upsample(ch) if i < len(chs) - 1 else nn.Identity())
            self.up_res.append(ResBlock(ch + c, c, time_dim))
            self.up_attn.append(xattn(i, c))
            ch = c
        self.conv_norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    def _attend(self, attn: nn.Module, h: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return h if isinstance(attn, nn.Identity) else attn(h, text)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextCondition) -> torch.Tensor:
        B, C, H, W = x.shape
        if C != self.in_channels or H != self.image_size or W != self.image_size:
            raise ValueError(f"x must have shape (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        _check_t(t, B)
        if len(text) != B:
            raise ValueError(f"text has {len(text)} prompts but x has batch size {B}; they must match")
        temb = self.time_embedding(timestep_embedding(t, self.base))     # (B, time_dim)
        temb = temb + self.text_embedding(text.pooled)                   # path 2: pooled text joins t

        h = self.conv_in(x)
        skips = []
        for res, attn, down in zip(self.down_res, self.down_attn, self.down_samplers):
            h = self._attend(attn, res(h, temb), text)                   # path 1: positions attend to tokens
            skips.append(h)
            h = down(h)
        h = self.mid_res1(h, temb)
        h = self.mid_cross_attn(self.mid_self_attn(h), text)
        h = self.mid_res2(h, temb)
        for up, res, attn in zip(self.up_samplers, self.up_res, self.up_attn):
            h = up(h)
            h = self._attend(attn, res(torch.cat([h, skips.pop()], dim=1), temb), text)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))       # (B, in_channels, S, S)


class FrozenTextEncoder(nn.Module):
    """Prompts -> :class:`TextCondition` with a frozen CLIP text tower (no gradients, eval mode).

    ``context`` is the tower's per-token output after ``ln_final`` (:meth:`forward_features`),
    ``pooled`` its projected end-of-text feature (``encode_text``), ``mask`` marks non-padding
    tokens. The empty prompt "" encodes to <start><end>: the "no caption" input of
    classifier-free guidance.

    Args:
        text: a :class:`mmcourse.clip.TextTransformer` (e.g. ``load_clip("clip_shapes_broad").text``).
        tokenizer: the matching :class:`mmcourse.clip.WordTokenizer`.
    """

    def __init__(self, text: nn.Module, tokenizer) -> None:
        super().__init__()
        self.text = text.eval()
        for p in self.text.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer

    def train(self, mode: bool = True) -> "FrozenTextEncoder":  # stays in eval mode
        return super().train(False)

    def tokenize(self, prompts: str | Sequence[str], argument: str = "prompt") -> torch.Tensor:
        """(B, L) ids; an unknown word raises ValueError naming ``argument`` and the nearest known words."""
        try:
            return self.tokenizer(prompts)
        except ValueError as e:
            raise ValueError(f"{argument}: {e}") from None

    @torch.no_grad()
    def encode_tokens(self, tokens: torch.Tensor) -> TextCondition:
        """(B, L) ids -> :class:`TextCondition`."""
        context = self.text.forward_features(tokens)                     # (B, L, D)
        pooled = context[torch.arange(len(tokens)), self.text.pool_index(tokens)] @ self.text.text_projection
        return TextCondition(context, tokens != self.tokenizer.pad_token_id, pooled)

    def forward(self, prompts: str | Sequence[str]) -> TextCondition:
        return self.encode_tokens(self.tokenize(prompts))


@contextmanager
def recorded_cross_attention(model: nn.Module) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Within the block, every :class:`CrossAttention` of ``model`` records its weights.

    Yields a list that fills with (layer name, weights (B, H, N, L)) in call order, one entry per
    call (N = the layer's H x W positions, L = the prompt's tokens). Recording stops on exit.
    """
    found: list[tuple[str, torch.Tensor]] = []
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, CrossAttention)]
    for name, m in layers:
        m.record = lambda probs, name=name: found.append((name, probs.detach()))
    try:
        yield found
    finally:
        for _, m in layers:
            m.record = None

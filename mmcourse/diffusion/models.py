"""Noise-prediction networks eps_theta(x_t, t), from the study notes' MLP to a small U-Net.

All three share one contract with the rest of the package: ``model(x_t, t) -> eps_hat`` with
``eps_hat`` of the shape of ``x_t``. They differ in how they see the time step:

- :class:`SimpleDenoiseNet` appends the raw step number to the input (the study notes' design).
  One scalar in [0, 1000) next to data in [-1, 1] dominates the first layer; it trains, but badly.
- :class:`TimeMLP` embeds t with sinusoids (like positions in a Transformer) and adds the
  embedding inside every residual layer.
- :class:`UNet` does the same for images, with convolutions at several resolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import Attention, timestep_embedding


def _check_t(t: torch.Tensor, batch: int) -> None:
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"t must have shape (B,) = ({batch},), got {tuple(t.shape)}")


class SimpleDenoiseNet(nn.Module):
    """The study notes' denoiser: an MLP on [x, t] with the raw step appended as one more feature.

    Linear(in + 1, h) -> ReLU -> Linear(h, h) -> ReLU -> Linear(h, out).

    ``forward(x, t)``: x (B, in_features); t (B, 1) float as in the notes. A (B,) tensor of any
    dtype (what the samplers pass) is turned into that column. Returns (B, out_features).
    """

    def __init__(self, in_features: int = 1, hidden_dim: int = 128, out_features: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features + 1, hidden_dim),  # + 1 for the time step
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_features),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 1:
            t = t[:, None]
        if t.shape != (x.shape[0], 1):
            raise ValueError(f"t must have shape (B, 1) or (B,) with B = {x.shape[0]}, got {tuple(t.shape)}")
        return self.net(torch.cat([x, t.to(x.dtype)], dim=1))  # (B, in + 1) -> (B, out)


class TimeMLP(nn.Module):
    """A residual MLP conditioned on a sinusoidal embedding of t, for low-dimensional toy data.

    ``forward(x, t)``: x (B, dim), t LongTensor (B,) -> eps_hat (B, dim).

    Args:
        dim: data dimension.  hidden: width.  depth: number of residual layers.
        time_dim: width of the sinusoidal embedding (even).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.proj_in = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList([nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth)])
        self.proj_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_t(t, x.shape[0])
        temb = self.time_mlp(timestep_embedding(t, self.time_dim))  # (B, hidden)
        h = self.proj_in(x)  # (B, hidden)
        for layer in self.layers:
            # Re-adding t at every layer keeps the time signal from fading with depth.
            h = h + layer(h + temb)
        return self.proj_out(h)  # (B, dim)


# ---------------------------------------------------------------------- U-Net parts


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 where possible (32 in big U-Nets is too many for 32 channels)."""
    return 8 if channels % 8 == 0 else 1


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm + SiLU, the time embedding added in between.

    ``forward(x, temb)``: x (B, in_ch, H, W), temb (B, time_dim) -> (B, out_ch, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(time_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act = nn.SiLU()
        # A 1x1 conv matches channels on the skip path; identity when they already agree.
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))  # (B, out, H, W)
        h = h + self.time_emb_proj(self.act(temb))[:, :, None, None]  # one shift per channel
        h = self.conv2(self.act(self.norm2(h)))
        return self.conv_shortcut(x) + h


class SelfAttention2d(nn.Module):
    """Self-attention over the H*W positions of a feature map, with a residual connection.

    ``forward(x)``: (B, C, H, W) -> (B, C, H, W). Cost grows as (H*W)^2, hence lowest resolution only.
    """

    def __init__(self, channels: int, num_heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = Attention(channels, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C): one token per position
        h = self.attn(h).transpose(1, 2).reshape(B, C, H, W)
        return x + h


class Downsample(nn.Module):
    """Stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W).

    (A transposed convolution would do it in one layer but tends to leave checkerboard patterns.)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """A small U-Net noise predictor for 8x8 digits or 32x32 ShapesWorld images.

    Layout, for ``channel_mults=(m_0, ..., m_L)`` (resolution halves after every level but the last):

        conv_in -> [ResBlock, Downsample] x L, ResBlock       (keep each ResBlock output as a skip)
        mid: ResBlock, SelfAttention2d (optional), ResBlock  (at the lowest resolution)
        ResBlock(cat skip), then [Upsample, ResBlock(cat skip)] x L  -> GroupNorm, SiLU, conv_out

    Every ResBlock receives the time embedding: sinusoids of t -> Linear -> SiLU -> Linear.

    ``forward(x, t)``: x (B, in_channels, image_size, image_size), t LongTensor (B,)
    -> eps_hat with the shape of x.

    Args:
        in_channels: 1 for digits, 3 for ShapesWorld.  base: channels of the first level.
        channel_mults: channels of level i are base * channel_mults[i].
        time_dim: width of the time embedding (default 4 * base).
        image_size: side of the input; must be divisible by 2 ** (len(channel_mults) - 1).
        attention: add one self-attention layer in the middle block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base: int = 32,
        channel_mults: tuple[int, ...] = (1, 2),
        time_dim: int | None = None,
        image_size: int = 8,
        attention: bool = True,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        if not channel_mults:
            raise ValueError("channel_mults must have at least one level")
        if image_size % 2 ** (len(channel_mults) - 1):
            raise ValueError(
                f"image_size ({image_size}) must be divisible by 2**(len(channel_mults) - 1) = {2 ** (len(channel_mults) - 1)}"
            )
        self.in_channels, self.image_size, self.base = in_channels, image_size, base
        time_dim = time_dim or 4 * base
        chs = [base * m for m in channel_mults]

        self.time_embedding = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)

        self.down_res = nn.ModuleList()
        self.down_samplers = nn.ModuleList()
        ch = base
        for i, c in enumerate(chs):
            self.down_res.append(ResBlock(ch, c, time_dim))
            # The last level stays at its resolution; the middle block works there.
            self.down_samplers.append(Downsample(c) if i < len(chs) - 1 else nn.Identity())
            ch = c

        self.mid_res1 = ResBlock(ch, ch, time_dim)
        self.mid_attn = SelfAttention2d(ch, num_heads) if attention else nn.Identity()
        self.mid_res2 = ResBlock(ch, ch, time_dim)

        self.up_samplers = nn.ModuleList()
        self.up_res = nn.ModuleList()
        for i, c in reversed(list(enumerate(chs))):
            self.up_samplers.append(Upsample(ch) if i < len(chs) - 1 else nn.Identity())
            self.up_res.append(ResBlock(ch + c, c, time_dim))  # input: upsampled features + skip
            ch = c

        self.conv_norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        if C != self.in_channels or H != self.image_size or W != self.image_size:
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )
        _check_t(t, B)
        temb = self.time_embedding(timestep_embedding(t, self.base))  # (B, time_dim)

        h = self.conv_in(x)  # (B, base, H, W)
        skips = []
        for res, down in zip(self.down_res, self.down_samplers):
            h = res(h, temb)  # (B, c_i, H_i, W_i)
            skips.append(h)
            h = down(h)  # (B, c_i, H_i / 2, W_i / 2), except at the last level

        h = self.mid_res2(self.mid_attn(self.mid_res1(h, temb)), temb)  # (B, c_L, H_L, W_L)

        for up, res in zip(self.up_samplers, self.up_res):
            h = up(h)  # back to the resolution of the matching skip
            h = res(torch.cat([h, skips.pop()], dim=1), temb)  # (B, c_i, H_i, W_i)

        return self.conv_out(self.conv_act(self.conv_norm_out(h)))  # (B, in_channels, H, W)

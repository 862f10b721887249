"""A small convolutional autoencoder for latent diffusion (the Stable Diffusion design, tiny).

Latent diffusion (Rombach et al. 2022) first trains an autoencoder that squeezes an image into
a small grid of latents, then runs diffusion on the latents, and decodes only the final sample.
Here 32 x 32 x 3 = 3,072 numbers become 8 x 8 x 4 = 256 (12x fewer): the denoiser works on an
8 x 8 grid, which is what makes text-to-image fit a CPU.

``encode`` returns latents standardised per channel (``latent_mean`` / ``latent_std``, measured
on training data after the autoencoder is trained, the role of Stable Diffusion's
``scaling_factor`` 0.18215), so the diffusion model sees data of unit scale, like pixels in [-1, 1].

Shapes: images (B, 3, 32, 32) in [0, 1]; latents (B, latent_channels, 8, 8).
"""

from __future__ import annotations

import torch
from torch import nn

from .models import _groups


DECODERS = ("shuffle4", "shuffle2x2")


class _Res(nn.Module):
    """x + conv(SiLU(GroupNorm(x))), 3x3, at the latent resolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm, self.conv = nn.GroupNorm(_groups(ch), ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(nn.functional.silu(self.norm(x)))


class AutoEncoder(nn.Module):
    """A patch autoencoder: every 4x4 pixel patch becomes one latent position, all work at S/4 x S/4.

    Encoder: a 4x4 stride-4 convolution (a patch embedding, as in the ViT), two residual 3x3
    convolutions, a 1x1 convolution down to ``latent_channels``. Decoder: the mirror, ending in a
    1x1 convolution to 3 * 4 * 4 numbers per position and ``PixelShuffle(4)``, which lays them
    out as the 4x4 pixel patch. Working only at the 8x8 resolution keeps it cheap to train on a CPU
    (in our measurement a full-resolution convolutional autoencoder, 32 channels at 32x32, ran more than
    1.8x slower per step than this one).

    Args:
        in_channels: 3.  latent_channels: 4 (as Stable Diffusion).  width: channels at 8x8.
        image_size: side of the input (divisible by 4); the latent side is image_size / 4.
    """

    def __init__(self, in_channels: int = 3, latent_channels: int = 4, width: int = 64, image_size: int = 32,
                 decoder: str = "shuffle4") -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        self.in_channels, self.latent_channels, self.image_size = in_channels, latent_channels, image_size
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, stride=4),                     # (B, w, S/4, S/4): one token per patch
            _Res(w), _Res(w),
            nn.GroupNorm(_groups(w), w), nn.SiLU(),
            nn.Conv2d(w, latent_channels, 1),                           # (B, 4, S/4, S/4)
        )
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        head = [nn.Conv2d(latent_channels, w, 3, padding=1), _Res(w), _Res(w),   # (B, w, S/4, S/4)
                nn.GroupNorm(_groups(w), w), nn.SiLU()]
        if decoder == "shuffle4":  # every 4x4 patch painted from its own position's features
            tail = [nn.Conv2d(w, 4 * w, 1), nn.SiLU(),                  # a per-position MLP head ...
                    nn.Conv2d(4 * w, in_channels * 16, 1),              # ... to (B, 3 * 16, S/4, S/4)
                    nn.PixelShuffle(4)]                                 # (B, 3, S, S)
        else:  # "shuffle2x2": one more 3x3 stage at S/2, where neighbouring pixels can agree on an edge
            h = w // 2
            tail = [nn.Conv2d(w, 4 * h, 1), nn.PixelShuffle(2),         # (B, w/2, S/2, S/2)
                    _Res(h), nn.GroupNorm(_groups(h), h), nn.SiLU(),
                    nn.Conv2d(h, in_channels * 4, 3, padding=1), nn.PixelShuffle(2)]  # (B, 3, S, S)
        self.decoder = nn.Sequential(*head, *tail)
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.image_size // 4
        return (self.latent_channels, s, s)

    def _check(self, images: torch.Tensor) -> None:
        S = self.image_size
        if images.ndim != 4 or images.shape[1:] != (self.in_channels, S, S):
            raise ValueError(f"images must have shape (B, {self.in_channels}, {S}, {S}), got {tuple(images.shape)}")

    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> unscaled latents (B, 4, S/4, S/4)."""
        self._check(images)
        return self.encoder(2 * images - 1)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images (B, 3, S, S), not clamped."""
        return (self.decoder(z) + 1) / 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> standardised latents (B, 4, S/4, S/4), about unit scale."""
        z = self.encode_raw(images)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, 4, S/4, S/4) -> images (B, 3, S, S) clamped to [0, 1]."""
        if latents.ndim != 4 or latents.shape[1:] != self.latent_shape:
            raise ValueError(f"latents must have shape (B, {', '.join(map(str, self.latent_shape))}), got {tuple(latents.shape)}")
        z = latents * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return self.decode_raw(z).clamp(0, 1)

    @torch.no_grad()
    def fit_latent_scale(self, images: torch.Tensor) -> None:
        """Set ``latent_mean`` / ``latent_std`` per channel from the raw latents of ``images``."""
        z = self.encode_raw(images)
        self.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(z.std(dim=(0, 2, 3)).clamp(min=1e-6))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 3, S, S), unclamped (for the training loss)."""
        return self.decode_raw(self.encode_raw(images))

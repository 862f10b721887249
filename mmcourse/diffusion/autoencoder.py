"""A small convolutional autoencoder for latent diffusion (the Stable Diffusion design, tiny).

Latent diffusion (Rombach et al. 2022) first trains an autoencoder that squeezes an image into
a small grid of latents, then runs diffusion on the latents, and decodes only the final sample.
Here 32 x 32 x 3 = 3,072 numbers become 8 x 8 x 8 = 512 (6x fewer): the denoiser works on an
8 x 8 grid, which is what makes text-to-image fit a CPU.

How many numbers per 4 x 4 patch? ShapesWorld's objects are 7 to 10 pixels wide, and the
course's shape judge (the ViT of notebook 03) misreads many real scenes once they are blurred by
a Gaussian of sigma 0.8 pixels: the round trip has to keep edges nearly exact. The best linear
code of a patch (:class:`PatchPCA`) keeps far more shape labels with 8 numbers than with Stable
Diffusion 1's 4, and more still with 16 (Stable Diffusion 3 and FLUX moved to 16 channels for
fine detail); ``bench/results/text2image_autoencoders.json`` has the measurements. More channels
also make the denoiser's job harder, and on this budget 8 drew better pictures than 16 (one-seed
exploratory runs, summarised in the README's maintainer notes for notebook 08).

``encode`` returns latents standardised per channel (``latent_mean`` / ``latent_std``, measured
on training data after the autoencoder is trained), so the diffusion model sees data of unit
scale, like pixels in [-1, 1]. Stable Diffusion 1/2 multiply the encoder's latents by one scalar
(``scaling_factor`` 0.18215, about 1 / their spread) and divide by it before decoding; per-channel statistics are what some later VAE configs carry (``latents_mean`` /
``latents_std``), and suit 8 channels whose spreads differ.

Shapes: images (B, 3, 32, 32) in [0, 1]; latents (B, latent_channels, 8, 8).
"""

from __future__ import annotations

import torch
from torch import nn

from .models import _groups


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
    convolutions, a 1x1 convolution down to ``latent_channels``. Decoder: the mirror, a 1x1
    convolution up to ``width``, two residual 3x3 convolutions, a 1x1 convolution to 3 * 4 * 4
    numbers per position and ``PixelShuffle(4)``, which lays them out as the 4x4 pixel patch.

    No normalisation or activation sits on the straight path from pixels to latents and back: only
    the residual blocks are non-linear. The network can therefore represent the best linear code
    (a per-patch PCA) and learn corrections on top of it. With a GroupNorm and SiLU before each
    1x1 projection (as in Stable Diffusion's ``conv_norm_out``) it learns much more slowly
    (``bench/results/text2image_autoencoders.json`` compares the two).
    Working only at the 8x8 resolution keeps it cheap to train on a CPU.

    Args:
        in_channels: 3.  latent_channels: numbers per 4x4 patch (8).  width: channels at 8x8.
        image_size: side of the input (divisible by 4); the latent side is image_size / 4.
    """

    def __init__(self, in_channels: int = 3, latent_channels: int = 8, width: int = 128, image_size: int = 32) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        self.in_channels, self.latent_channels, self.image_size = in_channels, latent_channels, image_size
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, stride=4),                     # (B, w, S/4, S/4): one token per patch
            _Res(w), _Res(w),
            nn.Conv2d(w, latent_channels, 1),                           # (B, latent_channels, S/4, S/4)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w, 1),                           # (B, w, S/4, S/4)
            _Res(w), _Res(w),
            nn.Conv2d(w, in_channels * 16, 1),                          # (B, 3 * 16, S/4, S/4): a 4x4 patch each
            nn.PixelShuffle(4),                                         # (B, 3, S, S)
        )
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
        """(B, 3, S, S) in [0, 1] -> unscaled latents (B, latent_channels, S/4, S/4)."""
        self._check(images)
        return self.encoder(2 * images - 1)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images (B, 3, S, S), not clamped."""
        return (self.decoder(z) + 1) / 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> standardised latents (B, latent_channels, S/4, S/4), about unit scale."""
        z = self.encode_raw(images)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, latent_channels, S/4, S/4) -> images (B, 3, S, S) clamped to [0, 1]."""
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


class PatchPCA:
    """The best *linear* patch autoencoder: PCA of the 4x4 patches, ``k`` numbers per patch.

    ``fit`` takes training images; ``encode`` gives (B, k, S/4, S/4) coefficients, ``decode``
    the images back (not clamped). The baseline that tells how many numbers per patch a task needs
    before any network is trained (notebook 08 measures it against the shape judge).
    """

    def __init__(self, k: int, patch: int = 4) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k, self.patch = k, patch

    def _patches(self, images: torch.Tensor) -> torch.Tensor:
        B, C, H, W = images.shape
        return nn.functional.pixel_unshuffle(images, self.patch).permute(0, 2, 3, 1).reshape(-1, C * self.patch**2)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> "PatchPCA":
        P = self._patches(images)                                       # (N * positions, C * p * p)
        if self.k > P.shape[1]:
            raise ValueError(f"k must be at most {P.shape[1]} (numbers in a patch), got {self.k}")
        self.mean = P.mean(dim=0)
        _, _, V = torch.linalg.svd(P - self.mean, full_matrices=False)
        self.components = V[: self.k]                                   # (k, C * p * p), orthonormal rows
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        B, C, H, W = images.shape
        z = (self._patches(images) - self.mean) @ self.components.T      # (B * positions, k)
        return z.reshape(B, H // self.patch, W // self.patch, self.k).permute(0, 3, 1, 2)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        B, k, h, w = z.shape
        P = z.permute(0, 2, 3, 1).reshape(-1, k) @ self.components + self.mean
        return nn.functional.pixel_shuffle(P.reshape(B, h, w, -1).permute(0, 3, 1, 2), self.patch)

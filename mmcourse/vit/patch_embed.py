"""Images as sequences of patches (图像块): cut, flatten, embed.

A ViT never sees pixels one by one. It cuts the image into non-overlapping P x P squares,
flattens each square into a vector of C*P*P numbers and maps that vector linearly to D numbers.
A Conv2d whose kernel and stride both equal P does exactly this in one call, which is why timm
(and this module) implement the patch embedding as ``patch_embed.proj = nn.Conv2d(C, D, P, P)``.

Shapes: B = batch, C = channels, H x W = image, P = patch size, N = (H/P)(W/P) patches,
D = embedding width. Patches are numbered row by row (raster order), like the conv output.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def check_divisible(height: int, width: int, patch_size: int) -> None:
    """Raise ValueError unless a ``height`` x ``width`` image splits into whole ``patch_size`` patches."""
    if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    for name, n in (("height", height), ("width", width)):
        if n % patch_size:
            raise ValueError(
                f"image {name} {n} is not divisible by patch_size {patch_size}: "
                f"crop or resize the image to a multiple of {patch_size} (e.g. {n // patch_size * patch_size})"
            )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    Args:
        images: (B, C, H, W); H and W divisible by ``patch_size``.
    Returns:
        (B, N, C*P*P) with N = (H/P)*(W/P) in raster order. Each patch is flattened in (C, P, P)
        order, the order of a Conv2d weight (D, C, P, P), so that
        ``patchify(x, P) @ conv.weight.reshape(D, -1).T + conv.bias`` equals the conv's output.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    check_divisible(H, W, patch_size)
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)         # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 1, 3, 5)                         # (B, gh, gw, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)     # (B, N, C*P*P)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C*P*P) -> (B, C, gh*P, gw*P).

    ``grid_size`` = (gh, gw) patches per column and row; None means a square grid (N must be a
    perfect square).
    """
    if patches.ndim != 3:
        raise ValueError(f"patches must have shape (B, N, C*P*P), got {tuple(patches.shape)}")
    B, N, L = patches.shape
    P = patch_size
    if L % (P * P):
        raise ValueError(f"patch length {L} is not C * patch_size**2 for patch_size {P}")
    if grid_size is None:
        side = math.isqrt(N)
        if side * side != N:
            raise ValueError(f"{N} patches do not form a square grid; pass grid_size=(rows, cols)")
        grid_size = (side, side)
    gh, gw = grid_size
    if gh * gw != N:
        raise ValueError(f"grid_size {grid_size} holds {gh * gw} patches, but got N = {N}")
    C = L // (P * P)
    x = patches.reshape(B, gh, gw, C, P, P).permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, P, gw, P)
    return x.reshape(B, C, gh * P, gw * P)


class PatchEmbed(nn.Module):
    """Image to patch tokens: a Conv2d with kernel = stride = patch size, then flatten.

    ``forward(x)``: (B, C, H, W) -> (B, N, D), N = (H/P)*(W/P), raster order.
    """

    def __init__(
        self, img_size: int = 32, patch_size: int = 8, in_chans: int = 3, embed_dim: int = 64, bias: bool = True
    ) -> None:
        super().__init__()
        check_divisible(img_size, img_size, patch_size)
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
        check_divisible(x.shape[2], x.shape[3], self.patch_size)
        if x.shape[1] != self.proj.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels, but the patch embedding expects in_chans={self.proj.in_channels}")
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, gh, gw) -> (B, N, D)

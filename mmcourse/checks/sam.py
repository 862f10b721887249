"""Checkers for notebook 06 (SAM)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Case, check, expect, format_bound  # noqa: F401  (expect/format_bound: re-exported)


# ---------------------------------------------------------------------------------------------
# Exercise 1: random Fourier features of a position
# ---------------------------------------------------------------------------------------------


def random_fourier_pe_reference(coords: torch.Tensor, gaussian_matrix: torch.Tensor) -> torch.Tensor:
    """``[sin(2 pi (2c - 1) G), cos(2 pi (2c - 1) G)]`` for coords c (..., 2) in [0, 1], G (2, F)."""
    proj = 2 * math.pi * ((2 * coords - 1) @ gaussian_matrix)
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def _pe_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    G = torch.randn(2, 4, generator=g)
    return [
        Case((torch.tensor([0.5, 0.5]), G), "the centre (0.5, 0.5), which maps to (0, 0): sin 0, cos 1"),
        Case((torch.tensor([[0.0, 0.0], [1.0, 1.0]]), G), "two corners, coords (2, 2)"),
        Case((torch.tensor([[0.25, 0.75]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])),
             "G = identity: x and y each get one frequency (sin first, then cos)"),
        Case((torch.rand(3, 5, 2, generator=g), torch.randn(2, 8, generator=g)), "a (3, 5) grid of points, 8 frequencies"),
        Case((torch.rand(4, 2, generator=g), 10 * torch.randn(2, 16, generator=g)), "high frequencies (scale 10)"),
    ]


def check_random_fourier_pe(fn) -> bool:
    """Check ``fn(coords (..., 2) in [0, 1], gaussian_matrix (2, F)) -> (..., 2F)``."""
    return check("check_random_fourier_pe", fn, random_fourier_pe_reference, _pe_cases())


# ---------------------------------------------------------------------------------------------
# Exercise 2: the corrective click of interactive training
# ---------------------------------------------------------------------------------------------


def click_from_error_reference(pred: torch.Tensor, target: torch.Tensor, u: torch.Tensor):
    from ..sam.prompts import click_from_error

    return click_from_error(pred, target, u)


def _click_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    H = W = 8
    target = torch.zeros(1, H, W, dtype=torch.bool)
    target[0, 2:6, 2:6] = True
    missed = target.clone()
    missed[0, 2:6, 5] = False                                      # the prediction misses column 5
    over = target.clone()
    over[0, 0, 0] = True                                           # and here covers one extra pixel
    both = torch.stack([missed[0], over[0]])
    u = torch.rand(2, H, W, generator=g)
    rand_pred = torch.rand(3, 16, 16, generator=g) > 0.5
    rand_target = torch.rand(3, 16, 16, generator=g) > 0.7
    return [
        Case((missed, target, u[:1]), "the prediction misses a column: a positive click in that column"),
        Case((over, target, u[:1]), "one wrongly covered pixel at (0, 0): a negative click there"),
        Case((both, torch.cat([target, target]), u), "a batch of both cases"),
        Case((torch.zeros(1, 4, 6, dtype=torch.bool), torch.ones(1, 4, 6, dtype=torch.bool), torch.rand(1, 4, 6, generator=g)),
             "nothing predicted, everything target (4 x 6): the largest u anywhere, positive; x < 6, y < 4"),
        Case((target.clone(), target, u[:1]), "a perfect prediction: no error, click the target pixel with the largest u"),
        Case((rand_pred, rand_target, torch.rand(3, 16, 16, generator=g)), "random masks, batch of 3"),
    ]


def check_click_from_error(fn) -> bool:
    """Check ``fn(pred (B, H, W) bool, target (B, H, W) bool, u (B, H, W)) -> (points (B, 2) xy float, labels (B,) int64)``."""
    return check("check_click_from_error", fn, click_from_error_reference, _click_cases())


# ---------------------------------------------------------------------------------------------
# Exercise 3: mask post-processing
# ---------------------------------------------------------------------------------------------


def postprocess_masks_reference(low_res: torch.Tensor, img_size: int, input_size: tuple[int, int],
                                original_size: tuple[int, int]) -> torch.Tensor:
    """(K, h, w) logits -> (K, H, W) bool: bilinear to img_size x img_size, crop to input_size,
    bilinear to original_size (align_corners=False), then logits > 0."""
    x = F.interpolate(low_res[None], (img_size, img_size), mode="bilinear", align_corners=False)
    x = x[..., : input_size[0], : input_size[1]]
    return F.interpolate(x, original_size, mode="bilinear", align_corners=False)[0] > 0


def _post_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case((torch.randn(3, 16, 16, generator=g), 64, (64, 64), (64, 64)), "a square image of the encoder's size"),
        Case((torch.randn(1, 16, 16, generator=g), 64, (40, 64), (40, 64)),
             "a wide image: input 40 x 64, the bottom 24 rows are padding to crop away"),
        Case((torch.randn(2, 8, 8, generator=g), 32, (32, 20), (96, 60)),
             "a tall image shown at 3x: crop to 32 x 20, then resize to 96 x 60"),
        Case((torch.full((1, 4, 4), -1.0), 16, (16, 16), (16, 16)), "all logits negative: an empty mask"),
    ]


def check_postprocess_masks(fn) -> bool:
    """Check ``fn(low_res (K, h, w), img_size, input_size (h_in, w_in), original_size (H, W)) -> (K, H, W) bool``."""
    return check("check_postprocess_masks", fn, postprocess_masks_reference, _post_cases())


# ---------------------------------------------------------------------------------------------
# Exercise 4: the hypernetwork's dot product (the last step of MaskDecoder.predict_masks)
# ---------------------------------------------------------------------------------------------


def hypernetwork_masks_reference(hyper_in: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
    """Mask logits (B, K, H, W): for each mask token k and pixel (y, x), the dot product of the
    token's weights hyper_in[b, k] (C8,) with the upscaled embedding's feature upscaled[b, :, y, x]."""
    return torch.einsum("bkc,bchw->bkhw", hyper_in, upscaled)


def _hyper_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    pick = torch.zeros(1, 2, 3)
    pick[0, 0, 1] = 1.0                                            # token 0 reads channel 1 only
    pick[0, 1] = torch.tensor([1.0, -1.0, 0.0])                    # token 1: channel 0 minus channel 1
    feat = torch.randn(1, 3, 4, 5, generator=g)
    return [
        Case((pick, feat), "one-hot weights: token 0's mask is channel 1 of the upscaled embedding"),
        Case((torch.randn(2, 4, 8, generator=g), torch.randn(2, 8, 16, 16, generator=g)),
             "the course model's sizes: 2 prompts, 4 mask tokens, C/8 = 8 channels, 16 x 16"),
        Case((torch.randn(1, 1, 8, generator=g), torch.randn(1, 8, 6, 3, generator=g)), "one token, a 6 x 3 grid (H != W)"),
        Case((torch.randn(3, 4, 2, generator=g), torch.randn(3, 2, 5, 5, generator=g)),
             "a batch of 3: each prompt's tokens read only their own image (no mixing across b)"),
    ]


def check_hypernetwork_masks(fn) -> bool:
    """Check ``fn(hyper_in (B, K, C8), upscaled (B, C8, H, W)) -> mask logits (B, K, H, W)``."""
    return check("check_hypernetwork_masks", fn, hypernetwork_masks_reference, _hyper_cases())

"""Two-dimensional toy data sets for watching a diffusion model learn: two moons and a spiral.

Each sampler is a seeded function ``(n, seed) -> (n, 2)`` float32, scaled so the cloud has
roughly unit spread per coordinate, like data in [-1, 1] images: the forward process then
reaches N(0, I) with the usual schedules.
"""

from __future__ import annotations

import math

import torch

DATASETS = ("moons", "spiral")


def two_moons(n: int, seed: int = 0, noise: float = 0.08) -> torch.Tensor:
    """Two interleaved half circles (scikit-learn's ``make_moons`` shape), centred and scaled.

    Args:
        n: number of points (half on each moon, the extra one on the first).
        noise: standard deviation of the Gaussian jitter, in the scaled units.
    Returns:
        (n, 2) float32, mean near 0, coordinates roughly in [-2, 2] x [-1, 1].
    """
    _check_n(n)
    g = torch.Generator().manual_seed(seed)
    n_upper = n - n // 2
    angle = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    upper = torch.arange(n) < n_upper
    x = torch.where(upper, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.2  # centre the pair, then scale
    pts = pts + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return pts[torch.randperm(n, generator=g)].float()


def spiral(n: int, seed: int = 0, noise: float = 0.05, turns: float = 1.5) -> torch.Tensor:
    """One arm of an Archimedean spiral (radius grows with angle), centred and scaled.

    Returns:
        (n, 2) float32 inside about [-1.3, 1.3]^2.
    """
    _check_n(n)
    g = torch.Generator().manual_seed(seed)
    # Uniform in arc length is close to uniform in s^2 for an Archimedean spiral; sqrt keeps the
    # outer, longer turn from looking sparse.
    s = torch.rand(n, generator=g, dtype=torch.float64).sqrt() * 0.9 + 0.1
    angle = s * turns * 2 * math.pi
    pts = torch.stack([s * torch.cos(angle), s * torch.sin(angle)], dim=1) * 1.25
    return (pts + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


def make_2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``two_moons`` or ``spiral`` by name ("moons" or "spiral")."""
    if name == "moons":
        return two_moons(n, seed)
    if name == "spiral":
        return spiral(n, seed)
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")


def distance_to_data(samples: torch.Tensor, data: torch.Tensor, chunk: int = 1024) -> float:
    """Mean Euclidean distance from each sample (N, D) to its nearest point of ``data`` (M, D).

    A "precision" measure: it grows when samples leave the data's support (a blurred, thicker
    cloud) and ignores whether every part of the data is covered (use a sliced Wasserstein
    distance for that). Computed in chunks of ``chunk`` samples to bound memory at chunk x M.
    """
    if samples.ndim != 2 or data.ndim != 2 or samples.shape[1] != data.shape[1]:
        raise ValueError(f"samples (N, D) and data (M, D) must share D, got {tuple(samples.shape)} and {tuple(data.shape)}")
    if len(samples) == 0 or len(data) == 0:
        raise ValueError("samples and data must be non-empty")
    # Exact differences, not the faster |a|^2 - 2ab + |b|^2 expansion, which loses ~1e-5 to cancellation.
    nearest = [torch.cdist(part, data, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
               for part in samples.split(chunk)]
    return torch.cat(nearest).mean().item()

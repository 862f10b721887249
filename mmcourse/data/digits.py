"""scikit-learn's 8x8 handwritten digits: real data that ships with the package, so it works offline.

1,797 grey-scale digits (0-9) of 8x8 pixels with values 0..16. We scale them to [-1, 1] (the
range diffusion models expect) and fix one stratified train/test split so every notebook and
test sees the same images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    images = (d.images.astype(np.float32) / 8.0 - 1.0)[:, None]  # (1797, 1, 8, 8) in [-1, 1]
    labels = d.target.astype(np.int64)
    # Stratified split by hand (a seeded permutation inside each class) to keep sklearn's API out of it.
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        is_test[idx[: int(round(TEST_FRACTION * len(idx)))]] = True
    return images, labels, is_test


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, labels) of one split.

    Args:
        split: "train" (1,438 digits), "test" (359) or "all" (1,797).

    Returns:
        images: (N, 1, 8, 8) float32 in [-1, 1] (ink is +1).  labels: (N,) int64 in 0..9.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels, is_test = _load_all()
    keep = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
    return torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep].copy())


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] for display (clamped)."""
    return ((images + 1) / 2).clamp(0, 1)

"""Ways to score what a generative model produced, shared by the diffusion notebooks and benches.

- 1-D and sliced Wasserstein distances between sample clouds (low-dimensional toy data).
- A small digit classifier (trained by ``make weights`` and shipped) whose confidence and
  penultimate features score generated 8x8 digits, and the Fréchet distance between feature sets
  (the idea behind FID, at toy scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> float:
    """W1 distance between two 1-D empirical distributions of any sizes (exact, via quantiles)."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten().sort().values
    b = torch.as_tensor(b, dtype=torch.float64).flatten().sort().values
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError("a and b must be non-empty")
    # Integrate |F_a^-1(q) - F_b^-1(q)| over q on the union of both quantile grids.
    f64 = torch.float64
    qs = torch.cat([torch.arange(1, a.numel() + 1, dtype=f64) / a.numel(), torch.arange(1, b.numel() + 1, dtype=f64) / b.numel()])
    qs = qs.unique().sort().values
    edges = torch.cat([torch.zeros(1, dtype=torch.float64), qs])
    widths = torch.diff(edges)
    mid = (edges[1:] + edges[:-1]) / 2  # both quantile functions are constant on each interval
    ia = torch.clamp((mid * a.numel()).floor().long(), 0, a.numel() - 1)
    ib = torch.clamp((mid * b.numel()).floor().long(), 0, b.numel() - 1)
    return float((widths * (a[ia] - b[ib]).abs()).sum())


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Mean W1 distance of random 1-D projections of two point clouds a (N, D) and b (M, D)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be (N, D) and (M, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_projections, a.shape[1], generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    pa, pb = a.double() @ dirs.T, b.double() @ dirs.T  # (N, P), (M, P)
    return float(np.mean([wasserstein_1d(pa[:, i], pb[:, i]) for i in range(n_projections)]))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, as in FID.
    """
    from scipy import linalg

    a = feats_a.double().numpy()
    b = feats_b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


@dataclass
class DigitsClassifierConfig:
    width: int = 32
    feature_dim: int = 64


class DigitsClassifier(nn.Module):
    """A small CNN for 8x8 digits in [-1, 1]: (B, 1, 8, 8) -> logits (B, 10).

    ``features(x)`` returns the (B, feature_dim) penultimate activations used for the Fréchet
    distance between generated and real digits.
    """

    def __init__(self, cfg: DigitsClassifierConfig = DigitsClassifierConfig()) -> None:
        super().__init__()
        w = cfg.width
        self.cfg = cfg
        self.conv = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),          # (B, w, 4, 4)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),      # (B, 2w, 2, 2)
        )
        self.fc = nn.Linear(2 * w * 4, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"x must have shape (B, 1, 8, 8), got {tuple(x.shape)}")
        return F.gelu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digits_classifier(steps: int = 1500, seed: int = 0, progress: bool = True) -> tuple[DigitsClassifier, dict]:
    """Train :class:`DigitsClassifier` on the digits train split with small random shifts.

    Returns the model and ``{"test_accuracy": ...}``.
    """
    from .data.digits import load_digits
    from .train import fit, seed_everything

    x, y = load_digits("train")
    xt, yt = load_digits("test")
    seed_everything(seed)  # the initial weights too, not only the batches
    model = DigitsClassifier()

    def loss_fn(m: nn.Module, g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(x), (128,), generator=g)
        xb = x[idx]
        # A random shift of up to one pixel: cheap augmentation so the classifier does not
        # reject a generated digit for being drawn one pixel off centre.
        dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
        xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        return F.cross_entropy(m(xb), y[idx])

    fit(model, loss_fn, steps=steps, lr=2e-3, seed=seed, cosine=True, warmup=50, weight_decay=1e-4,
        progress=progress, desc="digits classifier")
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return model, {"test_accuracy": acc}


def load_digits_classifier() -> DigitsClassifier:
    """The shipped classifier (``make weights`` builds it), in eval mode."""
    from . import weights

    state, e = weights.load("digits_classifier")
    model = DigitsClassifier(DigitsClassifierConfig(**e.config))
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def score_digits(samples: torch.Tensor, classifier: DigitsClassifier | None = None) -> dict[str, float]:
    """Score generated digits (N, 1, 8, 8) in [-1, 1] against the real test digits.

    Returns mean max-probability (confidence), the smallest class share, and the Fréchet distance
    of classifier features to the real test digits, with the same numbers for the real test
    digits (and, for the distance, the real train digits) as a reference.
    """
    from .data.digits import load_digits

    clf = classifier or load_digits_classifier()
    real_test, _ = load_digits("test")
    real_train, _ = load_digits("train")
    samples = samples.clamp(-1, 1)
    p = clf(samples).softmax(1)
    p_real = clf(real_test).softmax(1)
    shares = torch.bincount(p.argmax(1), minlength=10).double() / len(samples)
    f_test = clf.features(real_test)
    return {
        "confidence": p.max(1).values.mean().item(),
        "real_confidence": p_real.max(1).values.mean().item(),
        "min_class_share": shares.min().item(),
        "frechet": frechet_distance(clf.features(samples), f_test),
        "frechet_real_train_vs_test": frechet_distance(clf.features(real_train), f_test),
    }


def config_dict(cfg) -> dict:
    """A dataclass config as a plain dict (for the weights registry)."""
    return asdict(cfg)

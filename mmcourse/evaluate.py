"""Ways to score what a generative model produced, shared by the diffusion notebooks and benches.

- 1-D and sliced Wasserstein distances between sample clouds (low-dimensional toy data).
- A small digit classifier (trained by ``make weights`` and shipped) whose confidence and
  penultimate features score generated 8x8 digits, and the Fréchet distance between feature sets
  (the idea behind FID, at toy scale).
- COCO-style detection average precision (``detection_ap``, checked against pycocotools),
  shared by SAM's boxes-from-masks and GLIP; boxes are matched by :func:`mmcourse.boxes.box_iou`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .boxes import box_iou


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
def score_digits(samples: torch.Tensor, classifier: DigitsClassifier | None = None,
                 groups: int = 5) -> dict:
    """Score generated digits (N, 1, 8, 8) in [-1, 1] against the real test digits.

    Returns :class:`~mmcourse.protocol.Estimate` s of the mean max-probability (``confidence``),
    the same over the real test digits' (``confidence_ratio``), the rarest predicted digit's share
    (binomial error) and the Fréchet distance of classifier features to the real test digits (its
    error by the jackknife over ``groups`` equal, consecutive groups of samples: pass one group per
    seed when the samples come from several seeds); and, as floats for reference, the real test
    digits' confidence and the distance between the real train and test digits.
    """
    from .data.digits import load_digits
    from .protocol import Estimate, mean

    if samples.ndim != 4 or samples.shape[1:] != (1, 8, 8) or len(samples) == 0:
        raise ValueError(f"samples must be (N, 1, 8, 8) digits, got {tuple(samples.shape)}")
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("samples must be finite")
    if groups < 2 or len(samples) % groups:
        raise ValueError(f"groups must be at least 2 and divide the {len(samples)} samples, got {groups}")
    clf = classifier or load_digits_classifier()
    real_test, _ = load_digits("test")
    real_train, _ = load_digits("train")
    samples = samples.clamp(-1, 1)
    with torch.no_grad():
        p = clf(samples).softmax(1)
        real_confidence = float(clf(real_test).softmax(1).max(1).values.mean())
        n = len(samples)
        rare = float((torch.bincount(p.argmax(1), minlength=10).double() / n).min())
        f_test = clf.features(real_test)
        feats = clf.features(samples)
        fd = frechet_distance(feats, f_test)
        leave_one_out = [frechet_distance(torch.cat([f for j, f in enumerate(feats.chunk(groups)) if j != i]), f_test)
                         for i in range(groups)]
        fd_train = frechet_distance(clf.features(real_train), f_test)
    m = sum(leave_one_out) / groups
    fd_se = math.sqrt((groups - 1) / groups * sum((v - m) ** 2 for v in leave_one_out))
    return {
        "confidence": mean(p.max(1).values),
        "confidence_ratio": mean(p.max(1).values / real_confidence),
        "min_class_share": Estimate(rare, math.sqrt(rare * (1 - rare) / n), n),
        "frechet": Estimate(fd, fd_se, n),
        "real_confidence": real_confidence,
        "frechet_real_train_vs_test": fd_train,
    }


def config_dict(cfg) -> dict:
    """A dataclass config as a plain dict (for the weights registry)."""
    return asdict(cfg)


# ---------------------------------------------------------------------------------------------
# Detection: COCO-style average precision (shared by SAM's "everything" boxes and GLIP)
# ---------------------------------------------------------------------------------------------

COCO_IOU_THRESHOLDS = tuple(np.linspace(0.5, 0.95, 10).round(2).tolist())  # 0.50, 0.55, ..., 0.95
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101-point interpolation


def _check_boxes(argument: str, boxes, i: int) -> torch.Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{argument}[{i}]['boxes'] must have shape (n, 4) (xyxy pixels), got {tuple(boxes.shape)}")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{argument}[{i}]['boxes'] must be finite: it holds NaN or inf")
    if bool((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
        raise ValueError(f"{argument}[{i}]['boxes'] must be xyxy with x1 >= x0 and y1 >= y0")
    return boxes


def _check_vector(argument: str, item: dict, key: str, n: int, i: int) -> torch.Tensor:
    if key not in item:
        raise ValueError(f"{argument}[{i}] must have a {key!r} entry (one per box)")
    v = torch.as_tensor(item[key]).flatten()
    if v.numel() != n:
        raise ValueError(f"{argument}[{i}][{key!r}] must have one value per box ({n}), got {v.numel()}")
    return v


def detection_ap(detections: list[dict], targets: list[dict], iou_thresholds=None, max_detections: int = 100) -> dict:
    """COCO-style average precision of box detections, as ``pycocotools``' COCOeval computes it.

    Args:
        detections: one dict per image with "boxes" (n, 4) xyxy pixels, "scores" (n,) and
            "labels" (n,) int (use all zeros for class-agnostic boxes).
        targets: one dict per image (same order) with "boxes" (m, 4) and "labels" (m,).
        iou_thresholds: the IoU thresholds to average over; default COCO's 0.50:0.05:0.95.
        max_detections: at most this many detections per image and class, highest scores first.

    Returns a dict: "AP" (mean over thresholds and classes), "AP50" and "AP75" (when those
    thresholds are among ``iou_thresholds``), and "per_class_AP50" {label: AP at IoU 0.5}.
    Classes without any ground-truth box are left out of the mean (as COCOeval does); a class
    with ground truth but no detection counts 0. Recall is read at 101 points, with the
    precision envelope (the best precision at any higher recall).
    """
    if len(detections) != len(targets):
        raise ValueError(f"detections and targets must list the same images: {len(detections)} vs {len(targets)}")
    thresholds = np.asarray(COCO_IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or ((thresholds <= 0) | (thresholds > 1)).any():
        raise ValueError(f"iou_thresholds must be a non-empty list of values in (0, 1], got {iou_thresholds!r}")
    T = len(thresholds)

    # Per image: check and split by class.
    classes: set[int] = set()
    per_image = []
    for i, (det, tgt) in enumerate(zip(detections, targets)):
        db, tb = _check_boxes("detections", det["boxes"], i), _check_boxes("targets", tgt["boxes"], i)
        ds = _check_vector("detections", det, "scores", len(db), i).double()
        dl = _check_vector("detections", det, "labels", len(db), i).long()
        tl = _check_vector("targets", tgt, "labels", len(tb), i).long()
        per_image.append((db, ds, dl, tb, tl))
        classes.update(tl.tolist())

    per_class: dict[int, np.ndarray] = {}  # label -> AP per threshold (T,)
    for c in sorted(classes):
        scores, matched, n_gt = [], [], 0
        for db, ds, dl, tb, tl in per_image:
            d_idx = torch.nonzero(dl == c).flatten()
            g = tb[tl == c]
            n_gt += len(g)
            order = torch.sort(ds[d_idx], descending=True, stable=True).indices[:max_detections]
            d = db[d_idx][order]
            scores.append(ds[d_idx][order].numpy())
            m = np.zeros((T, len(d)), dtype=bool)
            if len(d) and len(g):
                iou = box_iou(d, g).numpy()  # (nd, ng)
                for t, thr in enumerate(thresholds):
                    taken = np.zeros(len(g), dtype=bool)
                    for k in range(len(d)):  # greedy in score order: the best free box above thr
                        best, best_iou = -1, min(thr, 1 - 1e-10)
                        for j in range(len(g)):
                            if taken[j] or iou[k, j] < best_iou:
                                continue
                            best, best_iou = j, iou[k, j]
                        if best >= 0:
                            taken[best] = True
                            m[t, k] = True
            matched.append(m)
        s = np.concatenate(scores)
        order = np.argsort(-s, kind="mergesort")
        tp = np.concatenate(matched, axis=1)[:, order]  # (T, nd)
        ap = np.zeros(T)
        for t in range(T):
            tps = np.cumsum(tp[t]).astype(float)
            fps = np.cumsum(~tp[t]).astype(float)
            recall = tps / n_gt
            precision = tps / (tps + fps + np.spacing(1))
            envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
            idx = np.searchsorted(recall, _RECALL_POINTS, side="left")
            q = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)] if len(envelope) else 0.0, 0.0)
            ap[t] = q.mean()
        per_class[c] = ap

    out: dict = {}
    if per_class:
        table = np.stack(list(per_class.values()))  # (C, T)
        out["AP"] = float(table.mean())
        for name, thr in (("AP50", 0.5), ("AP75", 0.75)):
            hit = np.isclose(thresholds, thr)
            if hit.any():
                out[name] = float(table[:, hit.argmax()].mean())
        if np.isclose(thresholds, 0.5).any():
            k = int(np.isclose(thresholds, 0.5).argmax())
            out["per_class_AP50"] = {c: float(v[k]) for c, v in per_class.items()}
    else:
        out["AP"] = float("nan")
    return out

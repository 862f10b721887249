"""The classification tasks of notebook 03: 8x8 digits and ShapesWorld shapes.

Each task is a pair of tensors (images, labels) for training and for testing. Training draws
random mini-batches from the training tensors through :func:`mmcourse.train.fit`, so the same
code trains the ViT and the CNN, live in the notebook, in ``make weights`` and in ``make bench``.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..protocol import RESULTS, load_results  # noqa: F401  (notebooks 03, 04 and 06 import it from here)
from ..train import History, batched, fit
from .cnn import CNNConfig
from .model import ViTConfig, VisionTransformer

# The ViTs of notebook 03's training cells (short live runs there; bench/vit.py trains both with the
# full recipe).
# Digits: 8x8 grey images in 4 patches of 4x4 (2x2 patches do worse on the 1,438 training digits:
# bench/results/vit_ablations.json). Shapes: 32x32 scenes in 16 patches of 8x8.
DIGITS_VIT = ViTConfig(img_size=8, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=2, num_heads=4)
SHAPES_VIT = ViTConfig(img_size=32, patch_size=8, in_chans=3, num_classes=5, embed_dim=64, depth=2, num_heads=4)

# The shipped checkpoints (``make weights``) are wider or deeper and train longer.
DIGITS_VIT_LARGE = ViTConfig(img_size=8, patch_size=4, in_chans=1, num_classes=10, embed_dim=128, depth=4, num_heads=4)
SHAPES_VIT_LARGE = ViTConfig(img_size=32, patch_size=8, in_chans=3, num_classes=5, embed_dim=64, depth=4, num_heads=4)

# The convolutional baselines of the inductive-bias comparison, with about as many parameters as
# DIGITS_VIT (102k against 101k) and SHAPES_VIT (114k against 112k).
CNN_FOR: dict[int, CNNConfig] = {
    8: CNNConfig(img_size=8, in_chans=1, num_classes=10, width=40, stages=2),
    32: CNNConfig(img_size=32, in_chans=3, num_classes=5, width=20, stages=3),
}

DIGITS_BACKGROUND = -1.0  # digits are in [-1, 1] with the paper at -1


def digits_task() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train (1438, 1, 8, 8), y_train, x_test (359, 1, 8, 8), y_test), images in [-1, 1]."""
    from ..data.digits import load_digits

    x, y = load_digits("train")
    xt, yt = load_digits("test")
    return x, y, xt, yt


def shapes_task(
    n: int, seed: int = 0, split: str = "train", random_colour_fraction: float = 0.0, image_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n one-object ShapesWorld scenes: (images (n, 3, S, S) in [0, 1], shape labels (n,), colour labels (n,)).

    ``random_colour_fraction`` of the scenes are painted in random colours (ShapesWorld's
    ``colour_mode="random"``, still labelled with the nearest named colour, so the split rules
    hold), the rest in the six exact named colours.
    """
    from ..data.shapes import ShapesWorld

    if not 0.0 <= random_colour_fraction <= 1.0:
        raise ValueError(f"random_colour_fraction must be in [0, 1], got {random_colour_fraction!r}")
    n_random = int(round(n * random_colour_fraction))
    parts = []
    # Different seeds per mode so the two halves are independent draws.
    if n - n_random:
        parts.append(ShapesWorld(image_size=image_size, colour_mode="named").sample(n - n_random, seed=seed, split=split))
    if n_random:
        parts.append(ShapesWorld(image_size=image_size, colour_mode="random").sample(n_random, seed=seed + 7919, split=split))
    images = torch.cat([p.images for p in parts])
    shape = torch.cat([p.shape[:, 0] for p in parts])
    colour = torch.cat([p.colour[:, 0] for p in parts])
    if len(parts) == 2:  # interleave the two modes so any prefix is mixed
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        images, shape, colour = images[perm], shape[perm], colour[perm]
    return images, shape, colour


def subtract_background(images: torch.Tensor) -> torch.Tensor:
    """ShapesWorld preprocessing: (B, 3, H, W) in [0, 1] -> the same with each image's background
    colour subtracted and the contrast doubled (background near 0, objects within [-2, 2]).

    The background is the median pixel of each channel: an object covers well under half of the
    image. Without this the model must first learn to ignore the random dark or light backgrounds
    (bench/results/vit_ablations.json compares the inputs; the CNN gets the same ones).
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    background = images.flatten(2).median(dim=-1).values[:, :, None, None]   # (B, C, 1, 1)
    return 2 * (images - background)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by its own random offset of up to ``max_shift`` pixels
    per axis, filling the uncovered border with ``fill``: cheap data augmentation."""
    if max_shift == 0:
        return x
    B, C, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=fill)                               # (B, C, H+2p, W+2p)
    dy, dx = torch.randint(0, 2 * p + 1, (2, B), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(H, device=x.device)                     # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)                     # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def train_classifier(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int = 128, lr: float = 1e-3,
    seed: int = 0, max_shift: int = 0, fill: float = 0.0, weight_decay: float = 0.0, label_smoothing: float = 0.0,
    warmup: int | None = None, progress: bool = True, desc: str = "training",
) -> History:
    """Train ``model`` to predict y (N,) from x (N, C, H, W) with cross-entropy, AdamW and a cosine schedule.

    Batches are drawn with replacement from the training tensors (seeded by ``fit``), optionally
    shifted by up to ``max_shift`` pixels.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")

    def loss_fn(m: nn.Module, g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(x), (batch_size,), generator=g)
        xb = random_shift(x[idx], max_shift, g, fill)
        return F.cross_entropy(m(xb), y[idx].to(xb.device), label_smoothing=label_smoothing)

    warmup = max(1, steps // 20) if warmup is None else warmup
    return fit(model, loss_fn, steps=steps, lr=lr, seed=seed, weight_decay=weight_decay, warmup=warmup,
               cosine=True, progress=progress, desc=desc)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class indices (N,) for images x (N, C, H, W), in eval mode."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    model.eval()
    return batched(lambda xb: model(xb).argmax(-1), x, batch_size)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x classified as y."""
    return (predict(model, x) == y.to(x.device)).float().mean().item()


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    if pred.shape != target.shape or pred.ndim != 1:
        raise ValueError(f"pred and target must be 1-D and of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    for name, t in (("pred", pred), ("target", target)):
        if len(t) and not (0 <= int(t.min()) and int(t.max()) < num_classes):
            raise ValueError(f"{name} must hold class indices in 0..{num_classes - 1}, got {int(t.min())}..{int(t.max())}")
    flat = target.long() * num_classes + pred.long()
    return torch.bincount(flat.cpu(), minlength=num_classes**2).reshape(num_classes, num_classes)


def load_vit(name: str) -> VisionTransformer:
    """A shipped ViT checkpoint (``make weights``) by registry name, in eval mode."""
    from .. import weights

    state, e = weights.load(name)
    model = VisionTransformer(ViTConfig(**e.config))
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# The shipped checkpoints (built by `make weights`, see mmcourse/weights/build.py)
# ---------------------------------------------------------------------------------------------

SHAPES_EVAL = dict(n_test=4000, n_heldout=3000, test_seed=10_001, heldout_seed=10_002)


def train_digits_vit(
    cfg: ViTConfig = DIGITS_VIT_LARGE, steps: int = 2000, lr: float = 1e-3, seed: int = 0, progress: bool = True,
) -> tuple[VisionTransformer, dict[str, float]]:
    """The shipped digits ViT: random one-pixel shifts and weight decay against overfitting the
    1,438 training digits. Returns the model and {"test_accuracy": ...}."""
    from ..train import seed_everything

    x, y, xt, yt = digits_task()
    seed_everything(seed)  # the initial weights too, not only the batches
    model = VisionTransformer(cfg)
    train_classifier(model, x, y, steps=steps, lr=lr, seed=seed, max_shift=1, fill=DIGITS_BACKGROUND,
                     weight_decay=0.05, progress=progress, desc="digits ViT")
    return model.eval(), {"test_accuracy": accuracy(model, xt, yt)}


def shapes_eval_sets(splits: tuple[str, ...] = ("test", "heldout")) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fixed evaluation scenes in the named colours, already background-subtracted:
    "test" (colour-shape pairs seen in training) and "heldout" (the six HELDOUT_COMBOS).

    ``splits`` names the sets to draw (both by default); each set is the same whichever others
    are asked for, so a caller that has its own seen-pair scenes can skip drawing "test".
    """
    unknown = [s for s in splits if s not in ("test", "heldout")]
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty selection of 'test' and 'heldout', got {splits!r}")
    e = SHAPES_EVAL
    sets = {}
    for split in splits:
        x, y, _ = shapes_task(e[f"n_{split}"], seed=e[f"{split}_seed"], split=split)
        sets[split] = (subtract_background(x), y)
    return sets


def train_shapes_vit(
    cfg: ViTConfig = SHAPES_VIT_LARGE, steps: int = 3000, n_train: int = 60_000, random_colour_fraction: float = 0.0,
    lr: float = 1e-3, seed: int = 0, progress: bool = True,
) -> tuple[VisionTransformer, dict[str, float]]:
    """A shipped ShapesWorld shape classifier, trained on the "train" split (the held-out
    colour-shape pairs never appear). Returns the model and its accuracy on seen ("test") and
    held-out ("heldout") combinations."""
    from ..train import seed_everything

    x, y, _ = shapes_task(n_train, seed=seed, random_colour_fraction=random_colour_fraction)
    x = subtract_background(x)
    seed_everything(seed)
    model = VisionTransformer(cfg)
    train_classifier(model, x, y, steps=steps, lr=lr, seed=seed, progress=progress,
                     desc=f"shapes ViT ({random_colour_fraction:.0%} random colours)")
    metrics = {f"{name}_accuracy": accuracy(model, xs, ys) for name, (xs, ys) in shapes_eval_sets().items()}
    return model.eval(), metrics

"""Rebuild the shipped checkpoints: ``python -m mmcourse.weights.build NAME [NAME ...]`` or ``all``.

Each builder trains with the repo's own code, seeded, and records the metric it reached in the
registry next to the sha256 of the file it wrote.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Callable

from . import save


def build_digits_classifier() -> None:
    from ..evaluate import config_dict, train_digits_classifier

    model, metrics = train_digits_classifier(steps=3000, seed=0)
    if metrics["test_accuracy"] < 0.97:
        raise RuntimeError(f"digits classifier reached only {metrics['test_accuracy']:.3f} (< 0.97)")
    save("digits_classifier", model.state_dict(), config_dict(model.cfg),
         "python -m mmcourse.weights.build digits_classifier", metrics)


def build_diffusion_digits_unet() -> None:
    """The digits denoiser of notebook 02: a U-Net trained 3,000 steps, scored with DDIM-50 samples."""
    import torch

    from ..diffusion import sample
    from ..diffusion.train import CHECKPOINT, config_dict, train_digits_unet
    from ..evaluate import score_digits

    threads = torch.get_num_threads()
    # One thread: small convolutions gain little from a second one, and on a shared 2-core machine
    # two threads that wait for each other can be many times slower.
    torch.set_num_threads(1)
    try:
        model, schedule, hist = train_digits_unet(steps=3000, batch_size=128, lr=2e-3, seed=0)
        x = sample(model, schedule, (500, 1, 8, 8), 50, method="ddim", generator=torch.Generator().manual_seed(0))
        score = score_digits(x)
    finally:
        torch.set_num_threads(threads)
    ratio = score["confidence"] / score["real_confidence"]
    if ratio < 0.95 or score["min_class_share"] < 0.05:
        raise RuntimeError(f"digits U-Net reached confidence ratio {ratio:.3f} (< 0.95?) and min class share "
                           f"{score['min_class_share']:.3f} (< 0.05?) with DDIM-50")
    from ..diffusion.train import DigitsUNetConfig

    save(CHECKPOINT, model.state_dict(), config_dict(DigitsUNetConfig()),
         f"python -m mmcourse.weights.build {CHECKPOINT}",
         {"final_loss": hist.final(100), "ddim50_confidence_ratio": ratio,
          "ddim50_min_class_share": score["min_class_share"], "ddim50_frechet": score["frechet"]})


def build_clip_shapes_named() -> None:
    """Notebook 04's CLIP trained on the six named colours (2,000 steps of 256 pairs)."""
    from ..clip.tasks import build_checkpoint

    build_checkpoint("clip_shapes_named")


def build_clip_shapes_broad() -> None:
    """Notebook 04's CLIP trained with broad colour variety (half the scenes in random colours)."""
    from ..clip.tasks import build_checkpoint

    build_checkpoint("clip_shapes_broad")


def build_vit_digits() -> None:
    from ..vit.tasks import train_digits_vit

    model, metrics = train_digits_vit(steps=2000, seed=0)
    if metrics["test_accuracy"] < 0.98:
        raise RuntimeError(f"digits ViT reached only {metrics['test_accuracy']:.3f} (< 0.98)")
    save("vit_digits", model.state_dict(), model.cfg.to_dict(), "python -m mmcourse.weights.build vit_digits", metrics)


def _build_vit_shapes(name: str, random_colour_fraction: float) -> None:
    from ..vit.tasks import train_shapes_vit

    model, metrics = train_shapes_vit(steps=3000, n_train=60_000, random_colour_fraction=random_colour_fraction, seed=0)
    if metrics["test_accuracy"] < 0.995:
        raise RuntimeError(f"{name} reached only {metrics['test_accuracy']:.4f} (< 0.995) on seen colour-shape pairs")
    metrics["random_colour_fraction"] = random_colour_fraction
    save(name, model.state_dict(), model.cfg.to_dict(), f"python -m mmcourse.weights.build {name}", metrics)


def build_vit_shapes() -> None:
    """Shape classifier trained on the six named colours only (24 of 30 colour-shape pairs)."""
    _build_vit_shapes("vit_shapes", 0.0)


def build_vit_shapes_broad() -> None:
    """The same with half of the training scenes painted in random colours."""
    _build_vit_shapes("vit_shapes_broad", 0.5)


# name -> builder for the foundation's checkpoints. Later topics keep theirs beside their code:
# a module ``mmcourse/<topic>/checkpoints.py`` with a ``BUILDERS`` dict of the same shape, found
# by ``all_builders()``.
BUILDERS: dict[str, Callable[[], None]] = {
    "digits_classifier": build_digits_classifier,
    "vit_digits": build_vit_digits,
    "vit_shapes": build_vit_shapes,
    "vit_shapes_broad": build_vit_shapes_broad,
    "diffusion_digits_unet": build_diffusion_digits_unet,
    "clip_shapes_named": build_clip_shapes_named,
    "clip_shapes_broad": build_clip_shapes_broad,
}


def all_builders() -> dict[str, Callable[[], None]]:
    """The foundation's builders, then each topic's ``mmcourse.<topic>.checkpoints.BUILDERS``
    in package order (so ``all`` builds a topic's dependencies, e.g. CLIP, before it)."""
    import importlib
    import pkgutil

    import mmcourse

    builders = dict(BUILDERS)
    for pkg in sorted(m.name for m in pkgutil.iter_modules(mmcourse.__path__) if m.ispkg):
        if importlib.util.find_spec(f"mmcourse.{pkg}.checkpoints") is None:
            continue
        topic = importlib.import_module(f"mmcourse.{pkg}.checkpoints").BUILDERS
        clash = sorted(set(topic) & set(builders))
        if clash:
            raise RuntimeError(f"mmcourse.{pkg}.checkpoints registers names already taken: {clash}")
        builders.update(topic)
    return builders


def main(argv: list[str] | None = None) -> int:
    builders = all_builders()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="+", help=f"'all' or some of: {', '.join(builders)}")
    args = p.parse_args(argv)
    names = list(builders) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in builders]
    if unknown:
        p.error(f"unknown checkpoint(s) {unknown}; choose from {list(builders)} or 'all'")
    for n in names:
        t0 = time.perf_counter()
        builders[n]()
        print(f"{n}: built in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

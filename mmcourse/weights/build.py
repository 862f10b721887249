"""Rebuild the shipped checkpoints: ``python -m mmcourse.weights.build NAME [NAME ...]`` or ``all``.

Each builder trains with the repo's own code, seeded, measures the model on the evaluation
protocol's test draws (``mmcourse.protocol``) with the same evaluator that ``make weights-check``
runs on the check draws, enforces its targets, and records the metrics (with standard errors) in
the registry next to the sha256 of the file it wrote.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Callable

from . import save


# ---------------------------------------------------------------------------------------------
# Measuring: each checkpoint's protocol metrics (mmcourse.protocol) on a part's draws
# ---------------------------------------------------------------------------------------------
# The builder measures the model it trained on the "test" part and saves the numbers; make
# weights-check (mmcourse.weights.check) loads the shipped file and measures it again on the
# "check" part with the same function, so the two can never measure differently.

# Targets each builder enforces before it saves (checkpoint -> metric -> {"min": x} or {"max": x}).
TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "digits_classifier": {"test_accuracy": {"min": 0.97}},
    "vit_digits": {"test_accuracy": {"min": 0.98}},
    "vit_shapes": {"test_accuracy": {"min": 0.995}},
    "vit_shapes_broad": {"test_accuracy": {"min": 0.995}},
    "diffusion_digits_unet": {"ddim50_confidence_ratio": {"min": 0.95}, "ddim50_min_class_share": {"min": 0.05}},
    "clip_shapes_named": {"zero_shot_seen": {"min": 0.95}, "i2t_attribute_r1": {"min": 0.90}},
    "clip_shapes_broad": {"zero_shot_seen": {"min": 0.95}, "zero_shot_heldout": {"min": 0.80},
                          "i2t_attribute_r1": {"min": 0.90}},
}

SHAPES_VIT_SCENES = {"test": 800, "heldout": 600}  # per protocol seed: 4,000 and 3,000 scenes in all
DIGITS_UNET_SAMPLES = 100                          # DDIM-50 samples per protocol seed: 500 in all


def _check_part(part: str) -> None:
    if part not in ("test", "check"):
        raise ValueError(f"part must be 'test' (the registry's numbers) or 'check' (make weights-check), got {part!r}")


def missed_targets(name: str, metrics: dict, targets: dict | None = None) -> dict[str, str]:
    """{metric: "0.940 ± 0.004 (target ≥ 0.95)"} for every metric of ``name`` that misses its target."""
    from ..protocol import Estimate

    out = {}
    for metric, bound in (TARGETS.get(name, {}) if targets is None else targets).items():
        v = metrics[metric]
        value = v.value if isinstance(v, Estimate) else float(v)
        low, high = bound.get("min", -float("inf")), bound.get("max", float("inf"))
        if not low <= value <= high:
            out[metric] = v.describe(bound.get("min", bound.get("max")), "min" in bound) if isinstance(v, Estimate) \
                else f"{value:.4f} (target {bound})"
    return out


def _enforce(name: str, metrics: dict) -> None:
    missed = missed_targets(name, metrics)
    if missed:
        raise RuntimeError(f"{name} missed its targets (nothing saved): {missed}")


def measure_digits_accuracy(model, part: str) -> dict:
    """Accuracy on the 359 test digits of scikit-learn's fixed split.

    The digits are a fixed data set: no fresh draws exist, so the "check" part measures the same
    359 images (weights-check then confirms the shipped file, not a new sample)."""
    import torch

    from ..data.digits import load_digits
    from ..protocol import proportion

    _check_part(part)
    x, y = load_digits("test")
    with torch.no_grad():
        return {"test_accuracy": proportion(model(x).argmax(-1) == y)}


def measure_shapes_vit(model, part: str) -> dict:
    """Shape accuracy on named-colour scenes of the seen colour-shape pairs ("test_accuracy") and
    of the six held-out pairs ("heldout_accuracy"), pooled over the protocol's vit seeds."""
    import torch

    from ..protocol import proportion, seeds
    from ..vit.tasks import predict, shapes_task, subtract_background

    _check_part(part)
    out = {}
    for split, n in SHAPES_VIT_SCENES.items():
        hits = []
        for s in seeds("vit", part):
            x, y, _ = shapes_task(n, seed=s, split=split)
            hits.append(predict(model, subtract_background(x)) == y)
        out[f"{split}_accuracy"] = proportion(torch.cat(hits))
    return out


def measure_digits_unet(model, schedule, part: str) -> dict:
    """DDIM-50 samples of the digits denoiser scored by the shipped digits classifier
    (:func:`mmcourse.evaluate.score_digits`), 100 per protocol seed (500 in all): mean confidence
    over the real test digits' ("confidence ratio"), the rarest digit's share, and the Fréchet
    distance of classifier features to the test digits (jackknife over the five seeds)."""
    import torch

    from ..diffusion import sample
    from ..evaluate import score_digits
    from ..protocol import seeds

    _check_part(part)
    with torch.no_grad():
        x = torch.cat([sample(model, schedule, (DIGITS_UNET_SAMPLES, 1, 8, 8), 50, method="ddim",
                              generator=torch.Generator().manual_seed(s)) for s in seeds("diffusion", part)])
    s = score_digits(x, groups=len(seeds("diffusion", part)))
    return {"ddim50_confidence_ratio": s["confidence_ratio"], "ddim50_min_class_share": s["min_class_share"],
            "ddim50_frechet": s["frechet"]}


def _evaluate_digits_classifier(part: str) -> dict:
    from ..evaluate import load_digits_classifier

    return measure_digits_accuracy(load_digits_classifier(), part)


def _evaluate_vit(name: str):
    def evaluate(part: str) -> dict:
        from ..vit.tasks import load_vit

        model = load_vit(name)
        return measure_digits_accuracy(model, part) if name == "vit_digits" else measure_shapes_vit(model, part)

    return evaluate


def _evaluate_digits_unet(part: str) -> dict:
    from ..diffusion.train import load_digits_unet

    return measure_digits_unet(*load_digits_unet(), part)


def _evaluate_clip(name: str):
    def evaluate(part: str) -> dict:
        from ..clip.tasks import load_clip, protocol_metrics

        return protocol_metrics(load_clip(name), part)

    return evaluate


# name -> evaluator(part) of the foundation's shipped checkpoints (the convention of every
# module with BUILDERS: load the shipped file, measure on the part's draws, return Estimates).
EVALUATORS: dict[str, Callable[[str], dict]] = {
    "digits_classifier": _evaluate_digits_classifier,
    "vit_digits": _evaluate_vit("vit_digits"),
    "vit_shapes": _evaluate_vit("vit_shapes"),
    "vit_shapes_broad": _evaluate_vit("vit_shapes_broad"),
    "diffusion_digits_unet": _evaluate_digits_unet,
    "clip_shapes_named": _evaluate_clip("clip_shapes_named"),
    "clip_shapes_broad": _evaluate_clip("clip_shapes_broad"),
}


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def build_digits_classifier() -> None:
    from ..evaluate import config_dict, train_digits_classifier

    model, _ = train_digits_classifier(steps=3000, seed=0)
    metrics = measure_digits_accuracy(model.eval(), "test")
    _enforce("digits_classifier", metrics)
    save("digits_classifier", model.state_dict(), config_dict(model.cfg),
         "python -m mmcourse.weights.build digits_classifier", metrics, targets=TARGETS["digits_classifier"])


def build_diffusion_digits_unet() -> None:
    """The digits denoiser of notebook 02: a U-Net trained 3,000 steps, scored with DDIM-50 samples."""
    import torch

    from ..diffusion.train import CHECKPOINT, DigitsUNetConfig, config_dict, train_digits_unet

    threads = torch.get_num_threads()
    # One thread: small convolutions gain little from a second one, and on a shared 2-core machine
    # two threads that wait for each other can be many times slower.
    torch.set_num_threads(1)
    try:
        model, schedule, hist = train_digits_unet(steps=3000, batch_size=128, lr=2e-3, seed=0)
        metrics = measure_digits_unet(model, schedule, "test")
    finally:
        torch.set_num_threads(threads)
    _enforce(CHECKPOINT, metrics)
    save(CHECKPOINT, model.state_dict(), config_dict(DigitsUNetConfig()),
         f"python -m mmcourse.weights.build {CHECKPOINT}", {"final_loss": hist.final(100), **metrics},
         targets=TARGETS[CHECKPOINT])


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

    model, _ = train_digits_vit(steps=2000, seed=0)
    metrics = measure_digits_accuracy(model, "test")
    _enforce("vit_digits", metrics)
    save("vit_digits", model.state_dict(), model.cfg.to_dict(), "python -m mmcourse.weights.build vit_digits", metrics,
         targets=TARGETS["vit_digits"])


def _build_vit_shapes(name: str, random_colour_fraction: float) -> None:
    from ..vit.tasks import train_shapes_vit

    model, _ = train_shapes_vit(steps=3000, n_train=60_000, random_colour_fraction=random_colour_fraction, seed=0)
    metrics = measure_shapes_vit(model, "test")
    _enforce(name, metrics)
    save(name, model.state_dict(), model.cfg.to_dict(), f"python -m mmcourse.weights.build {name}",
         {**metrics, "random_colour_fraction": random_colour_fraction}, targets=TARGETS[name])


def build_vit_shapes() -> None:
    """Shape classifier trained on the six named colours only (24 of 30 colour-shape pairs)."""
    _build_vit_shapes("vit_shapes", 0.0)


def build_vit_shapes_broad() -> None:
    """The same with half of the training scenes painted in random colours."""
    _build_vit_shapes("vit_shapes_broad", 0.5)


# name -> builder for the foundation's checkpoints. Later topics keep theirs beside their code:
# a module ``mmcourse/<topic>/checkpoints.py`` with a ``BUILDERS`` dict of the same shape (and
# EVALUATORS and TARGETS, as here), found by ``all_builders()`` and ``topic_modules()``.
BUILDERS: dict[str, Callable[[], None]] = {
    "digits_classifier": build_digits_classifier,
    "vit_digits": build_vit_digits,
    "vit_shapes": build_vit_shapes,
    "vit_shapes_broad": build_vit_shapes_broad,
    "diffusion_digits_unet": build_diffusion_digits_unet,
    "clip_shapes_named": build_clip_shapes_named,
    "clip_shapes_broad": build_clip_shapes_broad,
}


def topic_modules() -> list:
    """This module, then each ``mmcourse.<topic>.checkpoints`` that defines BUILDERS, in package order."""
    import importlib
    import pkgutil

    import mmcourse

    modules = [sys.modules[__name__]]
    for pkg in sorted(m.name for m in pkgutil.iter_modules(mmcourse.__path__) if m.ispkg):
        if importlib.util.find_spec(f"mmcourse.{pkg}.checkpoints") is not None:
            modules.append(importlib.import_module(f"mmcourse.{pkg}.checkpoints"))
    return modules


def all_builders() -> dict[str, Callable[[], None]]:
    """The foundation's builders, then each topic's ``mmcourse.<topic>.checkpoints.BUILDERS``
    in package order (so ``all`` builds a topic's dependencies, e.g. CLIP, before it)."""
    builders: dict[str, Callable[[], None]] = {}
    for module in topic_modules():
        clash = sorted(set(module.BUILDERS) & set(builders))
        if clash:
            raise RuntimeError(f"{module.__name__} registers names already taken: {clash}")
        builders.update(module.BUILDERS)
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

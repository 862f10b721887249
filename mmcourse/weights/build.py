"""Rebuild the shipped checkpoints: ``python -m mmcourse.weights.build NAME [NAME ...]`` or ``all``.

Each builder trains with the repo's own code, seeded, and records the metric it reached in the
registry next to the sha256 of the file it wrote.
"""

from __future__ import annotations

import argparse
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


# name -> builder; later topics add their checkpoints here.
BUILDERS: dict[str, Callable[[], None]] = {
    "digits_classifier": build_digits_classifier,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="+", help=f"'all' or some of: {', '.join(BUILDERS)}")
    args = p.parse_args(argv)
    names = list(BUILDERS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        p.error(f"unknown checkpoint(s) {unknown}; choose from {list(BUILDERS)} or 'all'")
    for n in names:
        t0 = time.perf_counter()
        BUILDERS[n]()
        print(f"{n}: built in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast does ShapesWorld generate scenes? ``python -m bench.shapes`` prints a markdown table.

Everything runs on one thread (the course machines share their cores). The vectorised generator
draws a whole batch at once; the baseline calls ``sample(1)`` once per scene, which is what a
naive per-item Dataset would do, to show what batching buys.
"""

from __future__ import annotations

import time

import torch

from mmcourse.data.shapes import ShapesWorld


def _best_rate(make, scenes: int, repeats: int = 3) -> tuple[float, float]:
    """Run make() `repeats` times; return (best seconds, scenes per second)."""
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        make(r)
        best = min(best, time.perf_counter() - start)
    return best, scenes / best


def run(scenes: int = 20_000, loop_scenes: int = 300) -> list[dict]:
    """Measure scenes/second for a few cases, print a markdown table and return its rows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = ShapesWorld()
        triple = ShapesWorld(min_objects=3, max_objects=3)
        single.sample(64)  # warm up (first calls allocate memory)
        cases = [
            ("vectorised, 1 object, 32x32", scenes, lambda r: single.sample(scenes, seed=r)),
            ("vectorised, 3 objects, 32x32", scenes, lambda r: triple.sample(scenes, seed=r)),
            ("per-scene loop, 1 object, 32x32", loop_scenes,
             lambda r: [single.sample(1, seed=r * loop_scenes + i) for i in range(loop_scenes)]),
        ]
        rows = []
        for name, n, make in cases:
            seconds, rate = _best_rate(make, n)
            rows.append({"case": name, "scenes": n, "seconds": round(seconds, 4),
                         "scenes_per_s": round(rate)})
    finally:
        torch.set_num_threads(threads)
    print("| case (one thread) | scenes | best of 3 (s) | scenes/s |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['scenes']} | {row['seconds']:.3f} | {row['scenes_per_s']:,} |")
    return rows


if __name__ == "__main__":
    run()

"""GLIP measurements: positives per object at strides 4 and 8 (why the feature map has stride 4),
and the shipped checkpoints' measurements recomputed (fusion on and off).

``python -m bench glip`` writes bench/results/glip_stride.json and glip_checkpoints.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def run() -> None:
    from mmcourse.glip.tasks import CHECKPOINTS, load_glip, measure, positives_per_object

    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    stride = [positives_per_object(s, n=500, seed=0) for s in (4, 8)]
    for r in stride:
        print(f"stride {r['stride']}: {r['mean']:.2f} positives per object, min {r['min']}, "
              f"{r['share_le2']:.1%} of objects with <= 2")
    (RESULTS / "glip_stride.json").write_text(json.dumps(stride, indent=1) + "\n")
    rows = {}
    for name in CHECKPOINTS:
        t = time.perf_counter()
        rows[name] = {k: round(v, 4) for k, v in measure(load_glip(name)).items()}
        print(name, rows[name], f"({time.perf_counter() - t:.0f} s)")
    (RESULTS / "glip_checkpoints.json").write_text(json.dumps(rows, indent=1) + "\n")

"""GLIP measurements (``python -m bench glip``; part of ``make bench``). Notebook 07 shows them.

1. ``stride``: positives per object at strides 4 and 8 (why the feature map has stride 4).
2. ``checkpoints``: every shipped checkpoint measured on the protocol's test draws
   (``EVALUATORS[name]("test")``; the same numbers as the registry).
3. ``ablation``: the argument of GLIP's paper that grounding data teach what detection data do not:
   the shipped recipe (phrases text side, fusion on, seed 0) trained on shape-name prompts only,
   and on shape names plus grounding captions, both measured on the test draws, attribute prompts
   included (neither arm ever saw an attribute phrase list).
4. ``alignment``: the phrases text side with GLIP's alignment instead of OWL-ViT's: the pooled
   phrase embeddings projected by a learned layer and updated by fusion before they meet the
   regions (the shipped model aligns the regions with the frozen embeddings as they come).
5. ``projection``: one factor of ``alignment`` alone: the phrase embeddings projected by the
   learned layer but not updated by fusion (the text side as the shipped model has it).
6. ``soft_token``: the shipped recipe (seed 0) with the soft-token loss's weight at 0, focal loss
   alone on the words (why the course adds MDETR's soft-token loss; notebook section 2).
7. ``fusion_seeds`` (not in the default set: six training runs, about 20 CPU-minutes): fusion on
   and off at seeds 0, 1, 2 with the random token tower (notebook section 5's comparison), mean
   and standard error over seeds. Seed by seed, stored after each run; ``GLIP_BENCH_RESUME=1``
   keeps the runs already stored and trains the rest.

Each run trains on one thread (about 150 CPU-seconds); the CPU seconds are stored with the
results. Choose parts with ``GLIP_BENCH=ablation,checkpoints python -m bench glip``.
Results: bench/results/glip_*.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
DEFAULT = ("stride", "checkpoints", "ablation", "alignment", "projection", "soft_token")
ABLATION_ARMS = {"names": ("names",), "names+captions": ("names", "captions")}
FUSION_SEEDS = (0, 1, 2)


def _rows(metrics: dict) -> dict:
    return {k: v.to_dict() for k, v in metrics.items()}


def _save(name: str, data) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"glip_{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def _arm(**kwargs) -> dict:
    from mmcourse.glip.checkpoints import train_variant
    from mmcourse.glip.evaluate import measure

    cpu = time.process_time()
    model, hist = train_variant(progress=False, **kwargs)
    train_cpu = time.process_time() - cpu
    return {"train_cpu_s": round(train_cpu, 1), "final_loss": round(hist.final(100), 4),
            "metrics": _rows(measure(model.eval(), "test"))}


def stride() -> None:
    from mmcourse.glip.evaluate import positives_per_object

    rows = [positives_per_object(s, n=500, seed=0) for s in (4, 8)]
    for r in rows:
        print(f"stride {r['stride']}: {r['mean']:.2f} positives per object, min {r['min']}, "
              f"{r['share_le2']:.1%} of objects with <= 2")
    _save("stride", rows)


def checkpoints() -> None:
    from mmcourse.glip.checkpoints import EVALUATORS

    rows = {}
    for name, evaluate in EVALUATORS.items():
        rows[name] = _rows(evaluate("test"))
        print(name, {k: v["value"] for k, v in rows[name].items()})
    _save("checkpoints", rows)


def ablation() -> None:
    from mmcourse.glip.checkpoints import RECIPE

    out = {"recipe": {**RECIPE, "text": "phrases", "fusion": True, "seed": 0}, "arms": {}}
    for arm, kinds in ABLATION_ARMS.items():
        out["arms"][arm] = _arm(kinds=kinds, desc=arm)
        print(arm, {k: v["value"] for k, v in out["arms"][arm]["metrics"].items()}, flush=True)
        _save("ablation", out)  # after each arm: a long run that stops keeps what it measured


def alignment() -> None:
    from mmcourse.glip.checkpoints import RECIPE

    out = {"recipe": {**RECIPE, "text": "phrases", "fusion": True, "seed": 0, "align_to_text": False}}
    out.update(_arm(align_to_text=False, desc="projected and fused phrases"))
    print("projected and fused phrases", {k: v["value"] for k, v in out["metrics"].items()}, flush=True)
    _save("alignment", out)


def projection() -> None:
    from mmcourse.glip.checkpoints import RECIPE

    out = {"recipe": {**RECIPE, "text": "phrases", "fusion": True, "seed": 0, "align_to_text": True,
                      "project_text": True}}
    out.update(_arm(project_text=True, desc="projected phrases"))
    print("projected phrases", {k: v["value"] for k, v in out["metrics"].items()}, flush=True)
    _save("projection", out)


def soft_token() -> None:
    from mmcourse.glip.checkpoints import RECIPE

    out = {"recipe": {**RECIPE, "text": "phrases", "fusion": True, "seed": 0, "soft_token_weight": 0.0}}
    out.update(_arm(soft_token_weight=0.0, desc="focal loss alone"))
    print("focal loss alone (soft-token weight 0)", {k: v["value"] for k, v in out["metrics"].items()}, flush=True)
    _save("soft_token", out)


def fusion_seeds() -> None:
    from mmcourse.protocol import mean

    out = {"runs": {}}
    stored = RESULTS / "glip_fusion_seeds.json"
    if os.environ.get("GLIP_BENCH_RESUME") == "1" and stored.exists():  # keep the runs a stopped run stored
        out["runs"] = json.loads(stored.read_text())["runs"]
    for seed in FUSION_SEEDS:  # seed by seed, so a run that stops keeps complete on/off pairs
        for fusion in (True, False):
            key = f"fusion={'on' if fusion else 'off'} seed={seed}"
            if key in out["runs"]:
                continue
            out["runs"][key] = _arm(fusion=fusion, text="tokens", seed=seed, desc=key)
            print(key, {k: v["value"] for k, v in out["runs"][key]["metrics"].items()}, flush=True)
            done = [s for s in FUSION_SEEDS if all(f"fusion={a} seed={s}" in out["runs"] for a in ("on", "off"))]
            if len(done) >= 2:  # mean and standard error over the complete seeds
                out["over_seeds"] = {arm: {m: mean([out["runs"][f"fusion={arm} seed={s}"]["metrics"][m]["value"]
                                                    for s in done]).to_dict()
                                           for m in out["runs"][key]["metrics"]} for arm in ("on", "off")}
            _save("fusion_seeds", out)


PARTS = {"stride": stride, "checkpoints": checkpoints, "ablation": ablation, "alignment": alignment,
         "projection": projection, "soft_token": soft_token, "fusion_seeds": fusion_seeds}


def run() -> None:
    chosen = [p for p in os.environ.get("GLIP_BENCH", ",".join(DEFAULT)).split(",") if p]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise ValueError(f"GLIP_BENCH must name parts among {sorted(PARTS)}, got {unknown}")
    torch.set_num_threads(1)
    for part in chosen:
        t = time.process_time()
        PARTS[part]()
        print(f"({part}: {time.process_time() - t:.0f} CPU s)", flush=True)

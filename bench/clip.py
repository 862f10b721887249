"""The claims about CLIP, measured: ``python -m bench.clip [part ...]`` (part of ``make bench``).

Seven sweeps, each a fresh ShapesWorld CLIP per row, trained by :func:`mmcourse.clip.tasks.train_clip`:

(a) Too few negatives. The checkpoints' captions, batch sizes 4 to 256, every run sees the same
    number of image-caption pairs (so a batch of 4 takes 64x more steps than a batch of 256).
    Reported: zero-shot accuracy over the 30 colour x shape classes and image->text recall@1
    (attribute level) on 1,000 test captions.
(a2) Only the negatives. Batches of 256 and 512 steps for every run, but the loss is computed
    within groups of 4, 16, 64 or 256 pairs: the data, the steps and the gradient count are
    identical, only the number of negatives per pair (group - 1) differs.

(b) Negatives that are not negative. The few-class data set ("a red circle": 24 distinct
    captions), where a batch holds many copies of each caption. Reported per batch size: the
    share of in-batch "negatives" that are copies of the positive, the mean number per image,
    the fraction of images with at least one, the floor those copies put under the loss, and the
    final loss and zero-shot accuracy of 512 steps trained with and without masking them
    (three seeds each).

(c) Captions with missing details. The checkpoint recipe's captions leave out the size and the
    position with probability 0.4 each (``drop``). One run with complete captions only and one
    with ``drop=0.4``, same steps: zero-shot accuracy and retrieval recall of each.

(d) Breadth. The checkpoints' recipe (2,000 steps of 256) on named colours only and on broad
    colour variety, three more seeds each: one run's held-out accuracy varies a lot.

(e) Gradient clipping. Notebook 04's live recipe (200 steps of 128) with the gradient norm
    clipped to 0.1 and without clipping: the unclipped run sits on the ln B plateau. The loss
    of every step is stored so that the notebook can draw both curves.
(f) Too few negatives at the live recipe. The same 200 steps of 128 (clipped), with the loss
    within groups of 4: 3 negatives per pair against the 127 of (e)'s clipped run, same data and
    steps. Notebook 04's live run is shorter than this recipe and shows these two stored runs.

Results go to bench/results/clip_batch_sweep.json (shown by notebook 04) and a markdown table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from mmcourse.clip.tasks import CHECKPOINT_RECIPE, GRAD_CLIP, duplicate_shares, retrieval_recall, train_clip, zero_shot_accuracy

RESULTS = Path(__file__).parent / "results" / "clip_batch_sweep.json"

SWEEP_BATCHES = (4, 8, 16, 32, 64, 128, 256)
SWEEP_PAIRS = 65_536          # pairs seen by every run of sweep (a): 256 steps at 256 ... 16,384 at 4
DUP_BATCHES = (4, 16, 64, 256)
DUP_STEPS = 512               # steps of every run of sweep (b): the question is what duplicates do at a batch size
DUP_SEEDS = (0, 1, 2)
LR = 1e-3
DROP = 0.4                    # captions leave out size / position with this probability (the checkpoints' recipe)
GROUPS = (4, 16, 64, 256)     # sweep (a2): negatives per pair = group - 1, in batches of GROUP_BATCH
GROUP_BATCH, GROUP_STEPS = 256, 512
DETAIL_RUN = dict(steps=600, batch_size=256)  # sweep (c)
BREADTH_SEEDS = (1, 2, 3)     # sweep (d): the shipped checkpoints are seed 0
LIVE_RUN = dict(steps=200, batch_size=128, seed=0)  # sweeps (e), (f): the recipe of notebook 04's live run, at full length
LIVE_GROUP = 4                # sweep (f): the loss within groups of 4, so 3 negatives per pair


def sweep_negatives(batches=SWEEP_BATCHES, pairs: int = SWEEP_PAIRS, seed: int = 0) -> list[dict]:
    """Sweep (a): accuracy against batch size at an equal number of pairs seen."""
    rows = []
    for B in batches:
        t0 = time.perf_counter()
        model, hist = train_clip("named", steps=pairs // B, batch_size=B, lr=LR, seed=seed, drop=DROP, progress=False)
        zs = zero_shot_accuracy(model)
        rr = retrieval_recall(model)
        rows.append({"batch_size": B, "steps": pairs // B, "pairs": pairs, "zero_shot_seen": zs["seen"],
                     "zero_shot_heldout": zs["heldout"], "i2t_attribute_r1": rr["i2t_attribute_r1"],
                     "final_loss": hist.final(), "seconds": time.perf_counter() - t0})
        print(f"  (a) batch {B}: {rows[-1]}", flush=True)
    return rows


def sweep_groups(groups=GROUPS, seed: int = 0) -> list[dict]:
    """Sweep (a2): the same batches of 256 and the same steps, but the loss sees only group - 1
    negatives per pair (computed within groups). Only the number of negatives changes."""
    rows = []
    for k in groups:
        t0 = time.perf_counter()
        model, hist = train_clip("named", steps=GROUP_STEPS, batch_size=GROUP_BATCH, lr=LR, seed=seed, drop=DROP,
                                 negatives_group=k, progress=False)
        zs = zero_shot_accuracy(model)
        rr = retrieval_recall(model)
        rows.append({"group": k, "negatives": k - 1, "batch_size": GROUP_BATCH, "steps": GROUP_STEPS,
                     "zero_shot_seen": zs["seen"], "zero_shot_heldout": zs["heldout"],
                     "i2t_attribute_r1": rr["i2t_attribute_r1"], "seconds": time.perf_counter() - t0})
        print(f"  (a2) group {k}: {rows[-1]}", flush=True)
    return rows


def sweep_duplicates(batches=DUP_BATCHES, steps: int = DUP_STEPS, seeds=DUP_SEEDS) -> list[dict]:
    """Sweep (b): false-negative shares and the effect of masking them, few-class data.

    Each setting is trained with several seeds: the differences are a few points, and one run
    cannot tell them from noise. Values are means over seeds; ``*_runs`` keeps each run's.
    """
    rows = []
    for B in batches:
        row = {"batch_size": B, "steps": steps, "seeds": list(seeds),
               **{f"dup_{k}": v for k, v in duplicate_shares(B).items()}}
        for mask in (False, True):
            t0 = time.perf_counter()
            runs = []
            for seed in seeds:
                model, hist = train_clip("classes", steps=steps, batch_size=B, lr=LR, seed=seed,
                                         mask_duplicates=mask, progress=False)
                runs.append((zero_shot_accuracy(model, templates="bare")["seen"], hist.final()))
            tag = "masked" if mask else "plain"
            row.update({f"{tag}_seen": sum(r[0] for r in runs) / len(runs), f"{tag}_seen_runs": [r[0] for r in runs],
                        f"{tag}_final_loss": sum(r[1] for r in runs) / len(runs),
                        f"{tag}_seconds": time.perf_counter() - t0})
        rows.append(row)
        print(f"  (b) batch {B}: {row}", flush=True)
    return rows


def sweep_detail(seed: int = 0) -> list[dict]:
    """Sweep (c): complete captions against captions that sometimes leave out size and position."""
    rows = []
    for drop in (0.0, 0.4):
        t0 = time.perf_counter()
        model, hist = train_clip("named", lr=LR, seed=seed, drop=drop, progress=False, **DETAIL_RUN)
        zs = {kind: zero_shot_accuracy(model, kind)["seen"] for kind in ("bare", "ensemble")}
        rr = retrieval_recall(model)
        rows.append({"drop": drop, **DETAIL_RUN, "zero_shot_seen_bare": zs["bare"],
                     "zero_shot_seen_ensemble": zs["ensemble"], "i2t_attribute_r1": rr["i2t_attribute_r1"],
                     "final_loss": hist.final(), "seconds": time.perf_counter() - t0})
        print(f"  (c) drop {drop}: {rows[-1]}", flush=True)
    return rows


def table(result: dict) -> str:
    """The two markdown tables of a stored result."""
    out = ["(a) equal pairs seen "
           f"({result['negatives'][0]['pairs']:,} each)", "",
           "| batch | steps | zero-shot seen | zero-shot held-out | image→text R@1 (attributes) | final loss |",
           "|---:|---:|---:|---:|---:|---:|"]
    for r in result["negatives"]:
        out.append(f"| {r['batch_size']} | {r['steps']} | {r['zero_shot_seen']:.1%} | {r['zero_shot_heldout']:.1%} | "
                   f"{r['i2t_attribute_r1']:.1%} | {r['final_loss']:.2f} |")
    out += ["", f"(a2) batches of {GROUP_BATCH}, {GROUP_STEPS} steps, loss within groups", "",
            "| group | negatives per pair | zero-shot seen | zero-shot held-out | image→text R@1 (attributes) |",
            "|---:|---:|---:|---:|---:|"]
    for r in result["groups"]:
        out.append(f"| {r['group']} | {r['negatives']} | {r['zero_shot_seen']:.1%} | {r['zero_shot_heldout']:.1%} | "
                   f"{r['i2t_attribute_r1']:.1%} |")
    out += ["", f"(b) few-class captions (24 distinct), {result['duplicates'][0]['steps']} steps per run, "
            f"mean of {len(result['duplicates'][0]['seeds'])} seeds", "",
            "| batch | share of negatives that are duplicates | duplicates per image | images with ≥1 | "
            "floor of the unmasked loss | final loss, plain | masked | zero-shot seen, plain | masked |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["duplicates"]:
        out.append(f"| {r['batch_size']} | {r['dup_share']:.1%} | {r['dup_per_row']:.2f} | {r['dup_rows_hit']:.0%} | "
                   f"{r['dup_loss_floor']:.2f} | {r['plain_final_loss']:.2f} | {r['masked_final_loss']:.2f} | "
                   f"{r['plain_seen']:.1%} | {r['masked_seen']:.1%} |")
    out += ["", f"(c) caption detail, {result['detail'][0]['steps']} steps of {result['detail'][0]['batch_size']}", "",
            "| captions | zero-shot seen, prompt '{}' | zero-shot seen, 49-prompt ensemble | image→text R@1 (attributes) |",
            "|---|---:|---:|---:|"]
    for r in result["detail"]:
        what = "complete" if r["drop"] == 0 else f"size / position left out with p = {r['drop']}"
        out.append(f"| {what} | {r['zero_shot_seen_bare']:.1%} | {r['zero_shot_seen_ensemble']:.1%} | "
                   f"{r['i2t_attribute_r1']:.1%} |")
    if "breadth" in result:
        out += ["", "(d) breadth: the checkpoint recipe, one row per seed", "",
                "| training data | seed | zero-shot seen | zero-shot held-out |", "|---|---:|---:|---:|"]
        for r in result["breadth"]:
            out.append(f"| {r['data']} | {r['seed']} | {r['zero_shot_seen']:.1%} | {r['zero_shot_heldout']:.1%} |")
    return "\n".join(out)


def sweep_breadth(seeds=BREADTH_SEEDS) -> list[dict]:
    """Sweep (d): the checkpoints' recipe, named colours only against broad colour variety, several
    seeds each: the held-out accuracy of one run depends a lot on the run."""
    rows = []
    for data in ("named", "broad"):
        for seed in seeds:
            t0 = time.perf_counter()
            recipe = {**CHECKPOINT_RECIPE, "seed": seed}
            model, hist = train_clip(data, progress=False, **recipe)
            zs = zero_shot_accuracy(model)
            rows.append({"data": data, "seed": seed, "steps": recipe["steps"], "batch_size": recipe["batch_size"],
                         "zero_shot_seen": zs["seen"], "zero_shot_heldout": zs["heldout"],
                         "seconds": time.perf_counter() - t0})
            print(f"  (d) {data} seed {seed}: {rows[-1]}", flush=True)
    return rows


def sweep_grad_clip(clips=(GRAD_CLIP, None)) -> list[dict]:
    """Sweep (e): the live recipe of notebook 04 with and without clipping the gradient norm."""
    rows = []
    for clip in clips:
        t0 = time.perf_counter()
        model, hist = train_clip("named", lr=LR, drop=DROP, grad_clip=clip, progress=False, **LIVE_RUN)
        zs = zero_shot_accuracy(model)
        rr = retrieval_recall(model)
        rows.append({"grad_clip": clip, **LIVE_RUN, "zero_shot_seen": zs["seen"], "zero_shot_heldout": zs["heldout"],
                     "i2t_attribute_r1": rr["i2t_attribute_r1"], "final_loss": hist.final(20),
                     "loss": [round(float(v), 4) for v in hist.loss], "seconds": time.perf_counter() - t0,
                     "threads": torch.get_num_threads()})
        print(f"  (e) grad_clip {clip}: final loss {rows[-1]['final_loss']:.2f}, zero-shot {zs['seen']:.1%}", flush=True)
    return rows


def sweep_few_negatives(group: int = LIVE_GROUP) -> list[dict]:
    """Sweep (f): the clipped run of sweep (e) again, with the loss computed within groups of
    ``group`` pairs: ``group - 1`` negatives per pair instead of 127, same data and steps."""
    t0 = time.perf_counter()
    model, hist = train_clip("named", lr=LR, drop=DROP, negatives_group=group, progress=False, **LIVE_RUN)
    zs = zero_shot_accuracy(model)
    rr = retrieval_recall(model)
    row = {"group": group, "negatives": group - 1, "grad_clip": GRAD_CLIP, **LIVE_RUN, "zero_shot_seen": zs["seen"],
           "zero_shot_heldout": zs["heldout"], "i2t_attribute_r1": rr["i2t_attribute_r1"], "final_loss": hist.final(20),
           "seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    print(f"  (f) {group - 1} negatives per pair: final loss {row['final_loss']:.2f}, zero-shot {zs['seen']:.1%}, "
          f"recall@1 {rr['i2t_attribute_r1']:.1%}", flush=True)
    return [row]


SWEEPS = {"negatives": sweep_negatives, "groups": sweep_groups, "duplicates": sweep_duplicates, "detail": sweep_detail,
          "breadth": sweep_breadth, "grad_clip": sweep_grad_clip, "few_negatives": sweep_few_negatives}


def run(parts: tuple[str, ...] = tuple(SWEEPS), store: bool = True) -> dict:
    """Run the sweeps named in ``parts`` (all seven: about an hour on two busy cores), print
    the tables and store the JSON after each sweep (merged into the stored results)."""
    unknown = [p for p in parts if p not in SWEEPS]
    if unknown:
        raise ValueError(f"parts must be among {list(SWEEPS)}, got {unknown}")
    result = json.loads(RESULTS.read_text()) if store and RESULTS.exists() else {}
    result.update({"threads": torch.get_num_threads(), "lr": LR})
    for part in parts:
        t0 = time.perf_counter()
        result[part] = SWEEPS[part]()
        result.setdefault("seconds", {})[part] = round(time.perf_counter() - t0)
        if store:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    if all(p in result for p in SWEEPS):
        print(table(result))
    return result


if __name__ == "__main__":
    import sys

    run(tuple(sys.argv[1:]) or tuple(SWEEPS))

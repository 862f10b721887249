"""GLIP's measurements: detection AP with the shape-name prompt, attribute prompts on seen and
held-out colour-shape pairs, caption grounding, and the positives per object behind the stride.

:func:`measure` follows the evaluation protocol (:mod:`mmcourse.protocol`): a part's five seeds,
one draw of scenes at each, every number an :class:`~mmcourse.protocol.Estimate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.shapes import COLOUR_NAMES, SHAPES, SceneBatch
from ..boxes import box_iou
from ..evaluate import detection_ap
from ..protocol import SEEDS_PER_PART, Estimate, mean, proportion, seeds
from .data import NAMES_PROMPT, attribute_scenes, glip_world
from .model import GLIP
from .predict import predict_batch
from .targets import assign_locations

SCENES_PER_SEED = 100  # 5 seeds: 500 scenes per measurement


def _targets(scenes: SceneBatch, labels: torch.Tensor, keep: torch.Tensor) -> list[dict]:
    return [{"boxes": scenes.boxes[i][keep[i]], "labels": labels[i][keep[i]]} for i in range(len(scenes))]


def _predict_all(model: GLIP, scenes: SceneBatch, prompts: list[str], chunk: int = 100) -> list[dict]:
    out = []
    for s in range(0, len(scenes), chunk):
        out += predict_batch(model, scenes.images[s : s + chunk], prompts[s : s + chunk])
    return out


def evaluate_names(model: GLIP, scenes: SceneBatch) -> dict:
    """COCO AP / AP50 with the shape-name prompt "circle. square. triangle. diamond. cross."."""
    dets = _predict_all(model, scenes, [NAMES_PROMPT] * len(scenes))
    return detection_ap(dets, _targets(scenes, scenes.shape, scenes.valid))


def evaluate_attributes(model: GLIP, scenes: SceneBatch, template: str = "{colour} {shape}.") -> dict:
    """AP50 / AP of one-phrase prompts naming the colour of object 0 ("red circle."): only the objects
    of that colour and shape are targets. The label is the (colour, shape) pair, so AP averages
    over the pairs."""
    prompts, labels, keep = [], torch.full_like(scenes.shape, -1), torch.zeros_like(scenes.valid)
    for i in range(len(scenes)):
        c, s = int(scenes.colour[i, 0]), int(scenes.shape[i, 0])
        prompts.append(template.format(colour=COLOUR_NAMES[c], shape=SHAPES[s]))
        keep[i] = scenes.valid[i] & (scenes.colour[i] == c) & (scenes.shape[i] == s)
        labels[i] = c * len(SHAPES) + s
    dets = _predict_all(model, scenes, prompts)
    for i, d in enumerate(dets):  # one phrase per prompt: label it with its pair
        d["labels"] = torch.full_like(d["labels"], int(labels[i, 0]))
    return detection_ap(dets, _targets(scenes, labels, keep))


def attribute_chance_ap(scenes: SceneBatch, seed: int = 0) -> dict:
    """AP50 / AP of the attribute test (``evaluate_attributes``) for a scorer that knows every box
    exactly but ranks the objects at random: each valid object is returned with its true box and a
    uniform random score. It is the chance level a detector's attribute AP must beat."""
    g = torch.Generator().manual_seed(seed)
    dets, labels, keep = [], torch.full_like(scenes.shape, -1), torch.zeros_like(scenes.valid)
    for i in range(len(scenes)):
        c, s, v = int(scenes.colour[i, 0]), int(scenes.shape[i, 0]), scenes.valid[i]
        keep[i] = v & (scenes.colour[i] == c) & (scenes.shape[i] == s)
        labels[i] = c * len(SHAPES) + s
        n = int(v.sum())
        dets.append({"boxes": scenes.boxes[i][v], "scores": torch.rand(n, generator=g),
                     "labels": torch.full((n,), c * len(SHAPES) + s)})
    return detection_ap(dets, _targets(scenes, labels, keep))


def attribute_chance(split: str, part: str = "test", n: int = SCENES_PER_SEED, k: int = SEEDS_PER_PART) -> Estimate:
    """The chance AP50 of the attribute test on ``part``'s draws (``split`` "test": seen pairs,
    "heldout": held-out pairs), over the same scenes ``measure`` uses, with its standard error."""
    if split not in ("test", "heldout"):
        raise ValueError(f"split must be 'test' (seen pairs) or 'heldout', got {split!r}")
    return mean([attribute_chance_ap(attribute_scenes(n, seed=s, split=split), seed=s)["AP50"]
                 for s in seeds("glip", part, k)])


def precision_recall(detections: list[dict], targets: list[dict], label: int, iou_threshold: float = 0.5
                     ) -> dict[str, np.ndarray]:
    """The precision-recall curve of one class, the curve whose area AP is.

    Detections of class ``label`` from all images are ranked by score; walking down the ranking,
    a detection is a true positive when it takes a not yet claimed ground-truth box of its image
    with IoU >= ``iou_threshold`` (the same greedy matching as :func:`mmcourse.evaluate.detection_ap`).
    Returns "scores", "recall", "precision" (one entry per detection, in rank order) and
    "envelope" (the best precision at this or any higher recall, which COCO's AP reads at 101
    recall points).
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    scores, tp, n_gt = [], [], 0
    for det, tgt in zip(detections, targets, strict=True):
        keep = det["labels"] == label
        order = det["scores"][keep].argsort(descending=True, stable=True)
        boxes, sc = det["boxes"][keep][order], det["scores"][keep][order]
        gt = tgt["boxes"][tgt["labels"] == label]
        n_gt += len(gt)
        iou = box_iou(boxes, gt) if len(boxes) and len(gt) else torch.zeros(len(boxes), len(gt))
        taken = torch.zeros(len(gt), dtype=torch.bool)
        for k in range(len(boxes)):
            free = iou[k].masked_fill(taken, -1)
            j = int(free.argmax()) if len(gt) else -1
            hit = j >= 0 and bool(free[j] >= min(iou_threshold, 1 - 1e-10))
            if hit:
                taken[j] = True
            tp.append(hit)
        scores.append(sc)
    s = torch.cat(scores).double().numpy() if scores else np.zeros(0)
    order = np.argsort(-s, kind="mergesort")
    hits = np.asarray(tp, dtype=bool)[order]
    tps, fps = np.cumsum(hits), np.cumsum(~hits)
    recall = tps / max(n_gt, 1)
    precision = tps / np.maximum(tps + fps, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return {"scores": s[order], "recall": recall, "precision": precision, "envelope": envelope}


@torch.no_grad()
def attribute_object_scores(model: GLIP, scenes: SceneBatch, template: str = "{colour} {shape}.") -> dict[str, torch.Tensor]:
    """The score of each scene's one-phrase prompt (object 0's colour and shape, as in
    :func:`evaluate_attributes`) on every object: the best sqrt(mean token probability x centerness)
    over the locations that centre sampling gives the object. Returns "target" (scores on objects of
    the named colour and shape) and "distractor" (same shape, another colour), both 1-d."""
    from .predict import phrase_scores
    from .targets import positive_map
    from .text import prompt_units

    prompts = [template.format(colour=COLOUR_NAMES[int(c)], shape=SHAPES[int(s)])
               for c, s in zip(scenes.colour[:, 0], scenes.shape[:, 0])]
    tokens = model.tokenizer(prompts)
    tokens = tokens[:, : int((tokens != model.tokenizer.pad_token_id).sum(1).max())]
    maps = torch.stack([positive_map(p, [(0, len(p.rstrip(".")))], tokens.shape[1]) for p in prompts])  # (B, 1, M)
    out = model.eval()(scenes.images, tokens, prompt_units(model.tokenizer, prompts, tokens.shape[1]))
    score = (phrase_scores(out["logits"], maps)[..., 0] * out["centerness"].sigmoid()).sqrt()        # (B, N)
    assigned = assign_locations(model.points, scenes.boxes, scenes.valid, model.stride)              # (B, N)
    target, distractor = [], []
    for i in range(len(prompts)):
        for k in range(int(scenes.valid[i].sum())):
            best = float(score[i][assigned[i] == k].max())
            same = scenes.colour[i, k] == scenes.colour[i, 0] and scenes.shape[i, k] == scenes.shape[i, 0]
            (target if same else distractor).append(best)
    return {"target": torch.tensor(target), "distractor": torch.tensor(distractor)}


def attribute_word_probabilities(model: GLIP, scenes: SceneBatch) -> dict[str, torch.Tensor]:
    """The alignment probability of the colour word and of the shape word of each scene's one-phrase
    prompt ("red circle.", object 0's pair) on every object, read at the object's most central
    location (highest predicted centerness among those centre sampling gives it). Returns "target"
    and "distractor" (same shape, another colour), each (n, 2): columns colour word, shape word."""
    from .predict import phrase_scores
    from .targets import positive_map
    from .text import prompt_units

    words = [(COLOUR_NAMES[int(c)], SHAPES[int(s)]) for c, s in zip(scenes.colour[:, 0], scenes.shape[:, 0])]
    prompts = [f"{c} {s}." for c, s in words]
    tokens = model.tokenizer(prompts)
    tokens = tokens[:, : int((tokens != model.tokenizer.pad_token_id).sum(1).max())]
    maps = torch.stack([positive_map(p, [(0, len(c)), (len(c) + 1, len(c) + 1 + len(s))], tokens.shape[1])
                        for p, (c, s) in zip(prompts, words)])                                        # (B, 2, M)
    with torch.no_grad():
        out = model.eval()(scenes.images, tokens, prompt_units(model.tokenizer, prompts, tokens.shape[1]))
    probs = phrase_scores(out["logits"], maps)                                                        # (B, N, 2)
    centre = out["centerness"].sigmoid()                                                              # (B, N)
    assigned = assign_locations(model.points, scenes.boxes, scenes.valid, model.stride)              # (B, N)
    target, distractor = [], []
    for i in range(len(prompts)):
        for k in range(int(scenes.valid[i].sum())):
            j = int(centre[i].masked_fill(assigned[i] != k, -1.0).argmax())
            same = scenes.colour[i, k] == scenes.colour[i, 0] and scenes.shape[i, k] == scenes.shape[i, 0]
            (target if same else distractor).append(probs[i, j])
    return {"target": torch.stack(target), "distractor": torch.stack(distractor)}


def caption_hits(model: GLIP, scenes: SceneBatch) -> torch.Tensor:
    """(phrases,) bool, one per object of every caption: does the top-scoring box of its phrase
    have IoU >= 0.5 with it?"""
    dets = _predict_all(model, scenes, scenes.captions)
    hits = []
    for i, d in enumerate(dets):
        for k in range(int(scenes.valid[i].sum())):
            # phrases are found in caption order, which is the object order
            mine = d["labels"] == k
            if not mine.any():
                hits.append(False)
                continue
            top = d["scores"].masked_fill(~mine, -1).argmax()
            hits.append(float(box_iou(d["boxes"][top][None], scenes.boxes[i, k][None])[0, 0]) >= 0.5)
    return torch.tensor(hits, dtype=torch.bool)


def caption_grounding_accuracy(model: GLIP, scenes: SceneBatch) -> float:
    """Share of caption phrases whose top-scoring box has IoU >= 0.5 with its object."""
    hits = caption_hits(model, scenes)
    return float(hits.float().mean()) if len(hits) else 0.0


def repeated_phrases(scenes: SceneBatch) -> torch.Tensor:
    """(phrases,) bool in :func:`caption_hits`'s order: is the phrase identical to an earlier
    phrase of the same caption ("a large red diamond ... and a large red diamond")?

    Identical phrases embed identically, so a model that ignores the position words around them
    scores them alike at every location and gives them one top box: at most one of them can hit.
    """
    out = []
    for i in range(len(scenes)):
        phrases = scenes.phrases[i][: int(scenes.valid[i].sum())]
        out += [p in phrases[:k] for k, p in enumerate(phrases)]
    return torch.tensor(out, dtype=torch.bool)


def caption_ceiling(part: str = "test", n: int = SCENES_PER_SEED, k: int = SEEDS_PER_PART) -> dict:
    """The highest caption grounding accuracy a model blind to position words can reach on the
    draws :func:`measure` grounds: each phrase that repeats an earlier phrase of its caption
    (:func:`repeated_phrases`) is a miss. Returns the phrase count, the repeats, and the ceiling
    1 - repeats / phrases."""
    repeated = torch.cat([repeated_phrases(glip_world().sample(n, seed=s, split="test")) for s in seeds("glip", part, k)])
    return {"phrases": len(repeated), "repeats": int(repeated.sum()), "ceiling": 1 - float(repeated.float().mean())}


def positives_per_object(stride: int, n: int = 500, seed: int = 0) -> dict:
    """How many grid locations centre sampling assigns to each object at a given stride: the
    measurement behind the stride-4 feature map (objects with 0 positives cannot be detected)."""
    from .targets import grid_points

    scenes = glip_world().sample(n, seed=seed, split="test")
    assigned = assign_locations(grid_points(64, stride), scenes.boxes, scenes.valid, stride)
    counts = torch.stack([(assigned == k).sum(1) for k in range(scenes.valid.shape[1])], dim=1)[scenes.valid]
    return {"stride": stride, "mean": float(counts.float().mean()), "min": int(counts.min()),
            "share_without": float((counts == 0).float().mean()), "share_le2": float((counts <= 2).float().mean())}


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def stored_result(name: str) -> dict:
    """A stored GLIP measurement, ``bench/results/glip_<name>.json`` (written by ``python -m bench glip``)."""
    path = RESULTS / f"glip_{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no stored result {name!r}: {path} is missing (run python -m bench glip)")
    return json.loads(path.read_text())


def measure(model: GLIP, part: str = "test", n: int = SCENES_PER_SEED, k: int = SEEDS_PER_PART) -> dict[str, Estimate]:
    """The protocol's measurements of a GLIP on ``part``'s seeds (``"val"``, ``"test"`` or ``"check"``).

    At each of the ``k`` seeds, ``n`` scenes of each kind: shape-name prompt AP / AP50 on ordinary
    test scenes, the same scenes' captions grounded (each phrase's top box at IoU >= 0.5), and
    one-phrase colour-shape prompts on attribute scenes of seen and of held-out pairs. An AP exists
    per draw, so an AP's estimate is the mean over the k draws with its standard error over them;
    caption accuracy pools the phrases of all draws.
    """
    names, seen, held, hits = [], [], [], []
    for s in seeds("glip", part, k):
        scenes = glip_world().sample(n, seed=s, split="test")
        names.append(evaluate_names(model, scenes))
        hits.append(caption_hits(model, scenes))
        seen.append(evaluate_attributes(model, attribute_scenes(n, seed=s, split="test")))
        held.append(evaluate_attributes(model, attribute_scenes(n, seed=s, split="heldout")))
    over = lambda rows, key: mean([r[key] for r in rows])
    return {"names_AP50": over(names, "AP50"), "names_AP": over(names, "AP"),
            "attributes_seen_AP50": over(seen, "AP50"), "attributes_seen_AP": over(seen, "AP"),
            "attributes_heldout_AP50": over(held, "AP50"), "attributes_heldout_AP": over(held, "AP"),
            "caption_accuracy": proportion(torch.cat(hits))}

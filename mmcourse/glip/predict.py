"""Inference: from token logits to boxes with scores, one phrase per box.

For each location, a phrase's probability is the **mean sigmoid over its tokens** (GLIP's
``convert_grounding_to_od_logits``, SCORE_AGG: MEAN), multiplied by the location's centerness
and square-rooted (ATSS / GLIP's post-processing), so a border location of a well recognised
object ranks below its centre. Boxes above ``threshold`` go through class-aware NMS (a phrase
suppresses only its own duplicates) and at most ``max_detections`` are kept.
"""

from __future__ import annotations

import torch

from .model import GLIP
from .nms import batched_nms
from .prompts import parse_prompt
from .targets import positive_map

NMS_IOU = 0.6          # GLIP's NMS threshold
PRE_THRESHOLD = 0.05   # GLIP's pre-NMS score threshold (INFERENCE_TH)
MAX_DETECTIONS = 100


def phrase_scores(logits: torch.Tensor, phrase_tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, M) token logits, (B, P, M) bool phrase token sets -> (B, N, P) mean token probability."""
    w = phrase_tokens.float()
    w = w / w.sum(-1, keepdim=True).clamp(min=1)
    return logits.sigmoid() @ w.transpose(1, 2)


@torch.no_grad()
def predict_batch(model: GLIP, images: torch.Tensor, prompts: list[str], threshold: float = PRE_THRESHOLD,
                  nms_iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS) -> list[dict]:
    """Ground a prompt in each image. Returns one dict per image: "boxes" (n, 4) xyxy pixels,
    "scores" (n,), "labels" (n,) phrase index, "phrases" (the prompt's phrases) and "phrase"
    (the phrase of each box)."""
    if len(prompts) != len(images):
        raise ValueError(f"prompts must have one prompt per image: {len(prompts)} prompts, {len(images)} images")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    parsed = [parse_prompt(p, model.tokenizer) for p in prompts]
    tokens = model.tokenizer(prompts)
    tokens = tokens[:, : int((tokens != model.tokenizer.pad_token_id).sum(1).max())]  # no all-padding columns
    P = max(len(ph) for ph, _ in parsed)
    maps = torch.zeros(len(prompts), P, tokens.shape[1], dtype=torch.bool)
    for i, (prompt, (_, spans)) in enumerate(zip(prompts, parsed)):
        maps[i, : len(spans)] = positive_map(prompt, spans, tokens.shape[1])
    model.eval()
    out = model(images, tokens)
    scores = (phrase_scores(out["logits"], maps) * out["centerness"].sigmoid()[..., None]).sqrt()  # (B, N, P)
    results = []
    for i, (phrases, _) in enumerate(parsed):
        s = scores[i, :, : len(phrases)]                        # (N, P)
        loc, lab = (s > threshold).nonzero(as_tuple=True)
        boxes = out["boxes"][i][loc].clamp(0, model.cfg.img_size)
        sc = s[loc, lab]
        keep = batched_nms(boxes, sc, lab, nms_iou)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": sc[keep], "labels": lab[keep],
                        "phrases": phrases, "phrase": [phrases[j] for j in lab[keep].tolist()]})
    return results


def grounding_predict(model: GLIP, image: torch.Tensor, prompt: str, threshold: float = PRE_THRESHOLD,
                      nms_iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS) -> dict:
    """Ground ``prompt`` in one image (3, S, S): boxes, scores, labels (phrase index), phrases and
    the phrase of each box. ``prompt`` is "circle. square." (one phrase per piece) or a caption."""
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(f"image must be a (3, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}")
    return predict_batch(model, image[None], [prompt], threshold, nms_iou, max_detections)[0]


def top_per_phrase(result: dict) -> dict:
    """The subset of a :func:`grounding_predict` result that keeps each phrase's best box only
    (boxes come sorted by score, so that is each phrase's first box)."""
    first = {}
    for i, k in enumerate(result["labels"].tolist()):
        first.setdefault(k, i)
    idx = torch.tensor(sorted(first.values()), dtype=torch.long)
    return {"boxes": result["boxes"][idx], "scores": result["scores"][idx], "labels": result["labels"][idx],
            "phrases": result["phrases"], "phrase": [result["phrase"][i] for i in idx.tolist()]}

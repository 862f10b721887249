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
from ..boxes import batched_nms
from .prompts import parse_prompt
from .targets import positive_map
from .text import prompt_units

NMS_IOU = 0.6          # GLIP's NMS threshold
PRE_THRESHOLD = 0.05   # GLIP's pre-NMS score threshold (INFERENCE_TH)
MAX_DETECTIONS = 100


def check_images(images: torch.Tensor, size: int, name: str = "images", batched: bool = True) -> None:
    """ValueError naming ``name`` unless it is a float tensor (B, 3, size, size) (or (3, size, size)
    when not ``batched``) of finite values in [0, 1], as ShapesWorld renders them."""
    shape = "(B, 3, {0}, {0})" if batched else "(3, {0}, {0})"
    want = shape.format(size)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a float tensor {want} in [0, 1], got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor {want} in [0, 1], got dtype {images.dtype} "
                         "(divide uint8 pixels by 255)")
    if images.ndim != (4 if batched else 3) or tuple(images.shape[-3:]) != (3, size, size):
        raise ValueError(f"{name} must be {want}, got {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"{name} must hold at least one image, got {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(images.min()):.3g}, {float(images.max()):.3g}]")


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
    check_images(images, model.cfg.img_size)
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompts[{i}] must be a non-empty string such as 'circle. square.', got {p!r}")
    if len(prompts) != len(images):
        raise ValueError(f"prompts must have one prompt per image: {len(prompts)} prompts, {len(images)} images")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    if isinstance(nms_iou, bool) or not isinstance(nms_iou, (int, float)) or not 0 < nms_iou <= 1:
        raise ValueError(f"nms_iou must be a number in (0, 1], got {nms_iou!r}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections must be a positive int, got {max_detections!r}")
    parsed = [parse_prompt(p, model.tokenizer) for p in prompts]
    tokens = model.tokenizer(prompts)
    tokens = tokens[:, : int((tokens != model.tokenizer.pad_token_id).sum(1).max())]  # no all-padding columns
    P = max(len(ph) for ph, _ in parsed)
    maps = torch.zeros(len(prompts), P, tokens.shape[1], dtype=torch.bool)
    for i, (prompt, (_, spans)) in enumerate(zip(prompts, parsed)):
        maps[i, : len(spans)] = positive_map(prompt, spans, tokens.shape[1])
    model.eval()
    out = model(images, tokens, prompt_units(model.tokenizer, prompts, tokens.shape[1]))
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
    check_images(image, model.cfg.img_size, name="image", batched=False)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string such as 'circle. square.', got {prompt!r}")
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

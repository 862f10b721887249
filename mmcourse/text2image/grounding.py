"""Closing the loop with notebooks 06 and 07: GLIP grounds the asked object in a generated
picture, SAM cuts it out from GLIP's box (:func:`ground_and_segment`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ground_and_segment(images: torch.Tensor, phrase: str, glip=None, sam=None) -> dict:
    """Find what ``phrase`` names in each generated picture with notebook 07's GLIP, then cut it
    out with notebook 06's SAM, the GLIP box as SAM's box prompt.

    images: (B, 3, 32, 32) in [0, 1], one object each. Both models were trained on 64 x 64
    ShapesWorld scenes, whose geometry scales with the image size, so GLIP sees each picture
    upsampled 2x and its box is scaled back; SAM resizes the input itself. Returns the box per
    image (B, 4) xyxy in 32-pixel coordinates (NaN where GLIP found nothing), GLIP's score (B,),
    SAM's mask (B, 32, 32) bool, and the IoU of that mask with the judges' object pixels (B,).
    """
    from ..glip.predict import grounding_predict
    from ..glip.checkpoints import load_glip
    from ..sam.losses import mask_iou
    from ..sam.train import load_sam
    from .judges import object_masks

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"phrase must be a non-empty string such as 'yellow cross', got {phrase!r}")
    glip = load_glip() if glip is None else glip
    sam = load_sam() if sam is None else sam
    B, _, H, W = images.shape
    scale = glip.cfg.img_size / H
    big = F.interpolate(images, size=(glip.cfg.img_size, glip.cfg.img_size), mode="bilinear", align_corners=False)
    prompt = phrase.strip().rstrip(".") + "."
    boxes = torch.full((B, 4), float("nan"))
    scores = torch.zeros(B)
    masks = torch.zeros(B, H, W, dtype=torch.bool)
    with torch.no_grad():
        for i in range(B):
            found = grounding_predict(glip, big[i].clamp(0, 1), prompt)
            if len(found["scores"]) == 0:
                continue
            boxes[i] = found["boxes"][0].float() / scale  # boxes come sorted by score
            scores[i] = found["scores"][0]
            sam.set_image(images[i].clamp(0, 1))
            masks[i] = sam.predict(box=boxes[i], multimask_output=False).masks[0]
    truth, _ = object_masks(images.clamp(0, 1))
    return {"boxes": boxes, "scores": scores, "masks": masks, "iou": mask_iou(masks, truth)}

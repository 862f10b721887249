"""The SAM topic's entry point for notebooks and other topics: the names they use, each defined
in the module of its concern (see :mod:`mmcourse.sam`)."""

from .evaluate import EvalSet, TextTable, best_of, click_curve, eval_set, evaluate, per_scene_ious, predict_batch
from .losses import FOCAL_WEIGHT, dice_loss, focal_loss, mask_iou, mask_loss, upsample
from .prompts import (HELDOUT_SHAPE, IMAGE_SIZE, LEVELS, TRAIN_SHAPES, click_from_error, level_masks, mask_box,
                      noisy_boxes, object_crops, phrase, random_points, sample_click, text_targets, world)
from .route import everything, route, stability_score
from .track import RULES, clip_set, interior_point, moving_clip, track
from .train import (CHECKPOINT, CLIP_CHECKPOINT, TEXT_CHECKPOINT, PromptTask, Recipe, attach_clip, load_sam,
                    shapes_sam_config, train_sam)

__all__ = [
    "EvalSet", "TextTable", "best_of", "click_curve", "eval_set", "evaluate", "per_scene_ious", "predict_batch",
    "FOCAL_WEIGHT", "dice_loss", "focal_loss", "mask_iou", "mask_loss", "upsample",
    "HELDOUT_SHAPE", "IMAGE_SIZE", "LEVELS", "TRAIN_SHAPES", "click_from_error", "level_masks", "mask_box",
    "noisy_boxes", "object_crops", "phrase", "random_points", "sample_click", "text_targets", "world",
    "everything", "route", "stability_score", "RULES", "clip_set", "interior_point", "moving_clip", "track",
    "CHECKPOINT", "CLIP_CHECKPOINT", "TEXT_CHECKPOINT", "PromptTask", "Recipe", "attach_clip", "load_sam", "shapes_sam_config", "train_sam",
]

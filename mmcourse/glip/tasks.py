"""A thin entry point: what the notebook and other topics import from GLIP, by concern.

- :mod:`.data`: scenes, prompt kinds, grounding batches, attribute scenes;
- :mod:`.train`: the losses of a batch and the training run;
- :mod:`.evaluate`: AP with shape names, attribute prompts, caption grounding, the protocol's ``measure``;
- :mod:`.checkpoints`: the shipped recipe, builders, evaluators and targets, ``load_glip``.
"""

from .checkpoints import CHECKPOINTS, TARGETS, load_glip, train_variant
from .data import NAMES_PROMPT, attribute_scenes, glip_world, make_batch
from .evaluate import (caption_grounding_accuracy, caption_hits, evaluate_attributes, evaluate_names, measure,
                       positives_per_object)
from .train import batch_loss, train_glip

__all__ = ["CHECKPOINTS", "TARGETS", "load_glip", "train_variant", "NAMES_PROMPT", "attribute_scenes", "glip_world",
           "make_batch", "caption_grounding_accuracy", "caption_hits", "evaluate_attributes", "evaluate_names",
           "measure", "positives_per_object", "batch_loss", "train_glip"]

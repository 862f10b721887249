"""The shipped text-to-image checkpoint, found by ``python -m mmcourse.weights.build`` and
``python -m mmcourse.weights.check``.

- ``BUILDERS``: the recipe (:mod:`.recipe`) that trains and registers ``text2image_shapes``.
- ``EVALUATORS``: given a protocol part ("test" or "check"), the shipped checkpoint's numbers on
  that part's draws (:func:`~mmcourse.text2image.evaluate.evaluate_text2image`, no retraining,
  about 3 minutes on one thread). The builder stores what the same function measures on "test".
- ``TARGETS``: checkpoint -> metric -> {"min": x}.
"""

from __future__ import annotations

from .evaluate import evaluate_text2image
from .recipe import TARGETS as _RECIPE_TARGETS
from .recipe import build_text2image_shapes

BUILDERS = {"text2image_shapes": build_text2image_shapes}
EVALUATORS = {"text2image_shapes": evaluate_text2image}
TARGETS = {"text2image_shapes": _RECIPE_TARGETS}

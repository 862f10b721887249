"""The shipped text-to-image checkpoint, found by ``python -m mmcourse.weights.build``.

The recipe and its targets are in :mod:`.recipe`.
"""

from __future__ import annotations

from .recipe import build_text2image_shapes

BUILDERS = {"text2image_shapes": build_text2image_shapes}

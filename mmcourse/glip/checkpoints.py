"""Builders of the GLIP checkpoints, found by ``python -m mmcourse.weights.build <name>``.

- ``glip_shapes``: the notebook's model (deep fusion on).
- ``glip_shapes_nofusion``: the same recipe with the fusion layers switched off (the ablation).
"""

from __future__ import annotations

from .tasks import build_checkpoint


def build_glip_shapes() -> None:
    build_checkpoint("glip_shapes")


def build_glip_shapes_nofusion() -> None:
    build_checkpoint("glip_shapes_nofusion")


BUILDERS = {"glip_shapes": build_glip_shapes, "glip_shapes_nofusion": build_glip_shapes_nofusion}

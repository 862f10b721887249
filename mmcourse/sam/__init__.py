"""The SAM topic (notebook 06): promptable segmentation, one component per file as in
segment-anything's ``modeling/``.

- :mod:`.image_encoder`: ``ImageEncoderViT``, the course ViT blocks (windowed attention and
  relative positions as options) over the patch grid, then SAM's neck.
- :mod:`.prompt_encoder`: ``PositionEmbeddingRandom`` and ``PromptEncoder`` (points, boxes, masks, text).
- :mod:`.transformer`: ``TwoWayTransformer``.
- :mod:`.mask_decoder`: ``MaskDecoder`` (IoU token, 4 mask tokens, hypernetwork MLPs).
- :mod:`.sam`: ``Sam`` (``set_image`` once, ``predict`` per prompt) and ``SamConfig``.
- :mod:`.convert`: ``from_segment_anything``, segment-anything's state dicts in ``mmcourse.sam``.
- :mod:`.prompts`: ShapesWorld as SAM's data: the scenes, the three readings of a click (part,
  whole, group), random and corrective clicks, noisy boxes, phrases and their targets, and the
  object crops whose CLIP image embeddings train the text slot.
- :mod:`.losses`: focal and dice losses, the mask loss on the best of K masks with the IoU head's
  MSE, ``mask_iou``.
- :mod:`.train`: ``Recipe``, ``PromptTask`` (the interactive training recipe), ``train_sam``,
  ``load_sam`` and the ShapesWorld config.
- :mod:`.evaluate`: test scenes with one target each, batched prediction, the click curve, the
  protocol metrics of the checkpoint, and the ambiguous targets and boundary share they rest on.
- :mod:`.route`: segmentation -> detection -> recognition: everything mode, stability, the kinds of
  its proposals, the route's measurements.
- :mod:`.flood_fill`: the non-learned baseline for a click (the connected pixels of the clicked colour).
- :mod:`.track`: moving clips and the propagation rules (click + mask, box, oracles).
- :mod:`.tasks`: the thin entry point other topics import (``load_sam``, ``mask_iou``, ...).
- :mod:`.checkpoints`: the builders, evaluators and targets of ``sam_shapes`` and ``sam_shapes_text``.
- :mod:`.widgets`: the notebook's click-to-segment widget.
"""

from .convert import from_segment_anything, sam_state_dict_from_segment_anything
from .image_encoder import ImageEncoderConfig, ImageEncoderViT
from .mask_decoder import MLP, MaskDecoder
from .prompt_encoder import PositionEmbeddingRandom, PromptEncoder
from .sam import Prediction, Sam, SamConfig
from .transformer import TwoWayTransformer

__all__ = [
    "from_segment_anything", "sam_state_dict_from_segment_anything", "ImageEncoderConfig", "ImageEncoderViT",
    "MLP", "MaskDecoder", "PositionEmbeddingRandom", "PromptEncoder", "Prediction", "Sam", "SamConfig",
    "TwoWayTransformer",
]

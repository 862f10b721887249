"""The SAM topic (notebook 06): promptable segmentation, one component per file as in
segment-anything's ``modeling/``.

- :mod:`.image_encoder`: ``ImageEncoderViT``, the course ViT blocks (windowed attention and
  relative positions as options) over the patch grid, then SAM's neck.
- :mod:`.prompt_encoder`: ``PositionEmbeddingRandom`` and ``PromptEncoder`` (points, boxes, masks, text).
- :mod:`.transformer`: ``TwoWayTransformer``.
- :mod:`.mask_decoder`: ``MaskDecoder`` (IoU token, 4 mask tokens, hypernetwork MLPs).
- :mod:`.sam`: ``Sam`` (``set_image`` once, ``predict`` per prompt) and ``SamConfig``.
- :mod:`.convert`: ``from_segment_anything``, segment-anything's state dicts in ``mmcourse.sam``.
- :mod:`.tasks`: ShapesWorld prompts, the interactive training recipe and the measurements.
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

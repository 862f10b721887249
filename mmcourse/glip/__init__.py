"""The GLIP topic (notebook 07): object detection as phrase grounding.

- :mod:`.backbone`: a small CNN to a stride-4 feature map.
- :mod:`.fusion`: ``BiMultiHeadAttention`` and ``FusionLayer`` (GLIP's deep fusion, X-MHA).
- :mod:`.head`: the dense FCOS-style head, ``alignment_logits`` and ``AlignmentHead``.
- :mod:`.targets`: spans -> tokens, centre sampling, token targets, box encoding.
- :mod:`.losses`: ``grounding_loss`` (focal, GIoU and centerness; the box functions and NMS come
  from :mod:`mmcourse.boxes`) and MDETR's ``soft_token_loss``.
- :mod:`.text`: the two text sides: token features (GLIP's kind), or CLIP's pooled embedding of
  each phrase encoded on its own (OWL-ViT's kind; ``PhraseEncoder``, ``prompt_units``).
- :mod:`.model`: ``GLIPConfig`` and ``GLIP``.
- :mod:`.prompts`, :mod:`.predict`: prompts to phrases, ``grounding_predict`` (input checks).
- :mod:`.data`: ShapesWorld scenes, prompt kinds and grounding batches; attribute scenes.
- :mod:`.train`: the losses of a batch and the training run.
- :mod:`.evaluate`: AP with shape names and attribute prompts, caption grounding, the
  precision-recall curve, the protocol's ``measure``.
- :mod:`.checkpoints`: the shipped recipe, ``BUILDERS``, ``EVALUATORS``, ``TARGETS``, ``load_glip``.
- :mod:`.tasks`: a thin entry point re-exporting what notebooks import.
"""

from .fusion import BiMultiHeadAttention, FusionLayer
from .head import AlignmentHead, alignment_logits
from .losses import grounding_loss, soft_token_loss
from .model import GLIP, GLIPConfig, count_parameters
from .predict import grounding_predict, predict_batch
from .prompts import caption_phrases, detection_prompt, parse_prompt
from .targets import assign_locations, positive_map, span_to_tokens, token_targets

__all__ = [
    "BiMultiHeadAttention", "FusionLayer", "AlignmentHead", "alignment_logits", "grounding_loss", "soft_token_loss",
    "GLIP", "GLIPConfig", "count_parameters",
    "grounding_predict", "predict_batch", "caption_phrases", "detection_prompt", "parse_prompt",
    "assign_locations", "positive_map", "span_to_tokens", "token_targets",
]

"""The CLIP topic (notebook 04): contrastive image-text training on ShapesWorld.

- :mod:`.tokenizer`: ``WordTokenizer``, one token per word of the ShapesWorld vocabulary.
- :mod:`.text_encoder`: ``TextConfig`` and ``TextTransformer`` (causal, end-of-text pooling).
- :mod:`.model`: ``CLIPConfig`` and ``CLIP``, the ViT of :mod:`mmcourse.vit` plus the text tower.
- :mod:`.loss`: ``clip_loss`` (symmetric InfoNCE) and duplicate-caption (false negative) masking.
- :mod:`.zero_shot`: prompt-ensembled zero-shot classifiers and retrieval recall@k.
- :mod:`.convert`: ``from_hf_clip``, transformers' CLIP weights in ``mmcourse.clip``.
- :mod:`.tasks`: ShapesWorld pairs, the training run and the measurements.
- :mod:`.widgets`: the notebook's similarity-matrix, temperature and retrieval widgets.
"""

from .loss import caption_ids, clip_loss, duplicate_mask, false_negative_stats
from .model import CLIP, CLIPConfig
from .text_encoder import QuickGELU, TextConfig, TextTransformer
from .tokenizer import WordTokenizer, shapes_vocabulary
from .zero_shot import (build_zero_shot_weights, recall_at_k, shapes_classnames, shapes_templates, short_name,
                        zero_shot_classifier, zero_shot_predict, zero_shot_probs)

__all__ = [
    "caption_ids", "clip_loss", "duplicate_mask", "false_negative_stats", "CLIP", "CLIPConfig", "QuickGELU",
    "TextConfig", "TextTransformer", "WordTokenizer", "shapes_vocabulary", "build_zero_shot_weights",
    "recall_at_k", "shapes_classnames", "shapes_templates", "short_name", "zero_shot_classifier", "zero_shot_predict",
    "zero_shot_probs",
]

"""The Vision Transformer topic (notebook 03): a timm-compatible ViT and the tools around it.

- :mod:`.patch_embed`: ``patchify`` / ``unpatchify`` and ``PatchEmbed`` (a strided convolution).
- :mod:`.model`: ``ViTConfig`` and ``VisionTransformer`` (timm's parameter names).
- :mod:`.rollout`: ``attention_rollout``, ``cls_attention_map`` and ``class_token_share``.
- :mod:`.convert`: ``from_timm`` and ``from_hf_vit`` (transformers 5 names) loaders.
- :mod:`.cnn`: ``SmallCNN``, the convolutional baseline of the inductive-bias experiment.
- :mod:`.tasks`: the digits and ShapesWorld classification tasks, training and accuracy.
- :mod:`.widgets`: the notebook's patch explorer and attention viewer.
"""

from .cnn import CNNConfig, SmallCNN
from .convert import from_hf_vit, from_timm, hf_vit_to_timm
from .model import ViTConfig, VisionTransformer, count_parameters
from .patch_embed import PatchEmbed, patchify, unpatchify
from .rollout import attention_rollout, class_token_share, cls_attention_map, patches_touching

__all__ = [
    "CNNConfig", "SmallCNN", "from_hf_vit", "from_timm", "hf_vit_to_timm", "ViTConfig", "VisionTransformer",
    "count_parameters", "PatchEmbed", "patchify", "unpatchify", "attention_rollout", "cls_attention_map",
    "class_token_share", "patches_touching",
]

"""Load weights trained elsewhere into :class:`mmcourse.vit.VisionTransformer`.

The pattern is nanoGPT's ``from_pretrained``: read the architecture off the reference weights,
build our model from scratch, rename the reference keys to ours, then insist that both sides have
exactly the same keys and shapes before copying anything. A mismatch fails loudly with the
offending names instead of leaving some weights at their random initial values.

- ``from_timm``: timm's names are ours, so this only infers the config.
- ``from_hf_vit``: transformers' ``ViTForImageClassification`` / ``ViTModel``. In transformers 5
  the attention has separate ``q_proj``, ``k_proj``, ``v_proj`` that we stack into one ``qkv``;
  checkpoint files saved with transformers 4 (``encoder.layer.i.attention.attention.query`` ...)
  are accepted too.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from .model import ViTConfig, VisionTransformer

# Real ViTs use 64 channels per head (ViT-Ti 192/3, -S 384/6, -B 768/12, -L 1024/16); shapes
# alone cannot tell the number of heads, so this is the fallback when none is given.
DEFAULT_HEAD_DIM = 64


def config_from_state_dict(
    sd: dict[str, torch.Tensor], num_heads: int | None = None, norm_eps: float = 1e-6
) -> ViTConfig:
    """Infer a :class:`ViTConfig` from a state dict with timm (= our) names."""
    for key in ("patch_embed.proj.weight", "pos_embed", "cls_token"):
        if key not in sd:
            raise ValueError(f"state dict has no {key!r}: not a timm-style ViT (first keys: {list(sd)[:5]})")
    D, C, P, _ = sd["patch_embed.proj.weight"].shape
    n_patches = sd["pos_embed"].shape[1] - 1
    side = math.isqrt(n_patches)
    if side * side != n_patches:
        raise ValueError(f"pos_embed has {n_patches} patch positions, not a square grid")
    depth = len({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if "head.weight" in sd:
        num_classes = sd["head.weight"].shape[0]
    else:
        num_classes = 0
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    if num_heads is None:
        num_heads = max(1, D // DEFAULT_HEAD_DIM)
    return ViTConfig(img_size=side * P, patch_size=P, in_chans=C, num_classes=num_classes, embed_dim=D,
                     depth=depth, num_heads=num_heads, mlp_ratio=hidden / D,
                     qkv_bias="blocks.0.attn.qkv.bias" in sd, norm_eps=norm_eps, pre_norm="norm_pre.weight" in sd)


def load_checked(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Copy ``sd`` into ``model`` after checking that both have the same keys and shapes.

    Shared by every loader of outside weights (timm, transformers ViT and CLIP): nothing is left
    at its random initial value without an error naming the keys or shapes that do not fit.
    """
    ours = model.state_dict()
    missing, extra = sorted(set(ours) - set(sd)), sorted(set(sd) - set(ours))
    if missing or extra:
        raise ValueError(f"{source} weights do not fit {type(model).__name__}: missing {missing[:6]}, unexpected {extra[:6]}")
    for k, v in ours.items():
        if sd[k].shape != v.shape:
            raise ValueError(f"{source} weight {k!r} has shape {tuple(sd[k].shape)}, ours {tuple(v.shape)}")
    with torch.no_grad():
        for k, v in ours.items():
            v.copy_(sd[k])
    return model.eval()


def from_timm(sd: dict[str, torch.Tensor], num_heads: int | None = None) -> VisionTransformer:
    """Build a ViT from a timm ``VisionTransformer`` state dict (default options: class token,
    'token' pooling, no registers). ``num_heads`` cannot be read off the shapes: give it, or the
    real-model rule of 64 channels per head is used."""
    cfg = config_from_state_dict(sd, num_heads=num_heads)
    return load_checked(VisionTransformer(cfg), dict(sd), "timm")


# transformers 4 names -> transformers 5 names (both appear in checkpoint files in the wild).
_HF_V4_TO_V5 = [
    (r"encoder\.layer\.(\d+)\.attention\.attention\.query\.", r"layers.\1.attention.q_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.attention\.key\.", r"layers.\1.attention.k_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.attention\.value\.", r"layers.\1.attention.v_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attention.o_proj."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.mlp.fc1."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.mlp.fc2."),
    (r"encoder\.layer\.(\d+)\.", r"layers.\1."),
]

# transformers 5 names (after the "vit." prefix) -> timm names, per block and outside the blocks.
_HF_BLOCK = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.o_proj": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
}


def hf_vit_to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers ViT state dict to timm's names, stacking q, k, v into ``qkv``.

    Keys outside the ViT proper (``vit.pooler.*``, the masked-image-modelling ``mask_token``) are
    dropped; anything else unknown raises ValueError.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        k = key.removeprefix("vit.")
        for pattern, repl in _HF_V4_TO_V5:
            k = re.sub(pattern, repl, k)
        if k.startswith("pooler.") or k == "embeddings.mask_token":
            continue  # not part of the classifier path (pooler: tanh layer of ViTModel)
        if k in _HF_TOP:
            out[_HF_TOP[k]] = value
            continue
        m = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", k)
        if m is None:
            raise ValueError(f"unexpected key {key!r} in a transformers ViT state dict")
        i, name, kind = m.groups()
        if name in ("attention.q_proj", "attention.k_proj", "attention.v_proj"):
            qkv.setdefault((i, kind), {})[name[-6]] = value
        elif name in _HF_BLOCK:
            out[f"blocks.{i}.{_HF_BLOCK[name]}.{kind}"] = value
        else:
            raise ValueError(f"unexpected key {key!r} in a transformers ViT state dict")
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {i}: found only {sorted(parts)} of the q, k, v projection {kind}s")
        # timm's fused layout: rows [0, D) are q, [D, 2D) k, [2D, 3D) v; heads split inside each.
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def hf_config_value(config: Any, key: str, default: Any) -> Any:
    """``config.key`` of a transformers config object, or ``config[key]`` of its ``to_dict()``;
    ``default`` when the config is None or lacks the key (every ``from_hf_*`` loader reads its
    config this way)."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def check_hf_config(config: Any, kind: str) -> None:
    """Raise ValueError unless ``config`` is None, a transformers ``kind`` config or its dict."""
    if config is None or isinstance(config, dict) or hasattr(config, "to_dict"):
        return
    raise ValueError(f"config must be a transformers {kind} (or its to_dict(), a config.json), "
                     f"got {type(config).__name__}: {config!r:.60}")


def from_hf_vit(state_dict: dict[str, torch.Tensor], config: Any = None) -> VisionTransformer:
    """Build a ViT from a transformers ``ViTForImageClassification`` (or ``ViTModel``) state dict.

    The loaders of real weights share one form, ``from_hf_<model>(state_dict, config=None)``
    (:func:`mmcourse.clip.from_hf_clip`, :func:`mmcourse.blip.convert.from_hf_blip_itm`, ...).

    Args:
        state_dict: the state dict (transformers 5 or 4 key names).
        config: the transformers ``ViTConfig`` or its ``to_dict()`` (a ``config.json``). Read:
            ``num_attention_heads`` (default: 64 channels per head, as every released ViT) and
            ``layer_norm_eps`` (default 1e-12, transformers' own, where timm uses 1e-6: on tiny
            random models that alone changes logits by ~1e-4, so pass the config).
    """
    check_hf_config(config, "ViTConfig")
    if not isinstance(state_dict, dict):
        raise ValueError(f"state_dict must be a dict of tensors (a model's state_dict()), got {type(state_dict).__name__}")
    timm_sd = hf_vit_to_timm(state_dict)
    cfg = config_from_state_dict(timm_sd, num_heads=hf_config_value(config, "num_attention_heads", None),
                                 norm_eps=hf_config_value(config, "layer_norm_eps", 1e-12))
    return load_checked(VisionTransformer(cfg), timm_sd, "transformers")

"""Load transformers' CLIP weights (``CLIPModel`` state dicts) into :class:`mmcourse.clip.CLIP`.

nanoGPT's ``from_pretrained`` pattern: read the architecture off the reference weights (and the
few facts shapes cannot tell from its config), build our model from scratch, rename every
reference key to ours, then insist that both sides have exactly the same keys and shapes before
copying anything. Nothing is left at its random initial value without an error saying so.

What differs between transformers' layout and ours, and why it is safe:

- q, k and v are three Linear layers there and one fused ``qkv`` here (timm's layout): stacking
  the three weight matrices row-wise is the same map.
- The projections are ``nn.Linear(D, E, bias=False)`` there, weight (E, D), and (D, E) matrices
  used as ``x @ W`` here (OpenAI's layout): the weight is transposed.
- The class embedding is (D,) there and (1, 1, D) here; the position embedding is an
  ``nn.Embedding`` there and a (1, T, D) parameter here: reshapes only.
- ``post_layernorm`` is applied to the class token only there and to every token here
  (LayerNorm acts token by token, so the class token comes out the same).
- The real image tower has a LayerNorm after the embeddings (``pre_layrnorm``, timm's
  ``norm_pre``) and a patch convolution without bias; :class:`mmcourse.vit.ViTConfig` turns
  both on with ``pre_norm=True``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from ..vit.convert import check_hf_config, load_checked
from ..vit.convert import hf_config_value as _get
from ..vit.model import ViTConfig
from .model import CLIP, CLIPConfig
from .text_encoder import TextConfig

HEAD_DIM = 64  # every released CLIP uses 64 channels per head; the fallback when no config is given


def config_from_hf_state_dict(sd: dict[str, torch.Tensor], config: Any = None) -> CLIPConfig:
    """Infer a :class:`CLIPConfig` from a transformers CLIP state dict.

    ``config`` (a transformers ``CLIPConfig`` or its ``to_dict()``) supplies what shapes cannot
    tell: heads, activation, LayerNorm eps and the end-of-text id. Without it, the values of
    OpenAI's released models are used (64 channels per head, QuickGELU, 1e-5, id 49407).
    """
    for key in ("vision_model.embeddings.patch_embedding.weight", "text_model.embeddings.token_embedding.weight",
                "visual_projection.weight", "text_projection.weight"):
        if key not in sd:
            raise ValueError(f"state dict has no {key!r}: not a transformers CLIPModel (first keys: {list(sd)[:4]})")
    tcfg, vcfg = _get(config, "text_config", None), _get(config, "vision_config", None)

    def depth(prefix: str) -> int:
        return len({int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.encoder\.layers\.(\d+)\.", k))})

    D_img, C, P, _ = sd["vision_model.embeddings.patch_embedding.weight"].shape
    side = math.isqrt(sd["vision_model.embeddings.position_embedding.weight"].shape[0] - 1)
    vision = ViTConfig(
        img_size=side * P, patch_size=P, in_chans=C, num_classes=0, embed_dim=D_img, depth=depth("vision_model"),
        num_heads=_get(vcfg, "num_attention_heads", max(1, D_img // HEAD_DIM)),
        mlp_ratio=sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0] / D_img,
        norm_eps=_get(vcfg, "layer_norm_eps", 1e-5), pre_norm=True, act=_get(vcfg, "hidden_act", "quick_gelu"),
    )
    vocab, D_txt = sd["text_model.embeddings.token_embedding.weight"].shape
    eos = _get(tcfg, "eos_token_id", vocab - 1)
    text = TextConfig(
        vocab_size=vocab, context_length=sd["text_model.embeddings.position_embedding.weight"].shape[0],
        width=D_txt, layers=depth("text_model"), heads=_get(tcfg, "num_attention_heads", max(1, D_txt // HEAD_DIM)),
        mlp_ratio=sd["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0] / D_txt,
        act=_get(tcfg, "hidden_act", "quick_gelu"), norm_eps=_get(tcfg, "layer_norm_eps", 1e-5),
        # transformers reads eos_token_id == 2 as "old config": it then pools at the largest id
        eot_token_id=eos if 0 <= eos < vocab else vocab - 1, pool="argmax" if eos == 2 else "eot",
    )
    return CLIPConfig(embed_dim=sd["visual_projection.weight"].shape[0], vision=vision, text=text)


# transformers names inside a block -> ours (mmcourse.nn.Block, timm's names)
_BLOCK = {"self_attn.out_proj": "attn.proj", "layer_norm1": "norm1", "layer_norm2": "norm2",
          "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


# transformers names outside the blocks -> (ours, how the tensor changes)
_TOP = {
    "logit_scale": ("logit_scale", _same),
    "text_model.embeddings.token_embedding.weight": ("text.token_embedding.weight", _same),
    "text_model.embeddings.position_embedding.weight": ("text.positional_embedding", _same),
    "text_model.final_layer_norm.weight": ("text.ln_final.weight", _same),
    "text_model.final_layer_norm.bias": ("text.ln_final.bias", _same),
    "text_projection.weight": ("text.text_projection", lambda t: t.T),            # (E, D) -> (D, E)
    "visual_projection.weight": ("image_projection", lambda t: t.T),              # (E, D) -> (D, E)
    "vision_model.embeddings.class_embedding": ("visual.cls_token", lambda t: t.reshape(1, 1, -1)),
    "vision_model.embeddings.patch_embedding.weight": ("visual.patch_embed.proj.weight", _same),
    "vision_model.embeddings.position_embedding.weight": ("visual.pos_embed", lambda t: t[None]),
    "vision_model.pre_layrnorm.weight": ("visual.norm_pre.weight", _same),        # sic: "layrnorm"
    "vision_model.pre_layrnorm.bias": ("visual.norm_pre.bias", _same),
    "vision_model.post_layernorm.weight": ("visual.norm.weight", _same),
    "vision_model.post_layernorm.bias": ("visual.norm.bias", _same),
}


def hf_clip_to_mmcourse(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and reshape, transpose, fuse) a transformers CLIP state dict to our key names."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    towers = {"text_model": "text", "vision_model": "visual"}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue  # an arange buffer, not a weight
        m = re.fullmatch(r"(text_model|vision_model)\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if m:
            tower, i, name, kind = m.groups()
            if name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                qkv.setdefault((towers[tower], i, kind), {})[name[-6]] = value
            elif name in _BLOCK:
                out[f"{towers[tower]}.blocks.{i}.{_BLOCK[name]}.{kind}"] = value
            else:
                raise ValueError(f"unexpected key {key!r} in a transformers CLIP state dict")
            continue
        simple = _TOP.get(key)
        if simple is None:
            raise ValueError(f"unexpected key {key!r} in a transformers CLIP state dict")
        out[simple[0]] = simple[1](value)
    for (tower, i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{tower} layer {i}: found only {sorted(parts)} of the q, k, v projection {kind}s")
        out[f"{tower}.blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def from_hf_clip(state_dict: dict[str, torch.Tensor], config: Any = None) -> CLIP:
    """Build a :class:`CLIP` holding the weights of a transformers ``CLIPModel`` state dict.

    Args:
        state_dict: ``CLIPModel.state_dict()`` or the tensors of its ``model.safetensors``.
        config: optional transformers ``CLIPConfig`` (or its dict) for heads, activation, eps and
            the end-of-text id; see :func:`config_from_hf_state_dict` for the defaults.

    Raises ValueError naming the keys or shapes that do not fit.
    """
    check_hf_config(config, "CLIPConfig")
    if not isinstance(state_dict, dict):
        raise ValueError(f"state_dict must be a dict of tensors (CLIPModel.state_dict()), got {type(state_dict).__name__}")
    cfg = config_from_hf_state_dict(state_dict, config)
    return load_checked(CLIP(cfg), hf_clip_to_mmcourse(state_dict), "transformers CLIP")


# ---------------------------------------------------------------------------------------------
# Using real CLIP weights: the byte-pair tokenizer and image preprocessing of OpenAI's CLIP
# ---------------------------------------------------------------------------------------------

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the training set's pixel statistics (RGB)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def openai_tokenizer(context_length: int = 77):
    """OpenAI CLIP's byte-pair tokenizer, as shipped (with its vocabulary) inside open_clip.

    Returns a callable: list of strings -> (N, context_length) int64 ids, start 49406, end 49407.
    open_clip's ``tokenizer.py`` is loaded on its own, without importing the ``open_clip``
    package (whose import needs a working torchvision); it reads only its bundled files.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.origin:
        raise ImportError("OpenAI's tokenizer comes with open_clip: pip install open_clip_torch")
    path = Path(spec.origin).parent / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    tokenizer = module.SimpleTokenizer(context_length=context_length)
    return lambda texts: tokenizer([texts] if isinstance(texts, str) else list(texts))


def openai_preprocess(image, size: int = 224) -> torch.Tensor:
    """An RGB image (H, W, 3) uint8 or float in [0, 1] -> (3, size, size) normalised as CLIP was trained:
    resize the short side to ``size`` (bicubic), crop the centre, subtract mean and divide by std."""
    import numpy as np
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(image))
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"image must be an RGB array (H, W, 3), got shape {tuple(x.shape)}")
    x = x.permute(2, 0, 1).float()
    if x.max() > 1.0:
        x = x / 255.0
    H, W = x.shape[1:]
    scale = size / min(H, W)
    x = F.interpolate(x[None], size=(max(size, round(H * scale)), max(size, round(W * scale))),
                      mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)
    top, left = (x.shape[1] - size) // 2, (x.shape[2] - size) // 2
    x = x[:, top : top + size, left : left + size]
    return (x - torch.tensor(OPENAI_MEAN)[:, None, None]) / torch.tensor(OPENAI_STD)[:, None, None]


def load_hf_clip_file(path: str, config: Any = None) -> CLIP:
    """Read a transformers CLIP ``model.safetensors`` (e.g. openai/clip-vit-base-patch32) into CLIP.

    Without ``config``, a transformers ``config.json`` next to the file is used when there is one
    (heads, activation, eps, end-of-text id); otherwise the released models' values are assumed.
    """
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CLIP weights at {str(path)!r}: expected a transformers model.safetensors file")
    beside = path.with_name("config.json")
    if config is None and beside.is_file():
        config = json.loads(beside.read_text())
    return from_hf_clip(load_file(str(path)), config)

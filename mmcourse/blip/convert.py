"""Load transformers' BLIP weights into :class:`mmcourse.blip.BLIP` (nanoGPT's ``from_pretrained`` pattern).

Read the architecture off the state dict and the config, build our model, rename every key, and
copy only after :func:`mmcourse.vit.convert.load_checked` has found the same keys and shapes on
both sides.

- ``from_hf_blip_itm``: ``BlipForImageTextRetrieval`` (ITC + ITM, no decoder) -> ``BLIP(encoder only)``.
- ``from_hf_blip_captioner``: ``BlipForConditionalGeneration`` (LM) -> ``BLIP(decoder only)``.

What differs between transformers' layout and ours, and why it is safe:

- The image tower is a plain timm ViT there too (pre-norm, fused ``qkv``, LayerNorm after the
  last block on every token): only names change (``self_attn.projection`` -> ``attn.proj`` ...).
- The text layers are BERT's ``attention.self.query`` / ``attention.output.dense`` /
  ``attention.output.LayerNorm`` ...; ours are ``self_attn.q_proj`` / ``self_attn.out_proj`` /
  ``norm1`` (and ``cross_attn``/``norm2``, ``mlp.fc1``/``mlp.fc2``/``norm3``).
- The LM head has two copies of its bias there (``cls.predictions.bias`` and
  ``cls.predictions.decoder.bias``, tied); we keep one, ``lm_head.decoder.bias``.
- The retrieval model has no ITC temperature (its ``use_itm_head=False`` output is the raw
  cosine); ours is set to BLIP's initial 0.07.
- transformers does not put ``[ENC]`` / ``[DEC]`` at token 0; our model does. Feed transformers
  ids whose token 0 already is ``[ENC]`` (ITM) or ``bos_token_id`` (LM) to compare.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..vit.convert import load_checked
from ..vit.model import ViTConfig
from .model import BLIP, TEMP_INIT, BlipConfig
from .text import TextConfig


def _get(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    value = config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)
    return default if value is None else value


# transformers names inside a text layer -> ours (mmcourse.blip.text.TextLayer)
_TEXT_LAYER = {
    "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",
    "crossattention.self.query": "cross_attn.q_proj", "crossattention.self.key": "cross_attn.k_proj",
    "crossattention.self.value": "cross_attn.v_proj", "crossattention.output.dense": "cross_attn.out_proj",
    "crossattention.output.LayerNorm": "norm2",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2", "output.LayerNorm": "norm3",
}
_TEXT_TOP = {"embeddings.word_embeddings": "embeddings.word_embeddings",
             "embeddings.position_embeddings": "embeddings.position_embeddings", "embeddings.LayerNorm": "embeddings.norm"}
# transformers names inside a vision layer -> ours (mmcourse.nn.Block, timm's names)
_VISION_LAYER = {"self_attn.qkv": "attn.qkv", "self_attn.projection": "attn.proj", "layer_norm1": "norm1",
                 "layer_norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_VISION_TOP = {"embeddings.class_embedding": "cls_token", "embeddings.position_embedding": "pos_embed",
               "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
               "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
               "post_layernorm.weight": "norm.weight", "post_layernorm.bias": "norm.bias"}
_HEADS = {"vision_proj.weight", "vision_proj.bias", "text_proj.weight", "text_proj.bias", "itm_head.weight", "itm_head.bias"}
_LM_HEAD = {"cls.predictions.transform.dense": "lm_head.dense", "cls.predictions.transform.LayerNorm": "lm_head.norm",
            "cls.predictions.decoder.weight": "lm_head.decoder.weight", "cls.predictions.bias": "lm_head.decoder.bias"}


def _rename(key: str, text_prefix: str, ours_text: str) -> str | None:
    """One transformers key -> ours; None for keys we drop on purpose; ValueError when unknown."""
    if key.endswith("position_ids") or key == f"{text_prefix.rsplit('.', 1)[0]}.cls.predictions.decoder.bias":
        return None  # an arange buffer; the tied second copy of the LM bias
    if key.startswith("vision_model."):
        k = key.removeprefix("vision_model.")
        if m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", k):
            i, name, kind = m.groups()
            if name in _VISION_LAYER:
                return f"visual.blocks.{i}.{_VISION_LAYER[name]}.{kind}"
        elif k in _VISION_TOP:
            return f"visual.{_VISION_TOP[k]}"
    elif key.startswith(text_prefix + "."):
        k = key.removeprefix(text_prefix + ".")
        if m := re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", k):
            i, name, kind = m.groups()
            if name in _TEXT_LAYER:
                return f"{ours_text}.layers.{i}.{_TEXT_LAYER[name]}.{kind}"
        elif (m := re.fullmatch(r"(.+)\.(weight|bias)", k)) and m.group(1) in _TEXT_TOP:
            return f"{ours_text}.{_TEXT_TOP[m.group(1)]}.{m.group(2)}"
    elif key in _HEADS:
        return key
    elif key.startswith("text_decoder.cls."):
        k = key.removeprefix("text_decoder.")
        for theirs, ours in _LM_HEAD.items():
            if k == theirs or k.startswith(theirs + "."):
                return ours + k.removeprefix(theirs)
    raise ValueError(f"unexpected key {key!r} in a transformers BLIP state dict")


def hf_blip_to_mmcourse(sd: dict[str, torch.Tensor], text_prefix: str, ours_text: str) -> dict[str, torch.Tensor]:
    """Rename a transformers BLIP state dict; ``text_prefix`` is ``text_encoder`` or ``text_decoder.bert``."""
    out = {}
    for key, value in sd.items():
        k = _rename(key, text_prefix, ours_text)
        if k is not None:
            out[k] = value
    return out


def config_from_hf(sd: dict[str, torch.Tensor], config: Any, text_prefix: str, encoder: bool,
                   cls_token_id: int | None = None, enc_token_id: int | None = None) -> BlipConfig:
    """Infer a :class:`BlipConfig` from a transformers BLIP state dict and its ``BlipConfig`` (or dict).

    Shapes give the widths, depths and sizes; the config gives heads, activations, LayerNorm eps,
    token ids and label smoothing (transformers' defaults when ``config`` is None). transformers'
    config has no ``[CLS]`` or ``[ENC]`` id: give them (Salesforce's released BLIP: 101 and 30523),
    or the course tokenizer's layout is assumed (the 4th- and 2nd-last ids); a clash with the
    config's ``bos_token_id`` ([DEC]) raises ValueError.
    """
    vcfg, tcfg = _get(config, "vision_config", None), _get(config, "text_config", None)
    for key in ("vision_model.embeddings.patch_embedding.weight", f"{text_prefix}.embeddings.word_embeddings.weight"):
        if key not in sd:
            raise KeyError(f"state dict has no {key!r}: not a transformers BLIP model of this kind "
                           f"(first keys: {list(sd)[:4]})")

    def depth(pattern: str) -> int:
        return len({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})

    Dv, C, P, _ = sd["vision_model.embeddings.patch_embedding.weight"].shape
    n_pos = sd["vision_model.embeddings.position_embedding"].shape[1] - 1
    side = int(round(n_pos**0.5))
    vision = ViTConfig(
        img_size=side * P, patch_size=P, in_chans=C, num_classes=0, embed_dim=Dv,
        depth=depth(r"vision_model\.encoder\.layers\.(\d+)\."), num_heads=_get(vcfg, "num_attention_heads", 12),
        mlp_ratio=sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0] / Dv,
        norm_eps=_get(vcfg, "layer_norm_eps", 1e-5), act=_get(vcfg, "hidden_act", "gelu"),
    )
    V, D = sd[f"{text_prefix}.embeddings.word_embeddings.weight"].shape
    text = TextConfig(
        vocab_size=V, context_length=sd[f"{text_prefix}.embeddings.position_embeddings.weight"].shape[0], width=D,
        layers=depth(rf"{re.escape(text_prefix)}\.encoder\.layer\.(\d+)\."), heads=_get(tcfg, "num_attention_heads", 8),
        mlp_dim=sd[f"{text_prefix}.encoder.layer.0.intermediate.dense.weight"].shape[0], image_width=Dv,
        act=_get(tcfg, "hidden_act", "gelu"), norm_eps=_get(tcfg, "layer_norm_eps", 1e-12),
        pad_token_id=_get(tcfg, "pad_token_id", 0), sep_token_id=_get(tcfg, "sep_token_id", None),
        dec_token_id=_get(tcfg, "bos_token_id", None), cls_token_id=cls_token_id, enc_token_id=enc_token_id,
    )
    return BlipConfig(
        vision=vision, text=text, embed_dim=sd["vision_proj.weight"].shape[0] if encoder else 64,
        encoder=encoder, decoder=not encoder, tie_word_embeddings=bool(_get(tcfg, "tie_word_embeddings", True)),
        # the decoder reads text_config.label_smoothing; BlipConfig.label_smoothing is never used
        label_smoothing=float(_get(tcfg, "label_smoothing", 0.0)),
    )


def from_hf_blip_itm(state_dict: dict[str, torch.Tensor], config: Any = None, cls_token_id: int | None = None,
                     enc_token_id: int | None = None) -> BLIP:
    """A :class:`BLIP` (encoder side: ITC and ITM) holding a transformers ``BlipForImageTextRetrieval``.

    Args:
        state_dict: the model's ``state_dict()`` (or its safetensors tensors).
        config: its transformers ``BlipConfig`` (or ``to_dict()``): heads, eps, activations, token ids.
        cls_token_id, enc_token_id: the ids our model puts at token 0 for ITC and ITM (see
            :func:`config_from_hf`).
    """
    cfg = config_from_hf(state_dict, config, "text_encoder", encoder=True, cls_token_id=cls_token_id,
                         enc_token_id=enc_token_id)
    sd = hf_blip_to_mmcourse(state_dict, "text_encoder", "text_encoder")
    sd["temp"] = torch.tensor(TEMP_INIT)  # transformers' retrieval model has no temperature
    return load_checked(BLIP(cfg), sd, "transformers BLIP (retrieval)")


def from_hf_blip_captioner(state_dict: dict[str, torch.Tensor], config: Any = None, cls_token_id: int | None = None,
                           enc_token_id: int | None = None) -> BLIP:
    """A :class:`BLIP` (decoder side: LM) holding a transformers ``BlipForConditionalGeneration``.

    The decoder starts from the config's ``bos_token_id`` ([DEC]) and stops at ``sep_token_id``.
    """
    cfg = config_from_hf(state_dict, config, "text_decoder.bert", encoder=False, cls_token_id=cls_token_id,
                         enc_token_id=enc_token_id)
    sd = hf_blip_to_mmcourse(state_dict, "text_decoder.bert", "text_decoder")
    if cfg.tie_word_embeddings:  # one matrix for input embeddings and output scores
        sd["lm_head.decoder.weight"] = sd["text_decoder.embeddings.word_embeddings.weight"]
    return load_checked(BLIP(cfg), sd, "transformers BLIP (captioner)")

"""segment-anything's weights in ``mmcourse.sam`` (nanoGPT's ``from_pretrained`` pattern).

The prompt encoder, two-way transformer and mask decoder share segment-anything's parameter
names, so their keys pass unchanged. The image encoder differs in two places only:

=========================================  ==========================================
segment-anything                           mmcourse.sam
=========================================  ==========================================
``image_encoder.pos_embed`` (1, h, w, D)   ``image_encoder.pos_embed`` (1, h * w, D)
``image_encoder.blocks.i.mlp.lin1/lin2``   ``image_encoder.blocks.i.mlp.fc1/fc2``
=========================================  ==========================================

Buffers that are not weights (``pixel_mean``/``pixel_std``) are dropped; every key must then
match one-to-one with the same shape, or loading fails loudly.
"""

from __future__ import annotations

import re

import torch

from .image_encoder import ImageEncoderConfig
from .sam import PIXEL_MEAN, PIXEL_STD, Sam, SamConfig


def sam_state_dict_from_segment_anything(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename / reshape a segment-anything ``Sam`` state dict into ``mmcourse.sam`` names."""
    out = {}
    for key, value in state_dict.items():
        if key in ("pixel_mean", "pixel_std"):
            continue
        if key == "image_encoder.pos_embed":
            value = value.reshape(value.shape[0], -1, value.shape[-1])           # (1, h, w, D) -> (1, h*w, D)
        key = re.sub(r"^(image_encoder\.blocks\.\d+\.mlp\.)lin([12])\.", r"\1fc\2.", key)
        out[key] = value
    return out


def config_from_segment_anything(
    state_dict: dict[str, torch.Tensor], encoder_heads: int | None = None, decoder_heads: int = 8,
    pixel_mean: tuple[float, ...] = PIXEL_MEAN, pixel_std: tuple[float, ...] = PIXEL_STD,
) -> SamConfig:
    """Read a SamConfig off the weights' shapes. Head counts are not in the weights: the encoder's
    comes from the relative-position tables when present (else ``encoder_heads``), the decoder's
    is ``decoder_heads`` (8 in every released SAM)."""
    sd = state_dict
    D, _, P, _ = sd["image_encoder.patch_embed.proj.weight"].shape
    pe = sd["image_encoder.pos_embed"]
    g = pe.shape[1] if pe.ndim == 4 else int(round(pe.shape[1] ** 0.5))
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)))
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in sd
    window, global_idx = 0, []
    if use_rel_pos:
        head_dim = sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        encoder_heads = encoder_heads or D // head_dim
        for i in range(depth):
            size = (sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] + 1) // 2
            if size == g:
                global_idx.append(i)
            else:
                window = size
        if window == 0:  # every block global: no window at all
            global_idx = []
    if encoder_heads is None:
        raise ValueError("encoder_heads: the weights have no relative-position tables to read it from; pass it")
    C = sd["image_encoder.neck.0.weight"].shape[0]
    enc = ImageEncoderConfig(
        img_size=g * P, patch_size=P, embed_dim=D, depth=depth, num_heads=encoder_heads,
        mlp_ratio=sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / D if "image_encoder.blocks.0.mlp.lin1.weight" in sd
        else sd["image_encoder.blocks.0.mlp.fc1.weight"].shape[0] / D,
        out_chans=C, use_rel_pos=use_rel_pos, window_size=window, global_attn_indexes=tuple(global_idx),
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in sd,
    )
    dec_depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k)))
    return SamConfig(
        encoder=enc, mask_in_chans=sd["prompt_encoder.mask_downscaling.3.weight"].shape[0],
        decoder_depth=dec_depth, decoder_heads=decoder_heads,
        decoder_mlp_dim=sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
        iou_head_hidden_dim=sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
        attention_downsample_rate=C // sd["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0],
        pixel_mean=pixel_mean, pixel_std=pixel_std,
    )


def from_segment_anything(state_dict: dict[str, torch.Tensor], cfg: SamConfig | None = None, **config_kw) -> Sam:
    """A ``mmcourse.sam.Sam`` holding segment-anything weights (a state dict of its ``Sam``).

    ``cfg`` defaults to :func:`config_from_segment_anything` (``config_kw`` goes there). Every
    key must be present on both sides with the same shape; the optional ``text_proj`` (the
    course's text path, absent from SAM) keeps its fresh initialisation.
    """
    cfg = cfg or config_from_segment_anything(state_dict, **config_kw)
    model = Sam(cfg)
    ours = model.state_dict()
    theirs = sam_state_dict_from_segment_anything(state_dict)
    own_only = {k for k in ours if k.startswith("prompt_encoder.text_proj.")}
    missing = sorted(set(ours) - set(theirs) - own_only)
    extra = sorted(set(theirs) - set(ours))
    if missing or extra:
        raise ValueError(f"state_dict does not match mmcourse.sam.Sam: missing {missing[:8]}, unexpected {extra[:8]}")
    bad = [(k, tuple(v.shape), tuple(ours[k].shape)) for k, v in theirs.items() if v.shape != ours[k].shape]
    if bad:
        raise ValueError(f"state_dict shapes differ (key, theirs, ours): {bad[:8]}")
    model.load_state_dict(theirs, strict=False)
    return model.eval()

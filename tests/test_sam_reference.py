"""mmcourse.sam against segment-anything 1.0 (its modeling code, tiny random models, no weights)."""

from functools import partial

import pytest
import torch
from torch import nn

from mmcourse.sam import from_segment_anything
from mmcourse.sam.convert import config_from_segment_anything

pytestmark = pytest.mark.usefixtures("one_thread")
ATOL = 1e-5


def _tiny_reference(seed: int = 0, window: int = 4, global_idx=(1,), img: int = 48, patch: int = 8):
    """A segment-anything Sam with small dims: window attention with padding (grid 6, window 4),
    relative positions, one global block; every parameter randomised (rel_pos and pos_embed start at 0)."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    torch.manual_seed(seed)
    C, g = 32, img // patch
    ref = Sam(
        image_encoder=ImageEncoderViT(img_size=img, patch_size=patch, embed_dim=32, depth=3, num_heads=4,
                                      mlp_ratio=4.0, out_chans=C, qkv_bias=True,
                                      norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                                      window_size=window, global_attn_indexes=global_idx),
        prompt_encoder=PromptEncoder(embed_dim=C, image_embedding_size=(g, g), input_image_size=(img, img),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=C, mlp_dim=64, num_heads=4),
                                 transformer_dim=C, iou_head_depth=3, iou_head_hidden_dim=32),
    ).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return ref


@pytest.fixture(scope="module")
def pair():
    ref = _tiny_reference()
    ours = from_segment_anything(ref.state_dict(), encoder_heads=4, decoder_heads=4,
                                 pixel_mean=tuple((ref.pixel_mean.flatten() / 255).tolist()),
                                 pixel_std=tuple((ref.pixel_std.flatten() / 255).tolist()))
    return ref, ours


def test_config_read_off_the_weights(pair):
    ref, ours = pair
    enc = ours.cfg.encoder
    assert (enc.img_size, enc.patch_size, enc.embed_dim, enc.depth, enc.num_heads) == (48, 8, 32, 3, 4)
    assert enc.use_rel_pos and enc.window_size == 4 and enc.global_attn_indexes == (1,)
    assert ours.mask_decoder.transformer.layers[0].mlp.lin1.out_features == 64


def test_state_dicts_correspond_one_to_one(pair):
    ref, ours = pair
    theirs = {k for k in ref.state_dict() if k not in ("pixel_mean", "pixel_std")}
    assert len(theirs) == len(ours.state_dict())
    # the prompt encoder, transformer and decoder need no renaming at all
    same = {k for k in theirs if not k.startswith("image_encoder.")}
    assert same <= set(ours.state_dict())


def test_image_embedding_matches(pair):
    ref, ours = pair
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        want = ref.image_encoder(x)
        got = ours.image_encoder(x)
    assert got.shape == want.shape == (2, 32, 6, 6)
    assert (got - want).abs().max().item() < ATOL


@pytest.mark.parametrize("prompt", ["point", "points", "box", "point+box", "mask", "points+mask"])
@pytest.mark.parametrize("multimask", [True, False])
def test_masks_and_iou_match(pair, prompt, multimask):
    ref, ours = pair
    g = torch.Generator().manual_seed(hash(prompt) % 1000)
    B = 3
    with torch.no_grad():
        emb = ref.image_encoder(torch.randn(1, 3, 48, 48, generator=g))
        pts = lab = box = mask = None
        if "point" in prompt:
            n = 1 if prompt == "point" or prompt == "point+box" else 3
            pts = torch.rand(B, n, 2, generator=g) * 47
            lab = torch.randint(0, 2, (B, n), generator=g)
        if "box" in prompt:
            xy = torch.rand(B, 2, 2, generator=g) * 47
            box = torch.cat([xy.min(1).values, xy.max(1).values], dim=1)
        if "mask" in prompt:
            mask = torch.randn(B, 1, 24, 24, generator=g) * 3
        sparse, dense = ref.prompt_encoder(points=(pts, lab) if pts is not None else None, boxes=box, masks=mask)
        want_m, want_iou = ref.mask_decoder(image_embeddings=emb, image_pe=ref.prompt_encoder.get_dense_pe(),
                                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                            multimask_output=multimask)
        got_m, got_iou = ours.decode(emb, pts, lab, box, mask, multimask_output=multimask)
    k = 3 if multimask else 1
    assert got_m.shape == want_m.shape == (B, k, 24, 24)
    assert (got_m - want_m).abs().max().item() < ATOL
    assert (got_iou - want_iou).abs().max().item() < ATOL


def test_full_pipeline_matches_reference_forward(pair):
    """segment-anything's Sam.forward (preprocess, encode, prompt, decode, postprocess) against
    set_image + predict, on a non-square image (so padding and cropping are exercised)."""
    ref, ours = pair
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 48, 40, generator=g)
    pts = torch.tensor([[10.0, 20.0], [30.0, 5.0]])
    lab = torch.tensor([1, 0])
    with torch.no_grad():
        out = ref([{"image": image * 255, "original_size": (48, 40), "point_coords": pts[None],
                    "point_labels": lab[None]}], multimask_output=True)[0]
    ours.set_image(image)
    pred = ours.predict(points=pts, labels=lab)
    assert (pred.low_res_logits - out["low_res_logits"][0]).abs().max().item() < ATOL
    assert (pred.iou_predictions - out["iou_predictions"][0]).abs().max().item() < ATOL
    assert pred.masks.shape == out["masks"][0].shape == (3, 48, 40)
    # thresholded at 0: identical except where a logit is within float error of 0
    assert (pred.masks != out["masks"][0]).sum().item() <= 2


def test_window_without_padding_and_all_global():
    for window, global_idx in ((3, (2,)), (0, ())):
        ref = _tiny_reference(seed=1, window=window, global_idx=global_idx)
        ours = from_segment_anything(ref.state_dict(), encoder_heads=4, decoder_heads=4)
        x = torch.randn(1, 3, 48, 48)
        with torch.no_grad():
            assert (ours.image_encoder(x) - ref.image_encoder(x)).abs().max().item() < ATOL


def test_loader_fails_loudly_on_a_wrong_state_dict(pair):
    ref, _ = pair
    sd = dict(ref.state_dict())
    cfg = config_from_segment_anything(sd, decoder_heads=4)
    del sd["mask_decoder.iou_token.weight"]
    with pytest.raises(ValueError, match="missing"):
        from_segment_anything(sd, cfg)
    sd = dict(ref.state_dict())
    sd["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 16)
    with pytest.raises(ValueError, match="shapes differ"):
        from_segment_anything(sd, cfg)


def test_vit_b_layout_small():
    """ViT-B's layout at small width: a 16 x 16 grid with 14 x 14 windows (padded to 28 x 28), global
    blocks 1 and 3, 256-wide prompts: the config is read off the weights and the embedding matches."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(3)
    ref = Sam(
        image_encoder=ImageEncoderViT(img_size=256, patch_size=16, embed_dim=48, depth=4, num_heads=3, out_chans=64,
                                      qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                                      window_size=14, global_attn_indexes=(1, 3)),
        prompt_encoder=PromptEncoder(embed_dim=64, image_embedding_size=(16, 16), input_image_size=(256, 256),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=64, iou_head_depth=3, iou_head_hidden_dim=32,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=64, mlp_dim=128, num_heads=8)),
    ).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                p.normal_(0, 0.3)
    ours = from_segment_anything(ref.state_dict())          # heads: 48 / head_dim 16 = 3; decoder 8 (SAM's)
    enc = ours.cfg.encoder
    assert (enc.num_heads, enc.window_size, enc.global_attn_indexes, ours.cfg.decoder_heads) == (3, 14, (1, 3), 8)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert (ours.image_encoder(x) - ref.image_encoder(x)).abs().max().item() < ATOL
        pts, lab = torch.tensor([[[100.0, 60.0]]]), torch.tensor([[1]])
        emb = ref.image_encoder(x)
        s, d = ref.prompt_encoder(points=(pts, lab), boxes=None, masks=None)
        want, _ = ref.mask_decoder(emb, ref.prompt_encoder.get_dense_pe(), s, d, True)
        got, _ = ours.decode(emb, pts, lab)
    assert (got - want).abs().max().item() < ATOL

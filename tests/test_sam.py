"""mmcourse.sam kernels: properties of the prompt encoding, shapes, and bad input."""

import pytest
import torch

from mmcourse.clip import CLIP, WordTokenizer
from mmcourse.clip.tasks import shapes_clip_config
from mmcourse.nn import Block, window_partition, window_unpartition
from mmcourse.sam import ImageEncoderConfig, PositionEmbeddingRandom, Sam, SamConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    model = Sam(SamConfig(encoder=ImageEncoderConfig(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=4,
                                                     out_chans=32, window_size=3, global_attn_indexes=(1,),
                                                     use_rel_pos=True), text_dim=64)).eval()
    with torch.no_grad():  # non-trivial embeddings so that a wrong token shows
        for name, p in model.prompt_encoder.named_parameters():
            if "embed" in name:
                p.normal_()
    model.set_text_encoder(CLIP(shapes_clip_config()), WordTokenizer())
    model.set_image(torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)))
    return model


def test_point_encoding_equals_grid_encoding_at_the_cell_centre():
    pe = PositionEmbeddingRandom(16)
    grid = pe((5, 7))                                          # (32, 5, 7)
    for i, j in ((0, 0), (2, 3), (4, 6)):
        point = torch.tensor([[[j + 0.5, i + 0.5]]])             # the centre of cell (i, j) in a 7x5 "image"
        assert torch.allclose(pe.forward_with_coords(point, (5, 7))[0, 0], grid[:, i, j], atol=1e-6)


def test_point_prompt_pe_matches_dense_pe_of_its_patch(sam):
    """A click at the centre pixel of patch (i, j) is encoded like the embedding cell (i, j)."""
    penc = sam.prompt_encoder
    dense = penc.get_dense_pe()[0]                             # (C, 8, 8), patch 8 on 64 pixels
    for i, j in ((0, 0), (3, 5), (7, 7)):
        point = torch.tensor([[[8 * j + 4 - 0.5, 8 * i + 4 - 0.5]]])   # +0.5 (pixel centre) lands on the patch centre
        tok = penc._embed_points(point, torch.tensor([[1]]), pad=False)[0, 0] - penc.point_embeddings[1].weight[0]
        assert torch.allclose(tok, dense[:, i, j], atol=1e-5)


def test_pe_is_bounded_and_distinguishes_near_from_far():
    pe = PositionEmbeddingRandom(64)
    a, near, far = (pe._pe_encoding(torch.tensor(c)) for c in ([0.5, 0.5], [0.51, 0.5], [0.9, 0.1]))
    assert a.norm().item() == pytest.approx(8.0, abs=1e-4)      # sin^2 + cos^2 = 1 per feature pair: sqrt(64)
    assert (a @ near).item() > (a @ far).item() + 20


def test_padding_points_ignore_their_coordinates(sam):
    emb = sam.features
    pts = torch.tensor([[[10.0, 20.0], [0.0, 0.0]]])
    lab = torch.tensor([[1, -1]])
    m1, i1 = sam.decode(emb, pts, lab)
    m2, i2 = sam.decode(emb, torch.tensor([[[10.0, 20.0], [50.0, 3.0]]]), lab)
    assert torch.equal(m1, m2) and torch.equal(i1, i2)
    # and a padding point is exactly SAM's own padding (a point alone gets one appended)
    m3, _ = sam.decode(emb, pts[:, :1], lab[:, :1])
    sparse_explicit, _ = sam.prompt_encoder((pts, lab), torch.zeros(1, 4), None)
    sparse_auto, _ = sam.prompt_encoder((pts[:, :1], lab[:, :1]), None, None)
    assert torch.allclose(sparse_explicit[:, :2], sparse_auto)


def test_box_prompt_is_its_two_corner_tokens(sam):
    penc = sam.prompt_encoder
    box = torch.tensor([[5.0, 8.0, 40.0, 30.0]])
    sparse, _ = penc(None, box, None)
    assert sparse.shape == (1, 2, 32)
    corners = torch.tensor([[[5.0, 8.0], [40.0, 30.0]]])
    as_points, _ = penc((corners, torch.tensor([[1, 1]])), torch.zeros(1, 4), None)  # no padding point
    for k in range(2):
        box_pe = sparse[0, k] - penc.point_embeddings[2 + k].weight[0]
        point_pe = as_points[0, k] - penc.point_embeddings[1].weight[0]
        assert torch.allclose(box_pe, point_pe, atol=1e-6)


def test_mask_prompt_accepts_previous_low_res_logits(sam):
    first = sam.predict(points=[[20, 30]], labels=[1])
    assert first.masks.shape == (3, 64, 64) and first.low_res_logits.shape == (3, 32, 32)
    best = int(first.iou_predictions.argmax())
    again = sam.predict(points=[[20, 30], [40, 40]], labels=[1, 0],
                        mask_input=first.low_res_logits[best:best + 1], multimask_output=False)
    assert again.masks.shape == (1, 64, 64) and again.iou_predictions.shape == (1,)
    # the dense path is used: a different mask prompt gives different logits
    other = sam.predict(points=[[20, 30], [40, 40]], labels=[1, 0], mask_input=-first.low_res_logits[best:best + 1],
                        multimask_output=False)
    assert not torch.allclose(again.logits, other.logits)


def test_text_prompt_is_one_token_and_predicts(sam):
    feats = sam.encode_text(["the red triangle"])
    sparse, _ = sam.prompt_encoder(None, None, None, feats)
    assert sparse.shape == (1, 1, 32)
    pred = sam.predict(text="the red triangle")
    assert pred.masks.shape == (3, 64, 64)


def test_postprocess_thresholds_at_zero_and_resizes(sam):
    img = torch.rand(3, 40, 100)     # longest side 100 -> 64: input 26 x 64, padded below
    sam2 = Sam(sam.cfg).eval()
    sam2.set_image(img)
    assert sam2.input_size == (26, 64) and sam2.original_size == (40, 100)
    pred = sam2.predict(points=[[99, 39]], labels=[1])
    assert pred.masks.shape == (3, 40, 100)
    assert torch.equal(pred.masks, pred.logits > 0)


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 7, 5, 3)
    w, pad = window_partition(x, 3)
    assert w.shape == (2 * 3 * 2, 3, 3, 3) and pad == (9, 6)
    assert torch.equal(window_unpartition(w, 3, pad, (7, 5)), x)


def test_block_options_default_off_and_windowed_attention_is_local():
    plain = Block(16, 2)
    assert not hasattr(plain.attn, "rel_pos_h") and plain.window_size == 0
    torch.manual_seed(0)
    blk = Block(16, 2, window_size=2, rel_pos_size=(4, 4))
    assert blk.attn.rel_pos_h.shape == (3, 8)          # sized for the window (2 * 2 - 1)
    x = torch.randn(1, 16, 16)
    y = blk(x, hw=(4, 4))
    x2 = x.clone()
    x2[0, 15] += torch.randn(16)                       # the bottom-right token, in the last window
    y2 = blk(x2, hw=(4, 4))
    changed = (y2 - y).abs().sum(-1)[0] > 1e-6         # only tokens of that 2x2 window change
    assert changed.nonzero().flatten().tolist() == [10, 11, 14, 15]


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=[[70, 3]], labels=[1]), "points must lie inside"),
    (dict(points=[[-1, 3]], labels=[1]), "points must lie inside"),
    (dict(points=[[5, 3]], labels=[2]), "labels must be 1"),
    (dict(points=[[5, 3]], labels=[-1]), "labels must be 1"),
    (dict(points=[[5, 3], [6, 6]], labels=[1]), "same N"),
    (dict(points=[[5, 3]]), "points and labels"),
    (dict(box=[40, 5, 10, 30]), "box must have x0 <= x1"),
    (dict(box=[0, 5, 10, 70]), "box must lie inside"),
    (dict(box=[1, 2, 3]), "box must be"),
    (dict(mask_input=torch.zeros(1, 16, 16)), "mask_input must be"),
    (dict(text="the red banana"), "text: unknown words \\['banana'\\]"),
    (dict(text=""), "text must be"),
    (dict(), "at least one prompt"),
])
def test_bad_input_names_the_argument(sam, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sam.predict(**kwargs)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=[[NAN, 3]], labels=[1]), "points must be finite"),
    (dict(points=[[5, INF]], labels=[1]), "points must be finite"),
    (dict(points=[[5, 3]], labels=[NAN]), "labels must be finite"),
    (dict(points=[[5, 3]], labels=[0.5]), "labels must be 1"),
    (dict(points=[[1e30, 3]], labels=[1]), "points must lie inside"),
    (dict(points=[], labels=[]), "points must not be empty"),
    (dict(points=[[1, 2, 3], [4, 5, 6]], labels=[1, 1, 1]), "points must be \\(N, 2\\)"),
    (dict(points=[["a", "b"]], labels=[1]), "points must be numbers"),
    (dict(box=[NAN, 0, 10, 10]), "box must be finite"),
    (dict(box=[0, 0, INF, 10]), "box must be finite"),
    (dict(box=[[0, 0, 10, 10], [1, 1, 5, 5]]), "box must be"),
    (dict(mask_input=torch.full((1, 32, 32), NAN)), "mask_input must be finite"),
    (dict(text=3), "text must be"),
])
def test_hostile_prompts_raise_naming_the_argument(sam, kwargs, match):
    """A table of hostile values (NaN, inf, huge, empty, wrong rank, wrong type): each raises a
    ValueError naming the argument, never a result computed from garbage."""
    with pytest.raises(ValueError, match=match):
        sam.predict(**kwargs)


@pytest.mark.parametrize("image, match", [
    (torch.full((3, 64, 64), NAN), "image must be finite"),
    (torch.rand(3, 64, 64).index_fill_(1, torch.tensor([3]), INF), "image must be finite"),
    (torch.rand(3, 64, 64) * 255, "image values must lie in \\[0, 1\\]"),
    (-torch.rand(3, 64, 64), "image values must lie in \\[0, 1\\]"),
    (torch.randint(0, 2, (3, 64, 64)), "image must be float in \\[0, 1\\] or uint8"),
    (torch.zeros(3, 64, 64, dtype=torch.bool), "image must be float in \\[0, 1\\] or uint8"),
    (torch.rand(1, 3, 64, 64), "image must be a \\(3, H, W\\)"),
    (torch.rand(64, 64, 3), "image must be a \\(3, H, W\\)"),
    (torch.rand(3, 0, 64), "image must not be empty"),
    ([[0.5]], "image must be a \\(3, H, W\\)"),
])
def test_hostile_images_raise_naming_the_argument(sam, image, match):
    with pytest.raises(ValueError, match=match):
        sam.set_image(image)


def test_uint8_images_are_converted_explicitly(sam):
    """uint8 0..255 (segment-anything's predictor's input) gives the same embedding as x / 255."""
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    sam.set_image(img)
    a = sam.features.clone()
    sam.set_image(img.float() / 255)
    torch.testing.assert_close(sam.features, a)


def test_bad_images_and_configs():
    with pytest.raises(ValueError, match="image must be"):
        Sam().set_image(torch.rand(64, 64))
    with pytest.raises(ValueError, match="no image"):
        Sam().predict(points=[[1, 1]], labels=[1])
    with pytest.raises(ValueError, match="img_size"):
        ImageEncoderConfig(img_size=60, patch_size=8)
    with pytest.raises(ValueError, match="global_attn_indexes"):
        ImageEncoderConfig(depth=2, global_attn_indexes=(3,))
    with pytest.raises(ValueError, match="text"):
        Sam().predict  # noqa: B018  (attribute exists)
        Sam().encode_text(["red circle"])
    with pytest.raises(ValueError, match="hw must be"):
        Block(16, 2, window_size=2)(torch.randn(1, 16, 16))


def test_shared_hostile_table(sam):
    """The course's shared table of hostile values (tests/_hostile.py) through set_image and
    predict: every value is rejected with a ValueError naming the argument, or gives finite masks."""
    from _hostile import check_hostile, hostile_tensors

    image = torch.rand(3, 64, 64)

    def run_image(x):
        sam.set_image(x)
        return sam.predict(points=[[20, 30]], labels=[1])

    out = check_hostile(run_image, "image", hostile_tensors(image), must_reject=["one NaN", "all NaN", "one inf"])
    assert out["uint8 0-255"] == "valid" and out["huge"] == "rejected"
    sam.set_image(image)
    check_hostile(lambda p: sam.predict(points=p, labels=[1]), "points", hostile_tensors(torch.tensor([[20.0, 30.0]])),
                  must_reject=["one NaN", "one inf", "all NaN", "huge"])
    check_hostile(lambda b: sam.predict(box=b), "box", hostile_tensors(torch.tensor([10.0, 12.0, 40.0, 50.0])),
                  must_reject=["one NaN", "one inf", "all NaN"])
    check_hostile(lambda m: sam.predict(mask_input=m), "mask_input", hostile_tensors(torch.zeros(1, 32, 32)),
                  must_reject=["one NaN", "all NaN"])

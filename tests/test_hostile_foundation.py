"""Hostile input at the foundation's public entry points (tests/_hostile.py's table): ShapesWorld,
the checkpoint registry, the ViT and CLIP models, their tokenizer, loaders and zero-shot helpers.
Each call either raises a ValueError naming the argument or returns a valid (finite) result."""

from __future__ import annotations

import pytest
import torch

from _hostile import HUGE, Hostile, check_hostile, hostile_ints, hostile_numbers, hostile_tensors
from mmcourse import weights
from mmcourse.clip import CLIP, WordTokenizer
from mmcourse.clip.convert import from_hf_clip
from mmcourse.clip.tasks import shapes_clip_config
from mmcourse.clip.zero_shot import shapes_classnames, zero_shot_classifier, zero_shot_predict
from mmcourse.data.shapes import MAX_SCENES, ShapesWorld
from mmcourse.vit import VisionTransformer, ViTConfig, from_hf_vit, from_timm
from mmcourse.vit.tasks import predict

IMAGE_REJECTS = ["one NaN", "one inf", "one -inf", "all NaN", "float16", "int64", "uint8 0-255", "bool", "complex",
                 "one more dimension", "one dimension fewer", "last axis one too long", "a 0-d tensor",
                 "a numpy array", "a nested list", "a string", "None"]


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(depth=1, embed_dim=32, num_heads=2)).eval()


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return CLIP(shapes_clip_config()).eval()


def test_shapes_world_sample():
    world = ShapesWorld()
    check_hostile(lambda n: world.sample(n), "n", hostile_ints(4),
                  must_reject=["negative", "zero", "huge", "a float", "NaN", "a string", "None", "a bool"])
    out = check_hostile(lambda s: world.sample(2, seed=s), "seed", hostile_ints(4),
                        must_reject=["negative", "a float", "NaN", "a string", "None", "a bool"])
    assert out["huge"] == "valid"  # any non-negative int is a seed
    check_hostile(lambda s: world.sample(2, split=s), "split", hostile_numbers() + [Hostile("unknown", "val")],
                  must_reject=["unknown"])
    with pytest.raises(ValueError, match=f"n must be an int in 1..{MAX_SCENES:,}"):
        world.sample(MAX_SCENES + 1)


def test_shapes_world_render():
    world = ShapesWorld()
    obj = dict(shape="circle", colour="red", size="small", position="middle")
    check_hostile(lambda s: world.render([obj], seed=s), "seed", hostile_ints(1),
                  must_reject=["negative", "a float", "NaN", "a string", "None", "a bool"])
    check_hostile(lambda o: world.render(o), "objects", hostile_numbers() + [Hostile("empty list", [])],
                  must_reject=["empty list"])
    check_hostile(lambda c: world.render([{**obj, "colour": c}]), "colour",
                  hostile_tensors(torch.tensor([0.2, 0.3, 0.4])) + [Hostile("unknown name", "teal")],
                  must_reject=["one NaN", "one inf", "all NaN", "huge", "uint8 0-255", "one more dimension",
                               "empty (first axis 0)", "unknown name"])
    for key, bad in (("shape", "hexagon"), ("size", "medium"), ("position", "centre")):
        with pytest.raises(ValueError, match=key):
            world.render([{**obj, key: bad}])
    with pytest.raises(ValueError, match="own grid cell"):
        world.render([obj, {**obj, "shape": "square"}])


@pytest.mark.parametrize("argument, good", [("image_size", 32), ("max_objects", 1), ("min_objects", 1)])
def test_shapes_world_config(argument, good):
    check_hostile(lambda v: ShapesWorld(**{argument: v}), argument, hostile_ints(good),
                  valid=lambda w: isinstance(w, ShapesWorld),
                  must_reject=["negative", "zero", "huge", "a float", "NaN", "a string", "None", "a bool"])


def test_shapes_world_noise_and_modes():
    check_hostile(lambda v: ShapesWorld(noise=v), "noise", hostile_numbers(0.02), valid=lambda w: True,
                  must_reject=["NaN", "inf", "-inf", "negative", "huge", "a string", "None", "a bool"])
    check_hostile(lambda v: ShapesWorld(colour_mode=v), "colour_mode", hostile_numbers(), valid=lambda w: True)


def test_registry_names():
    check_hostile(lambda n: weights.load(n), "name", hostile_numbers() + [Hostile("unknown", "vit_huge")],
                  must_reject=["unknown", "None", "a string"])
    with pytest.raises(weights.CheckpointError):  # still the registry's own error class too
        weights.entry("vit_huge")


def test_vit_forward_and_predict(vit):
    x = torch.rand(2, 3, 32, 32)
    check_hostile(lambda v: vit(v), "x", hostile_tensors(x), must_reject=IMAGE_REJECTS)
    check_hostile(lambda v: predict(vit, v), "x", hostile_tensors(x), must_reject=IMAGE_REJECTS)
    with pytest.raises(ValueError, match="uint8 pixels"):
        vit((x * 255).to(torch.uint8))
    # large but plausible values are legal input and the logits stay finite; past 1e4 is refused
    assert torch.isfinite(vit(x * 1000)).all()
    with pytest.raises(ValueError, match="magnitude at most"):
        vit(x * 1e5)


def test_clip_encoders(clip):
    x = torch.rand(2, 3, 32, 32)
    check_hostile(lambda v: clip.encode_image(v), "x", hostile_tensors(x), must_reject=IMAGE_REJECTS)
    tokens = WordTokenizer()(["a red circle", "a large blue square at the top"])
    check_hostile(lambda t: clip.encode_text(t), "tokens", hostile_tensors(tokens),
                  must_reject=["bool", "complex", "one more dimension", "one dimension fewer", "a numpy array",
                               "a nested list", "a string", "None"])
    with pytest.raises(ValueError, match="tokens must be ids in 0..33"):
        clip.encode_text(tokens + 100)
    weights_ = zero_shot_classifier(clip, shapes_classnames()[:4], ["a {}"])
    check_hostile(lambda v: zero_shot_predict(clip, v, weights_), ("images", "x"), hostile_tensors(x),
                  must_reject=IMAGE_REJECTS + ["empty (first axis 0)"])


def test_tokenizer():
    tok = WordTokenizer()
    check_hostile(lambda t: tok(t), "text", hostile_numbers() + [Hostile("a list with a number", ["a red", 3])],
                  must_reject=["NaN", "None", "a list with a number"])
    with pytest.raises(ValueError, match="unknown word|not in the vocabulary|vocabulary"):
        tok("a teal hexagon")
    with pytest.raises(ValueError, match="context_length"):
        tok(" ".join(["red"] * 40))


def test_loaders(vit, clip):
    sd = vit.state_dict()
    check_hostile(lambda h: from_timm(sd, h), "num_heads", hostile_ints(2),
                  valid=lambda m: isinstance(m, VisionTransformer),
                  must_reject=["negative", "zero", "huge", "a float", "NaN", "a string", "a bool"])
    check_hostile(lambda c: from_hf_vit({"vit.embeddings.cls_token": torch.zeros(1, 1, 32)}, c), "config",
                  [h for h in hostile_numbers() if h.label != "None"])
    check_hostile(lambda c: from_hf_clip({}, c), "config", [h for h in hostile_numbers() if h.label != "None"])
    for fn in (from_hf_vit, from_hf_clip):
        check_hostile(fn, "state_dict", [Hostile("a tensor", torch.zeros(3)), Hostile("a list", [1, 2]),
                                         Hostile("None", None), Hostile("a string", "model.safetensors")])
    with pytest.raises(ValueError, match="state dict has no"):
        from_timm({"w": torch.zeros(1)})
    with pytest.raises(ValueError, match="state dict has no"):
        from_hf_clip({"w": torch.zeros(1)})
    # a misshapen tensor is named
    bad = dict(sd)
    bad["pos_embed"] = torch.zeros(1, 3, 32)
    with pytest.raises(ValueError):
        from_timm(bad, 2)


def test_pretrained_file_loaders(tmp_path):
    from mmcourse.clip.convert import load_hf_clip_file
    from mmcourse.vit.pretrained import load_pretrained

    check_hostile(load_pretrained, "path", [Hostile("None", None), Hostile("a number", 3.0), Hostile("a tensor", torch.zeros(2))])
    for loader in (load_pretrained, load_hf_clip_file):
        with pytest.raises(FileNotFoundError, match="no_such.safetensors"):
            loader(str(tmp_path / "no_such.safetensors"))


def test_hostile_table_itself_is_hostile():
    """The shared table covers NaN, inf, wrong dtype, wrong rank, empty and huge values."""
    labels = {h.label for h in hostile_tensors(torch.rand(2, 3))}
    assert {"one NaN", "one inf", "float16", "int64", "one more dimension", "empty (first axis 0)", "huge"} <= labels
    assert HUGE > 1e20
    with pytest.raises(AssertionError, match="must be rejected"):
        check_hostile(lambda v: 0.0, "x", [Hostile("NaN", float("nan"))], must_reject=["NaN"])
    with pytest.raises(AssertionError, match="raised TypeError"):
        check_hostile(lambda v: v + "s", "x", [Hostile("a number", 1)])
    with pytest.raises(AssertionError, match="does not name"):
        check_hostile(lambda v: (_ for _ in ()).throw(ValueError("bad")), "x", [Hostile("a number", 1)])
    with pytest.raises(AssertionError, match="invalid result"):
        check_hostile(lambda v: torch.tensor(float("nan")), "x", [Hostile("a number", 1)])

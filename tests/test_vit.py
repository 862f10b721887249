"""mmcourse.vit: cross-checks against timm and transformers, the kernels' properties, the
exercise checker, the notebook's widget callbacks and the shipped checkpoints."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcourse.vit import (
    PatchEmbed, SmallCNN, ViTConfig, VisionTransformer, attention_rollout, cls_attention_map, count_parameters,
    from_hf_vit, from_timm, hf_vit_to_timm, patchify, unpatchify,
)

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def _images(n=4, size=32, chans=3, seed=0):
    return torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Cross-checks with the reference libraries (tiny random models, nothing downloaded)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timm_vit():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    torch.manual_seed(0)
    return TimmViT(**TINY).eval()


def test_timm_state_dict_loads_without_renaming_and_logits_match(timm_vit):
    ours = VisionTransformer(ViTConfig(**TINY))
    ours.load_state_dict(timm_vit.state_dict(), strict=True)  # the same names and shapes
    ours.eval()
    x = _images()
    with torch.no_grad():
        want = timm_vit(x)
        torch.testing.assert_close(ours(x), want, atol=1e-5, rtol=0)
        # The path that also returns attention weights computes the same logits.
        torch.testing.assert_close(ours(x, return_attn=True)[0], want, atol=1e-5, rtol=0)
        torch.testing.assert_close(from_timm(timm_vit.state_dict(), num_heads=2)(x), want, atol=1e-5, rtol=0)


def test_clip_style_options_match_timm_pre_norm_and_quick_gelu():
    """CLIP's image tower: a LayerNorm before the blocks, no patch-conv bias, QuickGELU (timm's
    ``pre_norm=True, act_layer="quick_gelu"``). The plain ViT keeps no ``norm_pre`` keys at all."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    torch.manual_seed(1)
    ref = TimmViT(**TINY, pre_norm=True, act_layer="quick_gelu").eval()
    with torch.no_grad():  # timm's init is tiny (LayerNorms the identity): make every weight matter
        for p in ref.parameters():
            p.normal_(std=0.3)
    ours = VisionTransformer(ViTConfig(**TINY, pre_norm=True, act="quick_gelu")).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert "patch_embed.proj.bias" not in ours.state_dict()
    assert "norm_pre.weight" not in VisionTransformer(ViTConfig(**TINY)).state_dict()
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)
        gelu = VisionTransformer(ViTConfig(**TINY, pre_norm=True)).eval()
        gelu.load_state_dict(ref.state_dict())
        assert (gelu(x) - ref(x)).abs().max() > 1e-4  # the activation is really used
        loaded = from_timm(ref.state_dict(), num_heads=2)
    assert loaded.cfg.pre_norm
    with pytest.raises(ValueError, match="act must be one of"):
        ViTConfig(act="relu")


def test_attention_weights_match_timms_manual_attention(timm_vit):
    """timm's unfused attention path computes softmax(q kᵀ / sqrt(d)) explicitly: compare layer 0."""
    ours = from_timm(timm_vit.state_dict(), num_heads=2)
    x = _images(2)
    blk = timm_vit.blocks[0]
    with torch.no_grad():
        tokens = ours.embed(x)
        h = blk.norm1(tokens)
        B, T, D = h.shape
        q, k, _ = blk.attn.qkv(h).reshape(B, T, 3, 2, D // 2).permute(2, 0, 3, 1, 4)
        want = (q * blk.attn.scale @ k.transpose(-2, -1)).softmax(-1)
        _, attns = ours(x, return_attn=True)
    torch.testing.assert_close(attns[0], want, atol=1e-6, rtol=1e-5)


def _hf_model(eps=None):
    from transformers import ViTConfig as HFConfig, ViTForImageClassification

    kw = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=128, num_labels=5)
    if eps is not None:
        kw["layer_norm_eps"] = eps
    torch.manual_seed(0)
    cfg = HFConfig(**kw)
    return ViTForImageClassification(cfg).eval(), cfg


def test_transformers_vit_maps_onto_ours_and_logits_match():
    hf, cfg = _hf_model()
    assert cfg.layer_norm_eps == 1e-12  # transformers' default, unlike timm's 1e-6
    ours = from_hf_vit(hf.state_dict(), cfg)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(pixel_values=x).logits, atol=1e-5, rtol=0)
    assert ours.norm.eps == 1e-12 and ours.blocks[0].norm1.eps == 1e-12


def test_transformers_v4_key_names_are_accepted_too():
    hf, cfg = _hf_model(eps=1e-6)
    v5 = hf.state_dict()
    v4 = {}
    for k, v in v5.items():  # the names transformers 4 wrote into checkpoint files
        k = k.replace("vit.layers.", "vit.encoder.layer.")
        for new, old in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                         ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense"),
                         ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            k = k.replace(new, old)
        v4[k] = v
    assert any("attention.attention.query" in k for k in v4)
    a = hf_vit_to_timm(v4)
    b = hf_vit_to_timm(v5)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loaders_fail_loudly_on_missing_or_misshapen_weights(timm_vit):
    sd = dict(timm_vit.state_dict())
    del sd["blocks.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match=r"missing \['blocks.1.mlp.fc2.bias'\]"):
        from_timm(sd, num_heads=2)
    hf, _ = _hf_model()
    sd = dict(hf.state_dict())
    del sd["vit.layers.0.attention.k_proj.weight"]
    with pytest.raises(ValueError, match="q, k, v"):
        from_hf_vit(sd, {"num_attention_heads": 2})
    sd = dict(hf.state_dict())
    sd["vit.layers.0.attention.gate.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected key"):
        from_hf_vit(sd, {"num_attention_heads": 2})


def test_pretrained_file_loader_reads_a_timm_safetensors_file(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from mmcourse.vit import pretrained

    torch.manual_seed(1)
    ref = VisionTransformer(ViTConfig(img_size=32, patch_size=16, embed_dim=128, depth=1, num_heads=2, num_classes=7))
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    monkeypatch.delenv(pretrained.ENV_VAR, raising=False)
    assert pretrained.weights_path() is None and pretrained.ENV_VAR in pretrained.HOW_TO_GET
    monkeypatch.setenv(pretrained.ENV_VAR, str(path))
    model = pretrained.load_pretrained(pretrained.weights_path())
    assert model.cfg.num_heads == 2 and model.cfg.num_classes == 7  # 128 channels / 64 per head
    photo = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    x = pretrained.preprocess(photo, 32)
    assert x.shape == (1, 3, 32, 32) and -1 <= x.min() and x.max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.eval()(x))
    top = pretrained.top_k(model, x, k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    labels = pretrained.imagenet_labels()
    assert labels is None or (len(labels) == 1000 and labels[285] == "Egyptian cat")


# ---------------------------------------------------------------------------------------------
# Kernel properties
# ---------------------------------------------------------------------------------------------


def test_forward_returns_one_attention_map_per_block_whose_rows_sum_to_one():
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(**TINY)).eval()
    x = _images(3)
    with torch.no_grad():
        logits, attns = model(x, return_attn=True)
        torch.testing.assert_close(model(x), logits, atol=1e-5, rtol=1e-5)
    assert logits.shape == (3, 5) and len(attns) == 2
    for a in attns:
        assert a.shape == (3, 2, 17, 17) and (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 17))


def test_patchify_then_unpatchify_is_the_identity_and_patch_order_is_raster():
    x = _images(2, size=12, chans=3)
    p = patchify(x, 4)
    assert p.shape == (2, 9, 48)
    torch.testing.assert_close(unpatchify(p, 4), x, atol=0, rtol=0)
    # patch 5 = row 1, column 2 of the 3x3 grid
    torch.testing.assert_close(p[:, 5].reshape(2, 3, 4, 4), x[:, :, 4:8, 8:12], atol=0, rtol=0)
    rect = torch.randn(1, 2, 8, 12)
    torch.testing.assert_close(unpatchify(patchify(rect, 4), 4, grid_size=(2, 3)), rect, atol=0, rtol=0)


def test_patch_embedding_is_a_linear_map_of_the_flattened_patches():
    torch.manual_seed(0)
    pe = PatchEmbed(img_size=16, patch_size=4, in_chans=3, embed_dim=10)
    x = _images(2, size=16)
    W, b = pe.proj.weight, pe.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(pe(x), patchify(x, 4) @ W.reshape(10, -1).T + b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: PatchEmbed(img_size=30, patch_size=8),
    lambda: ViTConfig(img_size=30, patch_size=8),
    lambda: patchify(torch.zeros(1, 3, 30, 32), 8),
    lambda: VisionTransformer(ViTConfig(**TINY))(torch.zeros(1, 3, 30, 32)),
])
def test_bad_image_sizes_raise_value_error_naming_both_numbers(make):
    with pytest.raises(ValueError, match=r"30 is not divisible by patch_size 8"):
        make()


def test_other_bad_inputs_name_the_argument():
    model = VisionTransformer(ViTConfig(**TINY))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        model(torch.zeros(1, 3, 16, 16))  # divisible, but not the size the position embeddings know
    with pytest.raises(ValueError, match="channels"):
        model.patch_embed(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="num_heads"):
        ViTConfig(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout([torch.ones(1, 1, 2, 2) / 2], head_fusion="median")


def test_rollout_rows_sum_to_one_and_reduce_to_known_cases():
    g = torch.Generator().manual_seed(0)
    attns = [torch.rand(2, 3, 5, 5, generator=g).softmax(-1) for _ in range(3)]
    r = attention_rollout(attns)
    assert r.shape == (2, 5, 5)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5))
    # One layer without the residual term is just the head-averaged attention.
    torch.testing.assert_close(attention_rollout(attns[:1], residual=False), attns[0].mean(1))
    # Attention that only looks at itself leaves every token unmixed.
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))
    m = cls_attention_map(r)
    assert m.shape == (2, 2, 2) and torch.allclose(m.flatten(1).amax(1), torch.ones(2))


def test_cnn_baseline_has_a_similar_parameter_count_to_the_shapes_vit():
    from mmcourse.vit.tasks import CNN_FOR, SHAPES_VIT, DIGITS_VIT

    for cfg in (SHAPES_VIT, DIGITS_VIT):
        vit, cnn = VisionTransformer(cfg), SmallCNN(CNN_FOR[cfg.img_size])
        ratio = count_parameters(cnn) / count_parameters(vit)
        assert 0.6 < ratio < 1.6, ratio
        assert cnn(torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size)).shape == (2, cfg.num_classes)


def test_random_shift_moves_each_image_by_its_own_offset():
    from mmcourse.vit.tasks import random_shift

    x = torch.arange(2 * 36.0).reshape(2, 1, 6, 6)
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)
    y = random_shift(x, 1, torch.Generator().manual_seed(0), fill=-1.0)
    assert y.shape == x.shape
    for i in range(2):  # every output equals the input shifted by some (dy, dx) in {-1, 0, 1}^2
        ok = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                padded = F.pad(x[i], (1, 1, 1, 1), value=-1.0)
                ok |= torch.equal(y[i], padded[:, 1 + dy : 7 + dy, 1 + dx : 7 + dx])
        assert ok


def test_shapes_task_labels_and_colour_mix():
    from mmcourse.data.shapes import HELDOUT_COMBOS, SHAPES, COLOUR_NAMES
    from mmcourse.vit.tasks import shapes_task

    x, shape, colour = shapes_task(40, seed=0, random_colour_fraction=0.5)
    assert x.shape == (40, 3, 32, 32) and shape.shape == colour.shape == (40,)
    held = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELDOUT_COMBOS}
    assert not any((int(c), int(s)) in held for c, s in zip(colour, shape))
    _, hs, hc = shapes_task(20, seed=0, split="heldout")
    assert all((int(c), int(s)) in held for c, s in zip(hc, hs))


# ---------------------------------------------------------------------------------------------
# The exercise checker
# ---------------------------------------------------------------------------------------------


def _sdpa(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def _no_scale(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def _wrong_dim(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-2) @ v


def _ignores_mask(q, k, v, mask=None):
    return _sdpa(q, k, v)


def _naive_exp(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    e = scores.exp()
    if mask is not None:
        e = e * mask
    return e / e.sum(-1, keepdim=True) @ v


def test_checker_accepts_the_reference_and_rejects_plausible_mistakes(capsys):
    from mmcourse.checks import check_scaled_dot_product_attention

    assert check_scaled_dot_product_attention(_sdpa)
    assert "✓" in capsys.readouterr().out
    for wrong, hint in ((_no_scale, "case 1"), (_wrong_dim, "case 1"), (_ignores_mask, "mask"),
                        (_naive_exp, "huge scores")):
        assert not check_scaled_dot_product_attention(wrong), wrong.__name__
        out = capsys.readouterr().out
        assert "✗" in out and hint in out, (wrong.__name__, out)


# ---------------------------------------------------------------------------------------------
# Widget callbacks (headless)
# ---------------------------------------------------------------------------------------------


def test_patch_view_counts_patches_and_rejects_sizes_that_do_not_divide():
    from mmcourse.vit.widgets import DIGIT, PATCH_SIZES, PHOTO, SCENE, example_image, patch_view

    for name in (PHOTO, DIGIT, SCENE):
        img = example_image(name)
        assert img.ndim == 3 and 0 <= img.min() and img.max() <= 1
        for p in PATCH_SIZES[name]:
            assert img.shape[1] % p == 0
    v = patch_view(SCENE, 8)
    assert v.png.startswith(b"\x89PNG") and v.num_patches == 16 and v.patch_length == 192 and v.grid == (4, 4)
    assert patch_view(PHOTO, 16).num_patches == 196
    with pytest.raises(ValueError, match="32 is not divisible by patch_size 5"):
        patch_view(SCENE, 5)
    with pytest.raises(ValueError, match="image must be one of"):
        patch_view("a cat", 8)


def test_attention_view_and_viewer_widget_update_headless():
    from mmcourse.vit.widgets import attention_view, attention_viewer, plot_pos_embed_similarity, pos_embed_similarity

    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(**TINY)).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        _, attns = model(x, return_attn=True)
    png = attention_view(x[0], [a[0] for a in attns], layer=2, head=1, title="t")
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="layer must be in 1..2"):
        attention_view(x[0], [a[0] for a in attns], layer=3)
    with pytest.raises(ValueError, match="head must be"):
        attention_view(x[0], [a[0] for a in attns], head=5)

    box = attention_viewer(model, x, ["a", "b", "c"])
    pick, layer, head = box.children[0].children
    image = box.children[1]
    first = image.value
    pick.value = 2
    assert image.value != first and bytes(image.value).startswith(b"\x89PNG")
    before = image.value
    head.value = 2
    assert image.value != before

    sim = pos_embed_similarity(model)
    assert sim.shape == (4, 4, 4, 4)
    torch.testing.assert_close(torch.einsum("ijij->ij", sim), torch.ones(4, 4))
    fig = plot_pos_embed_similarity(model)
    texts = {t.get_text() for t in fig.texts}
    assert any(t.startswith("patch row") for t in texts) and any(t.startswith("patch column") for t in texts)
    grid = [ax for ax in fig.axes if ax.get_images() and ax.get_ylabel() in {"0", "1", "2", "3"}]
    assert sorted(ax.get_ylabel() for ax in grid) == ["0", "1", "2", "3"]  # one row label per grid row


def test_patch_explorer_switches_patch_sizes_with_the_picture():
    from mmcourse.vit.widgets import DIGIT, PATCH_SIZES, patch_explorer

    box = patch_explorer()
    picture, size = box.children[0].children
    image = box.children[1]
    first = image.value
    picture.value = DIGIT
    assert tuple(size.options) == PATCH_SIZES[DIGIT] and size.value in PATCH_SIZES[DIGIT]
    assert image.value != first


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints
# ---------------------------------------------------------------------------------------------


def test_shipped_vit_checkpoints_state_their_targets_under_the_protocol():
    """The registry's ViT numbers come from the protocol's test draws, with standard errors and the
    builder's targets (test_weights_check.py's slow tests measure the files again on the test and
    the check draws)."""
    from mmcourse import weights
    from mmcourse.weights.build import TARGETS

    for name, bound in (("vit_digits", 0.98), ("vit_shapes", 0.995), ("vit_shapes_broad", 0.995)):
        e = weights.entry(name)
        assert e.targets == TARGETS[name] == {"test_accuracy": {"min": bound}}
        assert e.estimate("test_accuracy").value >= bound, name
    # Broad (random-colour) training transfers to unseen colour-shape pairs; named-only does less
    # so: the gap is many standard errors wide.
    broad, named = (weights.entry(n).estimate("heldout_accuracy") for n in ("vit_shapes_broad", "vit_shapes"))
    assert broad.n >= 3000 and broad.value - named.value > 0.1 + 3 * (broad.se ** 2 + named.se ** 2) ** 0.5


def test_shapes_eval_sets_draws_only_the_splits_asked_for_and_the_same_scenes():
    from mmcourse.vit.tasks import SHAPES_EVAL, shapes_eval_sets

    held = shapes_eval_sets(splits=("heldout",))
    assert list(held) == ["heldout"] and len(held["heldout"][1]) == SHAPES_EVAL["n_heldout"]
    full = shapes_eval_sets()
    assert torch.equal(held["heldout"][0], full["heldout"][0]) and torch.equal(held["heldout"][1], full["heldout"][1])
    for bad in ((), ("val",), "heldout"):
        with pytest.raises(ValueError, match="splits"):
            shapes_eval_sets(splits=bad)


def test_class_token_share_and_patches_touching_on_hand_made_attention():
    from mmcourse.vit import class_token_share, patches_touching

    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :2, :2] = True          # image 0: patch 0 only (patch 4x4 grid of 2x2 patches)
    masks[1, 3:5, 3:5] = True        # image 1: touches patches 5, 6, 9, 10
    sel = patches_touching(masks, 2)
    assert sel.shape == (2, 16)
    assert sel[0].nonzero().flatten().tolist() == [0]
    assert sel[1].nonzero().flatten().tolist() == [5, 6, 9, 10]
    T = 17
    a = torch.full((2, 1, T, T), 1.0 / T)            # uniform attention: share = selected / 16
    layers, roll = class_token_share([a, a], sel)
    torch.testing.assert_close(layers, torch.tensor([(1 / 16 + 4 / 16) / 2] * 2))
    assert abs(roll - (1 / 16 + 4 / 16) / 2) < 1e-6   # rollout of uniform maps stays uniform on patches
    b = torch.zeros(2, 1, T, T)
    b[..., 0, 1] = 1.0                                # class token looks only at patch 0
    b[..., 1:, 1:] = torch.eye(T - 1)
    layers, _ = class_token_share([b], sel)
    assert layers.tolist() == [0.5]                   # all on target for image 0, none for image 1
    with pytest.raises(ValueError, match="selected must have shape"):
        class_token_share([a], sel[:, :3])


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    from mmcourse.vit.tasks import confusion_matrix

    cm = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="class indices in 0..2"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)


def test_expect_prints_value_and_target_and_fails_loudly(capsys):
    from mmcourse.checks.vit import expect, format_bound

    assert expect("accuracy", 0.96661, "≥ 0.95") is None  # nothing for a cell to echo
    assert capsys.readouterr().out == "accuracy 0.967 (target ≥ 0.95)\n"
    expect("difference", torch.tensor(3.2e-7), "≤ 1e-5", fmt="bound")
    assert capsys.readouterr().out == "difference ≤ 1e-6 (target ≤ 1e-5)\n"
    assert format_bound(0.0) == "0" and format_bound(1e-6) == "≤ 1e-6" and format_bound(0.02) == "≤ 1e-1"
    with pytest.raises(AssertionError, match="accuracy: 0.5 misses the target ≥ 0.95"):
        expect("accuracy", 0.5, "≥ 0.95")
    with pytest.raises(AssertionError):
        expect("gap", 2e-5, "< 1e-5", fmt="bound")
    with pytest.raises(ValueError, match="target must start"):
        expect("accuracy", 0.9, ">= 0.95")
    with pytest.raises(ValueError, match="must end with a number"):
        expect("accuracy", 0.9, "≥ high")
    with pytest.raises(ValueError, match="value must be >= 0"):
        format_bound(-1.0)


def test_load_results_reads_stored_json_and_names_the_known_ones():
    from mmcourse.vit.tasks import load_results

    assert load_results("vit_data_size")["rows"]
    with pytest.raises(FileNotFoundError, match="vit_data_size"):
        load_results("no_such_result")


def test_stored_ablations_cover_the_notebooks_choices():
    from mmcourse.vit.tasks import load_results

    rows = load_results("vit_ablations")["rows"]
    assert {(r["task"], r["choice"]) for r in rows} == {
        ("digits", "4x4 patches"), ("digits", "2x2 patches"), ("shapes", "raw pixels in [0, 1]"),
        ("shapes", "rescaled to [-1, 1]"), ("shapes", "background subtracted")}
    assert sum(r["notebook"] for r in rows) == 2 and all(0 <= r["accuracy"] <= 1 for r in rows)

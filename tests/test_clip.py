"""mmcourse.clip: tokenizer, towers, loss properties, zero-shot, retrieval, widgets and checkers."""

import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")

from mmcourse.checks import check_build_zero_shot_weights, check_clip_loss  # noqa: E402
from mmcourse.checks.clip import FakeTextTower, build_zero_shot_weights_reference, clip_loss_reference  # noqa: E402
from mmcourse.clip import (CLIP, WordTokenizer, build_zero_shot_weights, caption_ids, clip_loss,  # noqa: E402
                           duplicate_mask, false_negative_stats, recall_at_k, shapes_classnames,
                           shapes_templates, zero_shot_classifier)
from mmcourse.clip.model import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE  # noqa: E402
from mmcourse.clip.tasks import GRAD_CLIP, contrastive_loss_fn, sample_pairs, shapes_clip_config  # noqa: E402
from mmcourse.data.shapes import ShapesWorld  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CLIP(shapes_clip_config()).eval()


# -- tokenizer ---------------------------------------------------------------------------------


def test_tokenizer_covers_every_shapesworld_caption_and_round_trips():
    tok = WordTokenizer()
    batch = ShapesWorld().sample(500, seed=0, split="all")
    ids = tok(batch.captions)
    assert ids.shape == (500, 16) and ids.dtype == torch.long
    assert all(tok.decode(row) == c for row, c in zip(ids, batch.captions))
    assert (ids[:, 0] == tok.sot_token_id).all()
    # the end token is the largest id in every row (OpenAI's argmax pooling relies on it)
    assert (ids.argmax(1) == (ids == tok.eot_token_id).int().argmax(1)).all()
    assert tok.eot_token_id == tok.vocab_size - 1 and tok.pad_token_id == 0


def test_tokenizer_errors_name_the_word_and_its_nearest_neighbours():
    tok = WordTokenizer()
    with pytest.raises(ValueError, match=r"unknown word 'cirle'.*nearest known words: circle"):
        tok("a small red cirle")
    with pytest.raises(ValueError, match="context_length"):
        tok("a " * 20)
    assert tok("a " * 20, truncate=True)[0, -1] == tok.eot_token_id
    assert tok.decode(tok("A Small, RED circle!")[0]) == "a small red circle"


# -- towers ------------------------------------------------------------------------------------


def test_text_tower_is_causal_and_ignores_padding(model):
    tok = WordTokenizer()
    ids = tok(["a small red circle", "a small red circle at the top"])
    feats = model.text.forward_features(ids)
    # the first 4 positions see the same prefix, whatever comes later
    assert torch.allclose(feats[0, :4], feats[1, :4], atol=1e-6)
    # changing the padding after the end token changes nothing that is pooled
    padded = ids.clone()
    padded[0, 8:] = 5
    assert torch.allclose(model.encode_text(ids)[0], model.encode_text(padded)[0], atol=1e-6)
    # trimming padding columns is harmless too
    assert torch.allclose(model.encode_text(ids[:, :9]), model.encode_text(ids), atol=1e-5)


def test_model_shapes_scale_and_clamp(model):
    images = torch.rand(3, 3, 32, 32)
    ids = WordTokenizer()(["a small red circle", "a large blue square", "there is a small green cross"])
    img, txt, scale = model(images, ids)
    assert img.shape == txt.shape == (3, 64)
    assert torch.allclose(img.norm(dim=1), torch.ones(3)) and torch.allclose(txt.norm(dim=1), torch.ones(3))
    assert abs(scale.item() - 1 / 0.07) < 1e-4 and abs(INIT_LOGIT_SCALE - math.log(1 / 0.07)) < 1e-12
    lpi, lpt = model.logits(images, ids)
    assert torch.equal(lpi, lpt.T) and lpi.shape == (3, 3)
    m = CLIP(shapes_clip_config())
    with torch.no_grad():
        m.logit_scale.fill_(7.0)
    m.clamp_logit_scale()
    assert m.logit_scale.item() == pytest.approx(MAX_LOGIT_SCALE) and math.exp(MAX_LOGIT_SCALE) == pytest.approx(100)


def test_text_tower_rejects_rows_without_an_end_token(model):
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="end-of-text"):
        model.encode_text(ids)


# -- loss properties -----------------------------------------------------------------------------


def test_loss_is_symmetric_under_swapping_the_towers():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(9, 16, generator=g), torch.randn(9, 16, generator=g)
    assert torch.allclose(clip_loss(img, txt, 20.0), clip_loss(txt, img, 20.0), atol=1e-6)
    # the two directions differ on their own: the symmetric loss is their mean
    logits = 20.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    i2t, t2i = F.cross_entropy(logits, torch.arange(9)), F.cross_entropy(logits.T, torch.arange(9))
    assert abs(i2t - t2i) > 1e-3 and torch.allclose(clip_loss(img, txt, 20.0), (i2t + t2i) / 2)


def test_aligned_unit_features_with_a_large_scale_give_a_loss_near_zero():
    feats = torch.eye(8)  # orthogonal unit vectors: cosine 1 on the diagonal, 0 elsewhere
    assert clip_loss(feats, feats.clone(), 100.0).item() < 1e-6
    assert clip_loss(feats, feats.clone(), 1.0).item() > 0.5  # a small scale cannot be confident
    assert clip_loss(feats[:1], feats[:1], 1.0).item() == 0.0  # batch of one: nothing to confuse
    # random features: the loss is about ln(B)
    g = torch.Generator().manual_seed(1)
    assert abs(clip_loss(torch.randn(256, 64, generator=g), torch.randn(256, 64, generator=g), 1.0).item()
               - math.log(256)) < 0.05


def test_duplicate_masking_removes_exactly_the_duplicate_pairs():
    captions = ["a", "b", "a", "c", "b", "a"]
    ids = caption_ids(captions)
    assert ids.tolist() == [0, 1, 0, 3, 1, 0]
    dup = duplicate_mask(ids)
    expected = {(0, 2), (2, 0), (0, 5), (5, 0), (2, 5), (5, 2), (1, 4), (4, 1)}
    assert {tuple(p) for p in dup.nonzero().tolist()} == expected
    g = torch.Generator().manual_seed(2)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    masked = clip_loss(img, txt, 10.0, ids)
    # by hand: drop the duplicate entries from each row's and each column's softmax
    logits = 10.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    rows = [-(logits[i, i] - logits[i][~dup[i]].logsumexp(0)) for i in range(6)]
    cols = [-(logits[i, i] - logits[:, i][~dup[:, i]].logsumexp(0)) for i in range(6)]
    assert torch.allclose(masked, (torch.stack(rows).mean() + torch.stack(cols).mean()) / 2, atol=1e-6)
    # without duplicates, masking changes nothing; with them it lowers the loss
    assert torch.allclose(clip_loss(img, txt, 10.0, torch.arange(6)), clip_loss(img, txt, 10.0))
    assert masked < clip_loss(img, txt, 10.0)


def test_false_negative_stats_count_duplicates():
    s = false_negative_stats(torch.tensor([0, 0, 1, 2]))
    assert s == {"share": pytest.approx(2 / 12), "per_row": 0.5, "rows_hit": 0.5}
    assert false_negative_stats(torch.tensor([0]))["share"] == 0.0


def test_loss_validates_its_inputs():
    with pytest.raises(ValueError, match="image_features and text_features"):
        clip_loss(torch.zeros(3, 4), torch.zeros(4, 4), 1.0)
    with pytest.raises(ValueError, match="caption_ids"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0, torch.zeros(2, dtype=torch.long))


@pytest.mark.slow  # about 4 s: real training steps (make test runs it)
def test_a_few_training_steps_lower_the_loss():
    from mmcourse.train import fit

    torch.manual_seed(0)
    m = CLIP(shapes_clip_config())
    loss_fn = contrastive_loss_fn("named", batch_size=32)
    hist = fit(m, loss_fn, steps=100, lr=1e-3, seed=0, warmup=20, grad_clip=GRAD_CLIP, progress=False)
    assert sum(hist.loss[-10:]) / 10 < math.log(32) - 0.4  # below chance, ln B
    assert m.logit_scale.item() <= MAX_LOGIT_SCALE + 1e-6


# -- zero-shot and retrieval ---------------------------------------------------------------------


def test_zero_shot_weights_are_normalised_means_of_normalised_prompts():
    enc = FakeTextTower(8)
    w = build_zero_shot_weights(enc, ["red circle", "blue square"], ["a {}", "the {}", "one {}"])
    assert w.shape == (8, 2) and torch.allclose(w.norm(dim=0), torch.ones(2))
    by_hand = F.normalize(F.normalize(enc(["a red circle", "the red circle", "one red circle"]), dim=-1).mean(0), dim=0)
    assert torch.allclose(w[:, 0], by_hand, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        build_zero_shot_weights(enc, ["x"], ["no placeholder"])


def test_shapes_prompts_and_classifier(model):
    names = shapes_classnames()
    assert len(names) == 30 and names[:2] == ["a red circle", "a red square"] and names[-1] == "an orange cross"
    ens = shapes_templates("ensemble")
    assert len(ens) == 49 and len(set(ens)) == 49 and all(t.count("{}") == 1 for t in ens)
    assert "at the top left there is {}" in ens and "a picture of {} on the right" in ens
    assert shapes_templates("bare") == ["{}"] and len(shapes_templates("scene")) == 4
    tok = WordTokenizer()
    tok([t.format(c) for t in ens for c in names])  # every prompt is in the vocabulary and fits
    w = zero_shot_classifier(model, names, shapes_templates("scene"))
    assert w.shape == (64, 30) and torch.allclose(w.norm(dim=0), torch.ones(30), atol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        shapes_templates("fancy")


def test_captions_with_less_detail_read_like_shapesworld():
    from mmcourse.clip.tasks import caption_with_detail

    assert caption_with_detail(2, "circle", "red", "small", "top left") == "a picture of a small red circle at the top left"
    assert caption_with_detail(2, "circle", "orange", None, "top left") == "a picture of an orange circle at the top left"
    assert caption_with_detail(4, "cross", "blue", "large", None) == "there is a large blue cross"
    assert caption_with_detail(4, "cross", None, None, "middle") == "in the middle there is a cross"
    world = ShapesWorld()
    b = world.sample(50, seed=4)
    # with every detail kept, it is ShapesWorld's own caption for templates 0 and 4 alike
    for i in range(50):
        s = b[i].objects[0]
        assert b.captions[i] in {caption_with_detail(t, s["shape"], s["colour"], s["size"], s["position"]) for t in range(5)}


def test_recall_at_k():
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.7, 0.6]])
    eye = torch.eye(3, dtype=torch.bool)
    assert recall_at_k(sim, eye, 1) == pytest.approx(1 / 3)   # only query 0 ranks its own item first
    assert recall_at_k(sim, eye, 2) == pytest.approx(1.0)
    loose = eye | torch.tensor([[0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    assert recall_at_k(sim, loose, 1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(sim, eye, 4)


def test_pairs_follow_their_data_kind():
    named = sample_pairs(200, seed=0)
    assert named.images.shape == (200, 3, 32, 32) and len(named) == 200
    broad = sample_pairs(200, seed=0, data="broad")
    no_colour = [c for c in broad.captions if not any(w in c.split() for w in
                                                      ("red", "green", "blue", "yellow", "purple", "orange"))]
    assert len(no_colour) == 50  # a quarter of a broad batch has no colour word
    classes = sample_pairs(500, seed=0, data="classes")
    assert len(set(classes.captions)) == 24  # 30 classes minus the 6 held-out pairs
    detail, full = sample_pairs(400, seed=0, drop=0.5), sample_pairs(400, seed=0)
    assert 150 < sum("small" not in c and "large" not in c for c in detail.captions) < 250  # size dropped: ~1/2
    assert 60 < sum(a == b for a, b in zip(detail.captions, full.captions)) < 140  # both kept: ~1/4
    held = sample_pairs(100, seed=0, split="heldout")
    assert {(int(c), int(s)) for c, s in zip(held.colour, held.shape)} <= {(0, 1), (1, 2), (2, 0), (3, 3), (4, 4), (5, 0)}


# -- widgets -------------------------------------------------------------------------------------


def test_similarity_view_temperature_sharpens_and_flattens(model):
    from mmcourse.clip.widgets import similarity_view

    sharp, flat = similarity_view(model, seed=1, temperature=0.01), similarity_view(model, seed=1, temperature=1.0)
    assert sharp.png.startswith(PNG) and sharp.cosine.shape == (6, 6)
    assert torch.allclose(sharp.cosine, flat.cosine)
    assert torch.allclose(sharp.probs.sum(1), torch.ones(6), atol=1e-5)
    assert sharp.probs.max(1).values.mean() > flat.probs.max(1).values.mean()
    assert (flat.probs.max(1).values < 0.5).all()  # at T = 1 cosines in [-1, 1] cannot be confident
    with pytest.raises(ValueError, match="temperature"):
        similarity_view(model, temperature=0)


def test_retrieval_views(model):
    from mmcourse.clip.widgets import build_bank, image_query_view, text_query_view

    bank = build_bank(model, n=60)
    assert bank.image_features.shape == (60, 64) and len(bank.captions) == len(set(bank.pairs.captions))
    v = text_query_view(model, bank, "a small red circle at the top left", k=5)
    assert v.png.startswith(PNG) and len(v.indices) == 5 and v.scores == sorted(v.scores, reverse=True)
    bad = text_query_view(model, bank, "a small red sqare", k=5)
    assert bad.png is None and "'sqare'" in bad.message and "nearest known words: square" in bad.message
    unknown = text_query_view(model, bank, "a hexagon", k=5)
    assert unknown.png is None and "known words: a, an, and" in unknown.message
    w = image_query_view(model, bank, 3, k=4)
    assert w.png.startswith(PNG) and len(w.indices) == 4 and bank.pairs.captions[3] in w.message
    with pytest.raises(ValueError, match="index"):
        image_query_view(model, bank, 60)


def test_widget_builders_wire_controls(model):
    pytest.importorskip("ipywidgets")
    from mmcourse.clip.widgets import build_bank, retrieval_explorer, similarity_explorer

    box = similarity_explorer(model)
    image = box.children[1]
    before = image.value
    box.children[0].children[1].value = 0.5  # move the temperature slider
    assert image.value != before and bytes(image.value).startswith(PNG)
    r = retrieval_explorer(model, build_bank(model, n=40))
    query, message = r.children[1], r.children[2]
    query.value = "a large blue cirle"
    assert "nearest known words" in message.value


# -- checkers ------------------------------------------------------------------------------------


def test_clip_loss_checker_accepts_the_reference_and_rejects_plausible_mistakes(capsys):
    assert check_clip_loss(clip_loss_reference)

    def one_direction(img, txt, s):
        logits = s * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
        return F.cross_entropy(logits, torch.arange(len(img)))

    def unnormalised(img, txt, s):
        logits = s * img @ txt.T
        return (F.cross_entropy(logits, torch.arange(len(img))) + F.cross_entropy(logits.T, torch.arange(len(img)))) / 2

    def no_scale(img, txt, s):
        return clip_loss_reference(img, txt, 1.0)

    for wrong in (one_direction, unnormalised, no_scale):
        capsys.readouterr()
        assert not check_clip_loss(wrong), wrong.__name__
        assert "✗ check_clip_loss" in capsys.readouterr().out


def test_zero_shot_checker_accepts_the_reference_and_rejects_plausible_mistakes(capsys):
    assert check_build_zero_shot_weights(build_zero_shot_weights_reference)

    def unnormalised_mean(encode_text, classnames, templates):
        f = encode_text([t.format(c) for c in classnames for t in templates])
        return F.normalize(f.reshape(len(classnames), len(templates), -1).mean(1), dim=-1).T

    def no_renormalise(encode_text, classnames, templates):
        f = F.normalize(encode_text([t.format(c) for c in classnames for t in templates]), dim=-1)
        return f.reshape(len(classnames), len(templates), -1).mean(1).T

    def transposed(encode_text, classnames, templates):
        return build_zero_shot_weights_reference(encode_text, classnames, templates).T

    for wrong in (unnormalised_mean, no_renormalise, transposed):
        capsys.readouterr()
        assert not check_build_zero_shot_weights(wrong), wrong.__name__
        assert "✗ check_build_zero_shot_weights" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints
# ---------------------------------------------------------------------------------------------


def test_shipped_clip_checkpoints_state_their_targets_under_the_protocol():
    """Issue targets: zero-shot >= 95% on seen colour-shape classes, >= 80% on held-out ones for
    the broadly trained model, image->text recall@1 >= 90% (attribute) on galleries of 1,000
    captions; stored with standard errors from the protocol's test draws. (The slow tests of
    test_weights_check.py measure the files again on the test and the check draws.)"""
    from mmcourse import weights
    from mmcourse.weights.build import TARGETS

    assert TARGETS["clip_shapes_named"] == {"zero_shot_seen": {"min": 0.95}, "i2t_attribute_r1": {"min": 0.90}}
    assert TARGETS["clip_shapes_broad"]["zero_shot_heldout"] == {"min": 0.80}
    for name in ("clip_shapes_named", "clip_shapes_broad"):
        e = weights.entry(name)
        assert e.targets == TARGETS[name]
        for metric, bound in TARGETS[name].items():
            est = e.estimate(metric)
            assert est.clears(bound["min"], k=2), (name, metric, str(est))
            assert est.n >= 1000


def test_zero_shot_probs_use_the_learned_scale_and_short_names_drop_the_article(model):
    from mmcourse.clip import short_name, zero_shot_classifier, zero_shot_probs

    classes = ["a red circle", "an orange cross", "a blue square"]
    weights = zero_shot_classifier(model, classes, ["a picture of {}"])
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    probs = zero_shot_probs(model, images, weights)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    with torch.no_grad():
        logits = model.logit_scale.exp() * model.encode_image(images, normalize=True) @ weights
    torch.testing.assert_close(probs, logits.softmax(1))
    assert [short_name(c) for c in classes] == ["red circle", "orange cross", "blue square"]
    assert short_name("cat") == "cat"


def test_similarity_explorer_starts_at_the_models_learned_temperature(model):
    from mmcourse.clip.widgets import similarity_explorer

    saved = model.logit_scale.detach().clone()
    try:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(25.0))
        box = similarity_explorer(model)
        assert box.children[0].children[1].value == pytest.approx(0.04)  # float32 logit_scale
        assert similarity_explorer(model, temperature=0.5).children[0].children[1].value == pytest.approx(0.5)
    finally:
        with torch.no_grad():  # the fixture is shared by the module's tests
            model.logit_scale.copy_(saved)


def test_temperature_slider_is_logarithmic_and_clamps_its_start(model):
    pytest.importorskip("ipywidgets")
    import ipywidgets as W

    from mmcourse.clip.widgets import similarity_explorer, slider_temperature

    slider = similarity_explorer(model, temperature=0.1).children[0].children[1]
    assert isinstance(slider, W.FloatLogSlider) and slider.base == 10
    assert 10**slider.min == pytest.approx(0.01) and 10**slider.max == pytest.approx(1.0)
    assert slider_temperature(0.001) == 0.01 and slider_temperature(7.0) == 1.0 and slider_temperature(0.2) == 0.2
    with pytest.raises(ValueError, match="temperature"):
        slider_temperature(-1.0)


def test_temperature_comparison_shows_the_same_cosines_at_each_temperature(model):
    from mmcourse.clip.widgets import batch_cosine, similarity_view, temperature_comparison

    v = temperature_comparison(model, (1.0, 0.05), seed=2, batch_size=4)
    pairs, cosine = batch_cosine(model, seed=2, batch_size=4)
    assert v.png.startswith(PNG) and v.captions == pairs.captions
    torch.testing.assert_close(v.cosine, cosine)
    torch.testing.assert_close(v.probs, (cosine / 0.05).softmax(1))  # the last temperature's softmax
    torch.testing.assert_close(similarity_view(model, seed=2, temperature=0.05, batch_size=4).probs, v.probs)
    with pytest.raises(ValueError, match="temperatures"):
        temperature_comparison(model, ())
    with pytest.raises(ValueError, match="temperature"):
        temperature_comparison(model, (1.0, 0.0))
    with pytest.raises(ValueError, match="batch_size"):
        batch_cosine(model, batch_size=1)


def test_batch_matrix_diagram_draws_one_cell_per_pair():
    from mmcourse.clip.widgets import batch_matrix_diagram

    fig = batch_matrix_diagram(3)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert sum(t.startswith("I") and "·T" in t for t in labels) == 9
    assert {"I1·T1", "I2·T2", "I3·T3"} <= set(labels)
    matplotlib.pyplot.close(fig)


def test_strict_recall_ceiling_is_the_mean_of_k_over_m_and_beats_one_over_the_mean():
    from mmcourse.clip.tasks import content_counts, strict_recall_ceiling
    from mmcourse.clip.zero_shot import recall_at_k

    pairs = sample_pairs(300, seed=4, split="test")
    m = content_counts(pairs)
    attrs = pairs.attributes
    same = (attrs[:, None] == attrs[None]).all(-1)
    assert (m >= 1).all() and torch.equal(m, same.sum(1)) and torch.equal(m, same.sum(0))  # symmetric relation
    c = strict_recall_ceiling(n=300, seed=4)
    assert c["r1"] == pytest.approx(float((1 / m.double()).mean()))
    assert c["r1"] > c["one_over_mean_m"] == pytest.approx(1 / float(m.double().mean()))  # Jensen, strictly: m varies
    assert c["r1"] < c["r5"] <= 1
    # A "perfect" model that knows the content but not the wording: same-content captions score
    # 1, the rest 0, ties broken at random. Its strict recall@1 averages to the ceiling.
    g = torch.Generator().manual_seed(0)
    draws = [recall_at_k(same.float() + 1e-3 * torch.rand(300, 300, generator=g), torch.eye(300, dtype=torch.bool), 1)
             for _ in range(200)]
    assert sum(draws) / len(draws) == pytest.approx(c["r1"], abs=0.01)


def test_markdown_table_aligns_numbers_right_and_checks_row_lengths():
    from mmcourse.clip.widgets import markdown_table

    text = markdown_table(["batch", "recall@1"], [[4, "7.2%"], [256, "35.2%"]])
    assert text.splitlines() == ["| batch | recall@1 |", "|---|---:|", "| 4 | 7.2% |", "| 256 | 35.2% |"]
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["a", "b"], [[1]])


def test_zero_shot_accuracies_encode_once_and_give_each_template_sets_numbers(model):
    from mmcourse.clip.tasks import TEMPLATE_SETS, zero_shot_accuracies, zero_shot_accuracy
    from mmcourse.clip.zero_shot import encode_images, zero_shot_predict

    together = zero_shot_accuracies(model, n=60)
    assert list(together) == list(TEMPLATE_SETS)
    for kind in TEMPLATE_SETS:
        assert together[kind] == zero_shot_accuracy(model, kind, n=60)
    images = torch.rand(10, 3, 32, 32)
    weights = F.normalize(torch.randn(model.cfg.embed_dim, 30), dim=0)
    feats = encode_images(model, images, batch_size=3)
    assert torch.allclose(feats.norm(dim=1), torch.ones(10), atol=1e-5)
    assert torch.equal(zero_shot_predict(model, images, weights), zero_shot_predict(model, None, weights, image_features=feats))

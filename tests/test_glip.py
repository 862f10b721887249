"""mmcourse.glip: fusion against transformers, losses against closed forms, targets from spans,
centre sampling, NMS against a brute-force reference, prompts and bad input, the model's plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmcourse.data.shapes import SHAPES, ShapesWorld
from mmcourse.boxes import batched_nms, box_iou, generalized_box_iou_loss, nms
from mmcourse.glip import (GLIP, BiMultiHeadAttention, GLIPConfig, alignment_logits, assign_locations,
                           caption_phrases, detection_prompt, grounding_predict, parse_prompt, positive_map,
                           span_to_tokens, token_targets)
from mmcourse.glip.fusion import attention_from_hf_weights
from mmcourse.glip.head import BIAS_INIT, AlignmentHead
from mmcourse.glip.targets import (RADIUS, centerness_target, decode_ltrb, encode_ltrb, grid_points,
                                   tokenize_with_spans)
from mmcourse.clip.tokenizer import WordTokenizer


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer(context_length=56)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GLIP(GLIPConfig()).eval()


# ---------------------------------------------------------------------------------------------
# Fusion against transformers' GroundingDinoBiMultiHeadAttention
# ---------------------------------------------------------------------------------------------


def _hf_attention(seed: int = 0):
    from transformers import GroundingDinoConfig
    from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoBiMultiHeadAttention

    # widths must be equal on both sides; embed_dim = ffn // 2 = 32, heads = 4 // 2 = 2
    cfg = GroundingDinoConfig(d_model=32, encoder_ffn_dim=64, encoder_attention_heads=4, fusion_dropout=0.0)
    torch.manual_seed(seed)
    ref = GroundingDinoBiMultiHeadAttention(cfg).eval()
    with torch.no_grad():  # non-zero biases, so a missed bias copy shows
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ours = BiMultiHeadAttention(32, 32, 32, 2).eval()
    attention_from_hf_weights(ref.state_dict(), ours)
    return ref, ours


@pytest.mark.parametrize("scale,dtype", [(1.0, torch.float32), (30.0, torch.float64)])
def test_bi_attention_equals_transformers_grounding_dino(scale, dtype):
    """Copied weights, padded text and vision; masks converted (ours True = real, HF True = padding).
    HF subtracts the global max and clamps to +-50000; with scale 30 the scores reach the
    thousands, where exp() without max subtraction would overflow (compared in float64 there:
    float32 scores of that size differ by 1e-4 with the summation order alone)."""
    ref, ours = _hf_attention()
    ref, ours = ref.to(dtype), ours.to(dtype)
    g = torch.Generator().manual_seed(1)
    B, N, M = 3, 20, 7
    v = torch.randn(B, N, 32, generator=g, dtype=dtype) * scale
    l = torch.randn(B, M, 32, generator=g, dtype=dtype) * scale
    text_real = torch.ones(B, M, dtype=torch.bool)
    text_real[0, 5:] = False
    text_real[2, 2:] = False
    vis_real = torch.ones(B, N, dtype=torch.bool)
    vis_real[1, 15:] = False
    with torch.no_grad():
        (hv, _), (hl, _) = ref(v, l, vision_attention_mask=~vis_real, text_attention_mask=~text_real)
        dv, dl = ours(v, l, vision_mask=vis_real, text_mask=text_real)
    tol = 1e-5
    assert torch.isfinite(dv).all() and torch.isfinite(dl).all()
    assert (dv - hv).abs().max() <= tol, float((dv - hv).abs().max())
    assert (dl - hl).abs().max() <= tol, float((dl - hl).abs().max())


def test_bi_attention_ignores_padding_and_loader_checks_keys():
    _, ours = _hf_attention()
    g = torch.Generator().manual_seed(2)
    v, l = torch.randn(1, 10, 32, generator=g), torch.randn(1, 6, 32, generator=g)
    real = torch.tensor([[True] * 4 + [False] * 2])
    with torch.no_grad():
        a = ours(v, l, text_mask=real)[0]
        l2 = l.clone()
        l2[0, 4:] = 100.0  # change only the padding
        b = ours(v, l2, text_mask=real)[0]
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="key mismatch"):
        attention_from_hf_weights({"vision_proj.weight": torch.zeros(32, 32)}, ours)


def test_text_projection_follows_align_to_text_unless_set():
    def projects(**kw):
        return GLIP(GLIPConfig(text_encoder="phrases", **kw)).align.dot_product_projection_text is not None

    # GLIP projects the fused token features; the shipped model (align_to_text) aligns with the
    # embeddings as they are; the single-factor arm projects the unfused embeddings
    assert projects() and not projects(align_to_text=True) and projects(align_to_text=True, project_text=True)
    assert not projects(project_text=False)
    with pytest.raises(ValueError, match="project_text"):
        GLIPConfig(project_text="yes")


def test_fusion_switch_and_small_residual_scales():
    on, off = GLIP(GLIPConfig()), GLIP(GLIPConfig(fusion=False))
    assert off.fusion is None and not any("fusion" in k for k in off.state_dict())
    for layer in on.fusion:
        assert torch.allclose(layer.gamma_v, torch.full_like(layer.gamma_v, 0.1))
        assert torch.allclose(layer.gamma_l, torch.full_like(layer.gamma_l, 0.1))


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def test_grounding_loss_terms_on_a_hand_made_case():
    """One positive location: the focal term is the toolkit's focal loss summed over the real tokens
    per positive location, the box term is 1 - GIoU (here the boxes are identical: 0)."""
    from mmcourse.boxes import sigmoid_focal_loss
    from mmcourse.glip.losses import grounding_loss

    logits = torch.tensor([[[2.0, -1.0, 0.5], [-3.0, 0.0, 1.0]]])     # (1, N=2, M=3)
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    boxes = torch.tensor([[[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]]])
    positive = torch.tensor([[True, False]])
    out = grounding_loss(logits, target, mask, boxes, boxes, torch.zeros(1, 2), torch.tensor([[0.5, 0.0]]), positive)
    want = sigmoid_focal_loss(logits[..., :2], target[..., :2]).sum()
    torch.testing.assert_close(out["cls"], want)
    assert float(out["box"]) == pytest.approx(0.0, abs=1e-6)


def test_giou_hand_computed_cases():
    """The box loss GLIP trains with (mmcourse.boxes' generalized_box_iou_loss) on hand-computed cases."""
    cases = [
        ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),                     # identical
        ((0, 0, 1, 1), (2, 0, 3, 1), 0.0 - (3 - 2) / 3),       # disjoint: IoU 0, hull 3, union 2
        ((0, 0, 4, 4), (1, 1, 3, 3), 4 / 16),                  # nested: hull = the outer box
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7 - (9 - 7) / 9),     # partial overlap
        ((0, 0, 1, 1), (10, 10, 11, 11), 0 - (121 - 2) / 121),  # far apart: towards -1
    ]
    for a, b, want in cases:
        loss = generalized_box_iou_loss(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), eps=0.0)
        assert abs(float(1 - loss) - want) < 1e-12, (a, b, float(1 - loss), want)


# ---------------------------------------------------------------------------------------------
# Token targets from spans
# ---------------------------------------------------------------------------------------------


def test_span_to_tokens_known_caption(tok):
    caption = "a small red circle at the top left and a large blue square"
    s1 = caption.index("small red circle")
    s2 = caption.index("large blue square")
    spans = [(s1, s1 + len("small red circle")), (s2, s2 + len("large blue square"))]
    m = positive_map(caption, spans, 56)
    # <start>=0, a=1, small=2, red=3, circle=4, at the top left and a = 5..10, large=11, blue=12, square=13
    assert m[0].nonzero().flatten().tolist() == [2, 3, 4]
    assert m[1].nonzero().flatten().tolist() == [11, 12, 13]
    ids = tok(caption)[0]
    assert [tok.itos[i] for i in ids[m[1]].tolist()] == ["large", "blue", "square"]


def test_targets_mark_exactly_each_phrase_on_shapes_world_captions(tok):
    scenes = ShapesWorld(image_size=64, max_objects=4).sample(50, seed=3)
    ids, maps = tokenize_with_spans(tok, scenes.captions, scenes.spans)
    for i in range(50):
        for k, phrase in enumerate(scenes.phrases[i]):
            words = [tok.itos[t] for t in ids[i][maps[i, k]].tolist()]
            assert words == phrase.split(), (scenes.captions[i], phrase, words)
        assert not maps[i, len(scenes.phrases[i]):].any()


def test_detection_prompt_gives_one_phrase_per_class(tok):
    text, spans = detection_prompt(list(SHAPES))
    assert text == "circle. square. triangle. diamond. cross."
    m = positive_map(text, spans, 56)
    assert m.sum(1).tolist() == [1] * 5 and m.any(0).sum() == 5
    assert [tok.itos[i] for i in tok(text)[0][m.any(0)].tolist()] == list(SHAPES)
    phrases, spans2 = parse_prompt(text, tok)
    assert phrases == list(SHAPES) and spans2 == spans
    phrases, _ = parse_prompt("red circle. a large blue square.", tok)
    assert phrases == ["red circle", "a large blue square"]


def test_caption_phrases():
    cap = "a small red circle at the top left and a large blue square"
    assert caption_phrases(cap) == [("small red circle", (2, 18)), ("large blue square", (41, 58))]
    assert caption_phrases("there is a cross") == [("cross", (11, 16))]


def test_token_targets_rows_follow_assignment():
    box_tokens = torch.zeros(1, 2, 6, dtype=torch.bool)
    box_tokens[0, 0, [1, 2]] = True
    box_tokens[0, 1, [4]] = True
    assigned = torch.tensor([[-1, 0, 1, 1, -1]])
    t = token_targets(assigned, box_tokens)
    assert t.shape == (1, 5, 6)
    assert t[0, 0].sum() == 0 and t[0, 4].sum() == 0
    assert t[0, 1].tolist() == [0, 1, 1, 0, 0, 0] and t[0, 2].tolist() == t[0, 3].tolist() == [0, 0, 0, 0, 1, 0]


# ---------------------------------------------------------------------------------------------
# Centre sampling, box coding
# ---------------------------------------------------------------------------------------------


def test_centre_sampling_rule_and_every_object_gets_positives():
    scenes = ShapesWorld(image_size=64, max_objects=4).sample(200, seed=5)
    pts = grid_points(64, 4)
    a = assign_locations(pts, scenes.boxes, scenes.valid, 4)
    for i in range(200):
        for n in (a[i] >= 0).nonzero().flatten().tolist():
            x, y = pts[n].tolist()
            x0, y0, x1, y1 = scenes.boxes[i, a[i, n]].tolist()
            assert x0 < x < x1 and y0 < y < y1
            assert abs(x - (x0 + x1) / 2) < RADIUS * 4 and abs(y - (y0 + y1) / 2) < RADIUS * 4
        for k in range(int(scenes.valid[i].sum())):
            assert (a[i] == k).sum() >= 1, (i, k)
    assert (a[~scenes.valid.any(1)] == -1).all()


def test_overlapping_boxes_take_the_smaller_one_and_invalid_boxes_are_ignored():
    pts = torch.tensor([[10.0, 10.0]])
    boxes = torch.tensor([[[0.0, 0.0, 20.0, 20.0], [6.0, 6.0, 14.0, 14.0]]])
    assert assign_locations(pts, boxes, torch.tensor([[True, True]]), 4).tolist() == [[1]]
    assert assign_locations(pts, boxes, torch.tensor([[True, False]]), 4).tolist() == [[0]]
    assert assign_locations(pts, boxes, torch.tensor([[False, False]]), 4).tolist() == [[-1]]


def test_box_coding_round_trip_and_centerness():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(50, 2, generator=g) * 64
    ltrb = torch.rand(50, 4, generator=g) * 10 + 0.1
    torch.testing.assert_close(encode_ltrb(pts, decode_ltrb(pts, ltrb)), ltrb)
    assert centerness_target(torch.tensor([3.0, 5.0, 3.0, 5.0])) == 1.0
    assert abs(float(centerness_target(torch.tensor([1.0, 2.0, 3.0, 2.0]))) - math.sqrt(1 / 3)) < 1e-6


# ---------------------------------------------------------------------------------------------
# NMS against a brute-force reference
# ---------------------------------------------------------------------------------------------


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _brute_nms(boxes, scores, labels, thr):
    """Definition: walk boxes by decreasing score; keep a box unless a kept box of the same label
    overlaps it with IoU > thr."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(labels[j] != labels[i] or _iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_nms_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n = [0, 1, 5, 30, 80, 150][seed]
    xy = torch.rand(n, 2, generator=g) * 40
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    boxes = torch.cat([xy, xy + wh], 1).double()
    scores = torch.rand(n, generator=g).double()
    labels = torch.randint(0, 3, (n,), generator=g)
    for thr in (0.3, 0.5, 0.7):
        want_agn = _brute_nms(boxes.tolist(), scores.tolist(), [0] * n, thr)
        assert nms(boxes, scores, thr).tolist() == want_agn
        want_cls = _brute_nms(boxes.tolist(), scores.tolist(), labels.tolist(), thr)
        assert batched_nms(boxes, scores, labels, thr).tolist() == want_cls


def test_nms_bad_input_and_iou():
    with pytest.raises(ValueError, match="boxes"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    a = torch.tensor([[0.0, 0, 2, 2]])
    assert float(box_iou(a, torch.tensor([[1.0, 1, 3, 3]]))) == pytest.approx(1 / 7)


# ---------------------------------------------------------------------------------------------
# Alignment, model, prediction, bad input
# ---------------------------------------------------------------------------------------------


def test_alignment_logits_formula_and_prior_initialisation():
    g = torch.Generator().manual_seed(0)
    O, P, b = torch.randn(2, 7, 8, generator=g), torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, generator=g)
    want = torch.einsum("bnd,bmd->bnm", O, P) / 0.5 + b[:, None, :]
    torch.testing.assert_close(alignment_logits(O, P, 0.5, b), want)
    head = AlignmentHead(8)
    s = head(torch.zeros(2, 7, 8), P)  # no region evidence yet: every token at the prior 0.01
    torch.testing.assert_close(s.sigmoid(), torch.full_like(s, 0.01))
    assert BIAS_INIT == pytest.approx(-math.log(99))


def test_model_shapes_and_class_head(model):
    images = torch.rand(2, 3, 64, 64)
    tokens = model.tokenizer(["circle. square.", "a small red circle at the top"])
    out = model(images, tokens)
    N = (64 // 4) ** 2
    assert out["logits"].shape == (2, N, 56) and out["boxes"].shape == (2, N, 4)
    assert out["centerness"].shape == (2, N) and out["regions"].shape == (2, N, 64)
    assert (out["ltrb"] > 0).all()
    cls = GLIP(GLIPConfig(head="classes"))
    assert cls(images, tokens)["logits"].shape == (2, N, 5)
    with pytest.raises(ValueError, match="images must be"):
        model(torch.rand(2, 3, 32, 32), tokens[:, :8])
    with pytest.raises(ValueError, match="head must be"):
        GLIPConfig(head="mlp")


def test_grounding_predict_structure(model):
    image = ShapesWorld(image_size=64, max_objects=3).sample(1, seed=0).images[0]
    r = grounding_predict(model, image, "circle. square. cross.", threshold=0.0)
    assert r["phrases"] == ["circle", "square", "cross"]
    n = len(r["scores"])
    assert r["boxes"].shape == (n, 4) and r["labels"].shape == (n,) and len(r["phrase"]) == n
    assert (r["scores"][:-1] >= r["scores"][1:]).all()
    assert 0 < n <= 100
    assert (r["boxes"] >= 0).all() and (r["boxes"] <= 64).all()


def test_bad_input_names_the_argument(model, tok):
    image = torch.rand(3, 64, 64)
    with pytest.raises(ValueError, match="prompt must be a non-empty"):
        grounding_predict(model, image, "   ")
    with pytest.raises(ValueError, match=r"prompt: unknown word 'circel'.*nearest known words: circle"):
        grounding_predict(model, image, "circel. square.")
    with pytest.raises(ValueError, match="names no object"):
        parse_prompt("at the top left", tok)
    with pytest.raises(ValueError, match="image must be"):
        grounding_predict(model, torch.rand(64, 64), "circle.")
    with pytest.raises(ValueError, match="boxes must be xyxy inside the 64 x 64 image"):
        assign_locations(grid_points(64, 4), torch.tensor([[[50.0, 50.0, 70.0, 60.0]]]), torch.tensor([[True]]), 4,
                         image_size=64)
    with pytest.raises(ValueError, match="span"):
        span_to_tokens("circle.", (3, 20))
    with pytest.raises(ValueError, match="names"):
        detection_prompt([])


def test_text_tower_starts_from_the_clip_checkpoint():
    from mmcourse.weights import load

    m = GLIP(GLIPConfig())
    m.load_clip_text("clip_shapes_named")
    state, _ = load("clip_shapes_named")
    torch.testing.assert_close(m.text.token_embedding.weight, state["text.token_embedding.weight"])
    torch.testing.assert_close(m.text.blocks[1].mlp.fc2.weight, state["text.blocks.1.mlp.fc2.weight"])
    pos = m.text.positional_embedding
    torch.testing.assert_close(pos[:16], state["text.positional_embedding"])
    assert (pos[16:] == state["text.positional_embedding"][-1]).all()


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints
# ---------------------------------------------------------------------------------------------


def test_checkpoint_module_follows_the_weights_check_convention():
    """BUILDERS, EVALUATORS and TARGETS name the same checkpoints; the registry stores each target
    with its standard error and the bounds the builder enforced, and the values meet them."""
    from mmcourse import weights
    from mmcourse.glip import checkpoints as c

    assert set(c.BUILDERS) == set(c.EVALUATORS) == set(c.TARGETS) == set(c.CHECKPOINTS)
    for name, targets in c.TARGETS.items():
        e = weights.entry(name)
        assert e.targets == targets, (name, e.targets)
        for metric, bound in targets.items():
            est = e.estimate(metric)
            assert est.se >= 0 and est.n >= 5, (name, metric, est)
            assert est.value >= bound.get("min", -math.inf) and est.value <= bound.get("max", math.inf), (name, metric)


def test_shipped_glip_finds_shapes_on_one_test_draw():
    """The shipped file, not only its registry row: shape-name AP50 on the first test draw."""
    from mmcourse.glip.tasks import evaluate_names, glip_world, load_glip
    from mmcourse.protocol import seeds

    model = load_glip("glip_shapes")
    live = evaluate_names(model, glip_world().sample(100, seed=seeds("glip", "test")[0], split="test"))
    assert live["AP50"] >= 0.95, live


@pytest.mark.slow
def test_shipped_glip_registry_metrics_are_what_the_evaluators_measure():
    """Each evaluator, run on the test draws, gives the registry's numbers (the builder saved the
    same evaluator's result)."""
    from mmcourse import weights
    from mmcourse.glip.checkpoints import EVALUATORS

    for name, evaluate in EVALUATORS.items():
        entry = weights.entry(name)
        for key, est in evaluate("test").items():
            stored = entry.estimate(key)
            assert abs(est.value - stored.value) < 2e-3 and abs(est.se - stored.se) < 2e-3, (name, key, est, stored)


def test_soft_token_loss_is_cross_entropy_over_the_prompt_tokens():
    from mmcourse.glip.losses import soft_token_loss

    logits = torch.tensor([[[0.0, 2.0, 1.0, 5.0], [0.0, 0.0, 3.0, 9.0]]])   # (1, N=2, M=4)
    target = torch.tensor([[[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[False, True, True, False]])                      # token 3 is padding
    positive = torch.tensor([[True, False]])
    z = torch.tensor([2.0, 1.0])
    logp = z - torch.logsumexp(z, 0)
    want = -(0.5 * logp[0] + 0.5 * logp[1])
    torch.testing.assert_close(soft_token_loss(logits, target, mask, positive), want)
    assert soft_token_loss(logits, target, mask, torch.zeros(1, 2, dtype=torch.bool)) == 0


def test_stored_results_the_notebook_reads_exist_and_name_their_metrics():
    from mmcourse.glip.evaluate import stored_result

    arms = stored_result("ablation")["arms"]
    assert set(arms) == {"names", "names+captions"}
    seeds = stored_result("fusion_seeds")
    assert set(seeds["runs"]) == {f"fusion={f} seed={i}" for f in ("on", "off") for i in (0, 1, 2)}
    soft = stored_result("soft_token")
    assert soft["recipe"]["soft_token_weight"] == 0.0 and soft["recipe"]["seed"] == 0
    for r in [*arms.values(), stored_result("alignment"), stored_result("projection"), soft, *seeds["runs"].values()]:
        assert {"names_AP50", "attributes_seen_AP50", "attributes_heldout_AP50", "caption_accuracy"} <= set(r["metrics"])
        assert all(m["n"] == 5 or k == "caption_accuracy" for k, m in r["metrics"].items())
    assert stored_result("projection")["recipe"]["project_text"] is True
    # the summary over seeds is the mean of the three runs of each arm
    for arm in ("on", "off"):
        values = [seeds["runs"][f"fusion={arm} seed={i}"]["metrics"]["attributes_seen_AP50"]["value"] for i in range(3)]
        assert seeds["over_seeds"][arm]["attributes_seen_AP50"]["n"] == 3
        assert seeds["over_seeds"][arm]["attributes_seen_AP50"]["value"] == pytest.approx(sum(values) / 3, abs=1e-4)
    with pytest.raises(FileNotFoundError, match="no stored result 'nothing'"):
        stored_result("nothing")


def test_attribute_chance_is_perfect_without_distractors_and_below_one_with_them():
    import dataclasses

    from mmcourse.glip.data import attribute_scenes
    from mmcourse.glip.evaluate import attribute_chance, attribute_chance_ap

    scenes = attribute_scenes(40, seed=0)
    target = (scenes.colour == scenes.colour[:, :1]) & (scenes.shape == scenes.shape[:, :1])
    # only the named pair's objects left: any ranking of them is perfect
    only = dataclasses.replace(scenes, valid=scenes.valid & target)
    assert attribute_chance_ap(only)["AP50"] > 0.999
    # with same-shape distractors a random ranking loses
    assert 0.2 < attribute_chance_ap(scenes)["AP50"] < 0.7
    with pytest.raises(ValueError, match="split"):
        attribute_chance("seen")


def test_attribute_word_probabilities_are_the_mean_token_probabilities_of_each_word(model):
    from mmcourse.glip.data import attribute_scenes
    from mmcourse.glip.evaluate import attribute_word_probabilities

    scenes = attribute_scenes(6, seed=1)
    r = attribute_word_probabilities(model, scenes)
    n_target = int(((scenes.colour == scenes.colour[:, :1]) & (scenes.shape == scenes.shape[:, :1]) & scenes.valid).sum())
    assert r["target"].shape == (n_target, 2)
    assert r["distractor"].shape == (int(scenes.valid.sum()) - n_target, 2)
    assert ((r["target"] > 0) & (r["target"] < 1)).all()


def test_training_history_records_each_loss_term_and_the_total_is_their_weighted_sum():
    from mmcourse.glip.train import train_glip

    _, hist = train_glip(GLIPConfig(), steps=3, batch_size=2, progress=False, soft_token_weight=0.5)
    assert set(hist.metrics) == {"cls", "box", "ctr", "token"} and all(len(v) == 3 for v in hist.metrics.values())
    m = hist.metrics
    total = [c + b + t + 0.5 * k for c, b, t, k in zip(m["cls"], m["box"], m["ctr"], m["token"])]
    np.testing.assert_allclose(hist.loss, total, rtol=1e-5)
    assert all(v > 0 for v in m["token"])  # the soft-token term is computed when its weight is not 0


def test_train_variant_rejects_a_negative_soft_token_weight():
    from mmcourse.glip.checkpoints import train_variant

    with pytest.raises(ValueError, match="soft_token_weight"):
        train_variant(soft_token_weight=-1.0, progress=False)


def test_repeated_phrases_mark_each_later_copy_in_its_own_caption():
    import dataclasses

    from mmcourse.glip.data import glip_world
    from mmcourse.glip.evaluate import caption_ceiling, repeated_phrases
    from mmcourse.protocol import seeds

    scenes = glip_world().sample(3, seed=0, split="test")
    valid = torch.zeros_like(scenes.valid)
    valid[0, :3] = valid[1, :1] = valid[2, :4] = True
    phrases = [["red circle", "blue square", "red circle"], ["red circle"],
               ["cross", "cross", "red circle", "cross"]]
    fake = dataclasses.replace(scenes, valid=valid, phrases=phrases)
    # the first copy can hit, every later copy is a repeat; "red circle" in another caption is not
    assert repeated_phrases(fake).tolist() == [False, False, True, False, False, True, False, True]
    # on the test draws: as many flags as measure's caption phrases, and a ceiling below 1
    c = caption_ceiling("test", n=100, k=1)
    assert c["phrases"] == len(repeated_phrases(glip_world().sample(100, seed=seeds("glip", "test")[0], split="test")))
    assert 0 < c["repeats"] < c["phrases"] and c["ceiling"] == pytest.approx(1 - c["repeats"] / c["phrases"])


@pytest.mark.slow  # a re-measurement of the shipped checkpoint
def test_shipped_glip_gives_identical_phrases_of_a_caption_one_top_box():
    """The ceiling's premise, on the shipped checkpoint: a phrase that repeats an earlier one of its
    caption is never a hit together with that earlier copy (they share one top box)."""
    from mmcourse.glip.evaluate import caption_hits, repeated_phrases
    from mmcourse.glip.tasks import glip_world, load_glip
    from mmcourse.protocol import seeds

    scenes = glip_world().sample(100, seed=seeds("glip", "test")[0], split="test")
    hits, repeated = caption_hits(load_glip("glip_shapes"), scenes), repeated_phrases(scenes)
    assert repeated.any()
    j = 0
    for i in range(len(scenes)):
        mine = scenes.phrases[i][: int(scenes.valid[i].sum())]
        for k, p in enumerate(mine):
            if repeated[j + k]:
                first = j + mine.index(p)
                assert not (hits[first] and hits[j + k]), (scenes.captions[i], p)
        j += len(mine)

"""GLIP's "phrases" text side: each phrase's pooled CLIP embedding (mmcourse.glip.text), the units
of a prompt, order invariance of the grounding, and bad input at the grounding entry points."""

from __future__ import annotations

import math

import pytest
import torch

from mmcourse.clip.tokenizer import WordTokenizer
from mmcourse.glip import GLIP, GLIPConfig, grounding_predict
from mmcourse.glip.predict import predict_batch
from mmcourse.glip.text import PhraseEncoder, prompt_units
from mmcourse.glip.widgets import phrase_heatmap


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer(context_length=56)


@pytest.fixture(scope="module")
def phrases_model():
    torch.manual_seed(0)
    m = GLIP(GLIPConfig(text_encoder="phrases"))
    m.load_clip_text("clip_shapes_broad")
    return m.eval()


def test_prompt_units_phrases_first_then_loose_words(tok):
    u = prompt_units(tok, ["red circle. square.", "a small red circle at the top"], 12)
    # <start> red circle square <end>: phrases 0, 0, 1; special tokens -1
    assert u[0].tolist() == [-1, 0, 0, 1] + [-1] * 8
    # <start> a small red circle at the top <end>: one phrase (small red circle), loose words 1.. after it
    row = u[1].tolist()
    assert row[0] == -1 and row[2:5] == [0, 0, 0] and row[8:] == [-1] * 4
    loose = [row[1], *row[5:8]]
    assert len(set(loose)) == 4 and min(loose) >= 1
    with pytest.raises(ValueError, match="prompts\\[0\\] has 3 words"):
        prompt_units(tok, ["red circle. square."], 4)


def test_phrase_embedding_is_clips_zero_shot_class_embedding(phrases_model):
    """A phrase's vector is CLIP's prompt-ensembled class embedding (zero_shot_classifier), and
    every token of the phrase carries it; special tokens carry zeros."""
    from mmcourse.clip.tasks import load_clip
    from mmcourse.clip.zero_shot import shapes_templates, zero_shot_classifier

    clip = load_clip("clip_shapes_broad")
    want = zero_shot_classifier(clip, ["a red square", "an orange cross"], shapes_templates("ensemble")).T  # (2, E)
    prompt = "red square. orange cross."
    tokens = phrases_model.tokenizer([prompt])
    feats = phrases_model.text(tokens, prompt_units(phrases_model.tokenizer, [prompt], tokens.shape[1]))
    torch.testing.assert_close(feats[0, 1], want[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats[0, 2], want[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats[0, 4], want[1], atol=1e-5, rtol=1e-5)
    assert (feats[0, 0] == 0).all() and (feats[0, 5:] == 0).all()
    assert math.isclose(float(feats[0, 1].norm()), 1.0, rel_tol=1e-5)


def test_phrase_cache_follows_loaded_weights():
    enc = PhraseEncoder(GLIP(GLIPConfig(text_encoder="phrases")).text.tower.cfg, 64).requires_grad_(False)
    a = enc.embed(["red circle"])
    state = {k: v + 0.1 for k, v in enc.state_dict().items()}
    enc.load_state_dict(state)
    assert not torch.allclose(enc.embed(["red circle"]), a)


def test_grounding_with_phrases_does_not_depend_on_phrase_order(phrases_model):
    """Each phrase is encoded on its own and fusion has no token positions, so reordering the
    phrases of a prompt permutes the phrase scores and changes nothing else."""
    from mmcourse.glip.tasks import glip_world

    image = glip_world().sample(1, seed=0, split="test").images[0]
    a = grounding_predict(phrases_model, image, "red circle. blue square. cross.", threshold=0.0)
    b = grounding_predict(phrases_model, image, "cross. red circle. blue square.", threshold=0.0)
    perm = torch.tensor([1, 2, 0])  # a's phrase k is b's phrase perm[k]
    torch.testing.assert_close(a["scores"], b["scores"])
    torch.testing.assert_close(a["boxes"], b["boxes"])
    assert perm[a["labels"]].tolist() == b["labels"].tolist()


def test_phrases_model_needs_units(phrases_model):
    tokens = phrases_model.tokenizer(["circle."])
    with pytest.raises(ValueError, match="units must be"):
        phrases_model(torch.rand(1, 3, 64, 64), tokens)
    with pytest.raises(ValueError, match="text_encoder must be"):
        GLIPConfig(text_encoder="bert")


BAD_IMAGES = [
    (torch.full((3, 64, 64), float("nan")), "image must be finite"),
    (torch.full((3, 64, 64), float("inf")), "image must be finite"),
    ((torch.rand(3, 64, 64) * 255).to(torch.uint8), "image must be a float tensor.*uint8"),
    (torch.rand(64, 64), r"image must be \(3, 64, 64\)"),
    (torch.rand(1, 3, 64, 64), r"image must be \(3, 64, 64\)"),
    (torch.rand(3, 32, 32), r"image must be \(3, 64, 64\)"),
    (torch.rand(3, 64, 64) * 255, r"image must lie in \[0, 1\]"),
    (torch.rand(3, 64, 64).numpy(), "image must be a float tensor"),
]


@pytest.mark.parametrize("image,message", BAD_IMAGES)
@pytest.mark.parametrize("side", ["tokens", "phrases"])
def test_grounding_entry_points_reject_bad_images(image, message, side, phrases_model):
    model = phrases_model if side == "phrases" else GLIP(GLIPConfig()).eval()
    with pytest.raises(ValueError, match=message):
        grounding_predict(model, image, "circle.")
    with pytest.raises(ValueError, match=message):
        phrase_heatmap(model, image, "circle.", 0)


@pytest.mark.parametrize("prompt,message", [
    ("", "prompt must be a non-empty string"), ("  . ", "prompt must be a non-empty|no phrase"),
    (None, "prompt must be a non-empty string"), ("circel.", "unknown word 'circel'"),
    (" ".join(["red circle"] * 40), "context length|more than"),
])
def test_grounding_rejects_bad_prompts(prompt, message, phrases_model):
    with pytest.raises(ValueError, match=message):
        grounding_predict(phrases_model, torch.rand(3, 64, 64), prompt)


@pytest.mark.parametrize("kwargs,message", [
    ({"threshold": float("nan")}, "threshold must be"), ({"threshold": 1.0}, "threshold must be"),
    ({"nms_iou": 0.0}, "nms_iou must be"), ({"nms_iou": float("nan")}, "nms_iou must be"),
    ({"max_detections": 0}, "max_detections must be"), ({"max_detections": 2.5}, "max_detections must be"),
])
def test_grounding_rejects_bad_settings(kwargs, message, phrases_model):
    with pytest.raises(ValueError, match=message):
        grounding_predict(phrases_model, torch.rand(3, 64, 64), "circle.", **kwargs)


def test_predict_batch_rejects_mismatched_or_empty_batches(phrases_model):
    with pytest.raises(ValueError, match="one prompt per image"):
        predict_batch(phrases_model, torch.rand(2, 3, 64, 64), ["circle."])
    with pytest.raises(ValueError, match="images must hold at least one image"):
        predict_batch(phrases_model, torch.rand(0, 3, 64, 64), [])
    with pytest.raises(ValueError, match="prompts must be a list of strings"):
        predict_batch(phrases_model, torch.rand(1, 3, 64, 64), "circle.")


def test_aligning_to_the_phrase_embeddings_reads_them_unprojected_and_unfused():
    """align_to_text=True (OWL-ViT's choice): the head has no text projection, and the logits are
    O P^T / tau + b with P the normalised phrase embeddings as the text side gave them, whatever
    fusion did to its own copy of the text."""
    torch.manual_seed(0)
    m = GLIP(GLIPConfig(text_encoder="phrases", align_to_text=True)).eval()
    assert m.align.dot_product_projection_text is None
    with torch.no_grad():
        for layer in m.fusion:  # make fusion's text update large: the head must not see it
            layer.gamma_l.fill_(5.0)
        prompt = ["red circle. blue square."]
        tokens = m.tokenizer(prompt)[:, :8]
        units = prompt_units(m.tokenizer, prompt, 8)
        out = m(torch.rand(1, 3, 64, 64), tokens, units)
        p = torch.nn.functional.normalize(m.text(tokens, units), dim=-1)
        want = out["regions"] @ p.transpose(1, 2) / m.align.log_scale.exp() + (p @ m.align.bias_lang + m.align.bias0)[:, None]
    torch.testing.assert_close(out["logits"], want)
    assert not torch.allclose(out["text"], m.text(tokens, units))  # fusion did change its copy

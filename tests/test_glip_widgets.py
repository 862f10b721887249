"""The GLIP prompt widget's callback (plain function), the heatmap and the exercise checkers."""

from __future__ import annotations

import html

import pytest
import torch

from mmcourse.glip import GLIP, GLIPConfig
from mmcourse.glip.widgets import phrase_heatmap, prompt_explorer, prompt_view
from mmcourse.glip.tasks import glip_world
from mmcourse.viz import png_size


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GLIP(GLIPConfig()).eval()


@pytest.fixture(scope="module")
def scenes():
    return glip_world().sample(3, seed=0, split="test")


def test_prompt_view_draws_boxes_above_the_threshold(model, scenes):
    v = prompt_view(model, scenes.images[0], "circle. square.", threshold=0.05)
    assert v.png is not None and png_size(v.png)[0] > 300
    assert v.lines[0] == "phrases: circle | square"
    n = int((v.result["scores"] >= 0.05).sum())
    assert v.lines[1].startswith(f"{n} boxes") and len(v.lines) == 2 + n
    strict = prompt_view(model, scenes.images[0], "circle. square.", threshold=0.9)
    assert len(strict.lines) <= len(v.lines)


def test_prompt_view_reports_bad_prompts_instead_of_raising(model, scenes):
    v = prompt_view(model, scenes.images[0], "circel. squre.")
    assert v.png is None and "nearest known words: circle" in v.lines[0]
    assert "non-empty" in prompt_view(model, scenes.images[0], "").lines[0]
    with pytest.raises(ValueError, match="threshold"):
        prompt_view(model, scenes.images[0], "circle.", threshold=1.5)


def test_heatmap_and_explorer(model, scenes):
    h = phrase_heatmap(model, scenes.images[0], "a red circle and a blue square", 1)
    assert h.shape == (16, 16) and (h >= 0).all() and (h <= 1).all()
    with pytest.raises(ValueError, match="phrase must be"):
        phrase_heatmap(model, scenes.images[0], "a red circle", 3)
    box = prompt_explorer(model, scenes)
    text = box.children[1]
    before = box.children[2].children[1].value
    text.value = "cross."
    assert box.children[2].children[1].value != before and "phrases: cross" in box.children[2].children[1].value
    # the picker can start at another scene, and shows that scene's view
    second = prompt_explorer(model, scenes, prompt="circle.", scene=1)
    assert second.children[0].children[0].value == 1
    assert second.children[2].children[1].value.endswith(
        html.escape("\n".join(prompt_view(model, scenes.images[1], "circle.", 0.3).lines)) + "</pre>")
    with pytest.raises(ValueError, match="scene must be"):
        prompt_explorer(model, scenes, scene=len(scenes))


def test_draw_detections_keeps_both_labels_of_one_object_readable(scenes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from mmcourse.glip.widgets import PHRASE_COLOURS, draw_detections

    # one object found for two phrases (identical boxes), a third box elsewhere, one below threshold
    result = {"boxes": torch.tensor([[6.0, 9, 20, 23], [40, 40, 56, 56], [6, 9, 20, 23], [30, 5, 40, 15]]),
              "scores": torch.tensor([0.33, 0.77, 0.76, 0.1]), "labels": torch.tensor([1, 1, 0, 2]),
              "phrases": ["circle", "square", "triangle"]}
    fig, ax = plt.subplots()
    try:
        assert draw_detections(ax, scenes.images[0], result, threshold=0.3) == 3
        where = {t.get_text(): (t.get_position(), t.get_va()) for t in ax.texts}
        assert set(where) == {"circle 0.76", "square 0.33", "square 0.77"}
        assert where["circle 0.76"] == ((5.5, 8.0), "bottom")    # the better box keeps the place above
        assert where["square 0.33"] == ((5.5, 23.5), "top")      # the weaker one moves below its box
        assert where["square 0.77"] == ((39.5, 39.0), "bottom")  # elsewhere: above, as usual
        # the identical boxes: the better one (circle, colour 0) is drawn after the weaker (square)
        edges = [p.get_edgecolor() for p in ax.patches if p.get_xy() == (5.5, 8.5)]
        assert edges == [to_rgba(PHRASE_COLOURS[1]), to_rgba(PHRASE_COLOURS[0])]
        assert draw_detections(ax, scenes.images[0], result, threshold=0.3, labels=False) == 3
        assert len(ax.texts) == 3  # no new labels
    finally:
        plt.close(fig)


def test_checkers_accept_the_reference_and_reject_mistakes():
    from mmcourse.checks.glip import (alignment_logits_reference, check_alignment_logits, check_nms,
                                      check_positive_map, nms_reference, positive_map_reference)

    assert check_positive_map(positive_map_reference)
    assert check_alignment_logits(alignment_logits_reference)
    assert check_nms(nms_reference)

    def off_by_one(text, spans, length):  # forgets the <start> token
        m = positive_map_reference(text, spans, length)
        return torch.roll(m, -1, dims=1)

    assert not check_positive_map(off_by_one)
    assert not check_alignment_logits(lambda o, p, tau, b: o @ p.transpose(-2, -1) * tau + b[..., None, :])
    assert not check_nms(lambda b, s, t: s.argsort(descending=True))  # no suppression at all

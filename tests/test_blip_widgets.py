"""The BLIP notebook's widget callbacks, headless: plain functions of the control values."""

from __future__ import annotations

import pytest
import torch

from mmcourse.blip import BLIP
from mmcourse.blip.captions import word_marks
from mmcourse.blip.evaluate import itc_scores, itm_scores
from mmcourse.blip.train import shapes_blip_config
from mmcourse.blip.widgets import (caption_explorer, caption_view, edit_caption, editable_words, marks_html,
                                   matching_explorer, matching_view, widget_scene)
from mmcourse.viz import png_size

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BLIP(shapes_blip_config()).eval()


def test_editable_words_and_edit_caption():
    caption = "on the left there is a small red circle and in the middle there is a large blue cross"
    words = {w: (i, alts) for i, w, alts in editable_words(caption)}
    assert set(words) == {"left", "small", "red", "circle", "large", "blue", "cross"}  # "middle" has no swap
    assert words["left"][1] == ["right"] and words["small"][1] == ["large"] and len(words["red"][1]) == 5
    assert edit_caption(caption, 2, "right").startswith("on the right there is")
    with pytest.raises(ValueError, match="index"):
        edit_caption(caption, 0, "in")
    with pytest.raises(ValueError, match="new_word"):
        edit_caption(caption, 2, "top")


def test_marks_html_colours_each_verdict():
    out = marks_html([("a", "glue"), ("red", "right"), ("cross", "wrong")])
    assert out.count("<span") == 3 and "mm-wrong" in out and "line-through" in out and "mm-right" in out


def test_caption_view_marks_every_method(model):
    v = caption_view(model, seed=3, n_objects=2)
    assert set(v.captions) == {"greedy", "beam", "nucleus"} and png_size(v.png)[0] > 200
    truth_objects = len(widget_scene(3, 2).captions[0].split(" and "))
    assert truth_objects == 2 and v.truth == widget_scene(3, 2).captions[0]
    assert v.html.count("<tr>") == 3
    from mmcourse.blip.captions import scene_objects
    truth = scene_objects(widget_scene(3, 2), 0)
    for m, c in v.captions.items():
        assert v.wrong[m] == sum(x == "wrong" for _, x in word_marks(c, truth))
    assert caption_view(model, 3, 2).captions == v.captions  # seeded, nucleus included
    with pytest.raises(ValueError, match="n_objects"):
        caption_view(model, 0, 4)
    with pytest.raises(ValueError, match="seed"):
        caption_view(model, -1, 1)


def test_matching_view_scores_both_captions(model):
    v = matching_view(model, seed=5, n_objects=1)
    assert v.caption != v.edited and len(v.caption.split()) == len(v.edited.split())
    images = widget_scene(5, 1).images.expand(2, -1, -1, -1)
    assert torch.allclose(torch.tensor(v.itm), itm_scores(model, images, [v.caption, v.edited]), atol=1e-6)
    assert torch.allclose(torch.tensor(v.itc), itc_scores(model, images, [v.caption, v.edited]), atol=1e-6)
    i, w, alts = editable_words(v.caption)[-1]
    v2 = matching_view(model, 5, 1, i, alts[-1])
    assert v2.edited.split()[i] == alts[-1] and "ITM prefers" in v2.html


def test_explorers_update_on_their_controls(model):
    box = caption_explorer(model)
    controls, row = box.children
    seed, n_objects, _ = controls.children
    image, text = row.children
    before = text.value
    n_objects.value = 3
    assert text.value != before and text.value.count("<tr>") == 3
    box = matching_explorer(model)
    (seed, n_objects), (word, new), (image, text) = (c.children for c in box.children)
    caption = widget_scene(0, 1).captions[0]
    colour_index = next(i for i, w, alts in editable_words(caption) if len(alts) == 5 and w in caption.split()[i])
    word.value = colour_index
    assert len(new.options) == 5 and new.value == new.options[0]
    before = text.value
    new.value = new.options[-1]
    assert text.value != before and new.value in text.value
    seed.value = 7
    assert word.value == word.options[0][1] and new.value == new.options[0]

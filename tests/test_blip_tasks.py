"""mmcourse.blip.tasks: reading captions back, one-word changes, scoring, the training loss."""

from __future__ import annotations

import pytest
import torch

from mmcourse.blip import BLIP
from mmcourse.blip.tasks import (ATTRIBUTES, CONTEXT_LENGTH, PairSet, blip_loss_fn, caption_scores, changed_captions,
                                 content_ids, content_key, corrupt_captions, filter_quality, one_word_change,
                                 parse_caption, sample_scenes, scene_objects, shapes_blip_config, tokenizer_for,
                                 word_marks)
from mmcourse.data.shapes import CAPTION_TEMPLATES, COLOUR_NAMES, SHAPES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scenes():
    return sample_scenes(300, seed=0, split="test")


def test_every_caption_reads_back_as_its_scene(scenes):
    assert {len(scene_objects(scenes, i)) for i in range(len(scenes))} == {1, 2, 3}
    for i, c in enumerate(scenes.captions):
        assert content_key(parse_caption(c)) == content_key(scene_objects(scenes, i)), c
    # every template appears, and the longest caption fits the context
    tok = tokenizer_for(BLIP(shapes_blip_config()))
    assert tok.context_length == CONTEXT_LENGTH
    tok(scenes.captions)
    starts = {c.split()[0] for c in scenes.captions}
    assert {"there", "a", "an"} <= starts and len(CAPTION_TEMPLATES) == 5


def test_parse_caption_reads_any_template():
    want = [{"shape": "circle", "colour": "red", "size": "small", "position": "left"}]
    for text in ("a small red circle on the left", "there is a small red circle on the left",
                 "on the left there is a small red circle", "an image with a small red circle on the left"):
        assert parse_caption(text) == want
    two = parse_caption("a large blue square at the top right and a small green cross in the middle")
    assert [o["position"] for o in two] == ["top right", "middle"] and two[1]["colour"] == "green"
    assert parse_caption("a red circle") == [{"shape": "circle", "colour": "red", "size": None, "position": None}]
    with pytest.raises(ValueError, match="caption"):
        parse_caption(["a red circle"])


def test_content_ids_ignore_template_and_order():
    ids = content_ids(["a small red circle on the left", "on the left there is a small red circle",
                       "a small red circle on the right",
                       "a small red circle on the left and a large blue cross at the top",
                       "a large blue cross at the top and a small red circle on the left"])
    assert ids.tolist() == [0, 0, 1, 2, 2]


def test_one_word_change_changes_one_attribute_of_one_object(scenes):
    g = torch.Generator().manual_seed(0)
    changed_any = dict.fromkeys(ATTRIBUTES, 0)
    for i, c in enumerate(scenes.captions):
        truth = scene_objects(scenes, i)
        for a in ATTRIBUTES:
            new = one_word_change(c, a, g)
            if new is None:
                assert a == "position" and all(o["position"] == "middle" for o in truth)
                continue
            changed_any[a] += 1
            old_words, new_words = c.split(), new.split()
            assert len(old_words) == len(new_words) and sum(x != y for x, y in zip(old_words, new_words)) == 1
            assert content_key(parse_caption(new)) != content_key(truth)
            if a != "position":
                marks = word_marks(new, truth)
                assert [m for _, m in marks].count("wrong") == 1, (new, marks)
    assert min(changed_any.values()) > 200
    with pytest.raises(ValueError, match="attribute"):
        one_word_change("a small red circle on the left", "texture")


def test_changed_captions_are_seeded(scenes):
    a, b = changed_captions(scenes, seed=3), changed_captions(scenes, seed=3)
    assert all(a[k][1] == b[k][1] and torch.equal(a[k][0], b[k][0]) for k in ATTRIBUTES)
    assert changed_captions(scenes, seed=4)["colour"][1] != a["colour"][1]


def test_word_marks_and_caption_scores(scenes):
    truth = [{"shape": "circle", "colour": "red", "size": "small", "position": "left"}]
    marks = word_marks("a small blue circle on the left", truth)
    assert marks == [("a", "glue"), ("small", "right"), ("blue", "wrong"), ("circle", "right"), ("on", "glue"),
                     ("the", "glue"), ("left", "right")]
    assert [m for _, m in word_marks("a small red circle on the right", truth)].count("wrong") == 4
    perfect = caption_scores(list(scenes.captions), scenes)
    assert perfect == {"all_right": 1.0, "shape": 1.0, "colour": 1.0, "size": 1.0, "position": 1.0, "objects": 1.0}
    g = torch.Generator().manual_seed(1)
    wrong = caption_scores([one_word_change(c, "colour", g) for c in scenes.captions], scenes)
    assert wrong["all_right"] == 0.0 and wrong["shape"] == 1.0 and 0.3 < wrong["colour"] < 1.0
    with pytest.raises(ValueError, match="captions"):
        caption_scores(["a small red circle"], scenes)


def test_pair_set_and_training_loss_run_one_step():
    batch = sample_scenes(12, seed=5)
    with pytest.raises(ValueError, match="captions"):
        PairSet(batch.images, list(batch.captions)[:3])
    torch.manual_seed(0)
    model = BLIP(shapes_blip_config())
    curves = {}
    for negatives in ("hard", "random"):
        loss_fn = blip_loss_fn(8, PairSet(batch.images, list(batch.captions)), negatives, itm_start=1,
                               history=curves)
        loss = loss_fn(model, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and set(curves) == {"itc", "itm", "lm"}
        # ITM is left out of the sum before itm_start
        assert float(loss.detach()) == pytest.approx(curves["itc"][-1] + curves["lm"][-1], rel=1e-5)
    with pytest.raises(ValueError, match="negatives"):
        model(batch.images[:4], tokenizer_for(model)(batch.captions[:4]), negatives="easy")


def test_corrupt_captions_and_filter_quality(scenes):
    truth = list(scenes.captions)
    noisy, corrupted = corrupt_captions(truth, 0.4, seed=0)
    assert 0.3 < corrupted.float().mean() < 0.5
    for t, n, bad in zip(truth, noisy, corrupted.tolist()):
        assert (t != n) == bad
        if bad:  # one colour or shape word changed
            diff = [(a, b) for a, b in zip(t.split(), n.split()) if a != b]
            assert len(diff) == 1 and diff[0][0] in (*SHAPES, *COLOUR_NAMES)
    again, again_mask = corrupt_captions(truth, 0.4, seed=0)
    assert again == noisy and torch.equal(again_mask, corrupted)
    keep = torch.tensor([True, False, False, True, False])
    bad = torch.tensor([False, True, False, False, True])
    q = filter_quality(keep, bad)
    assert q == pytest.approx({"precision": 2 / 3, "recall": 1.0, "kept": 0.4})
    with pytest.raises(ValueError, match="share"):
        corrupt_captions(truth, 1.5)


def test_caption_limits_length_so_the_filter_can_read_it_back():
    from mmcourse.blip import caption, filter

    torch.manual_seed(1)
    model = BLIP(shapes_blip_config()).eval()   # untrained: it rarely stops by itself
    batch = sample_scenes(6, seed=2)
    texts = caption(model, batch.images, method="nucleus", top_p=1.0, generator=torch.Generator().manual_seed(0))
    assert max(len(t.split()) for t in texts) <= CONTEXT_LENGTH - 2
    keep, probs = filter(model, batch.images, texts)
    assert keep.shape == probs.shape == (6,)


def test_shipped_checkpoint_keeps_its_measured_numbers():
    """blip_shapes: ITM beats ITC on one-word changes and the registry's numbers reproduce (smaller n)."""
    from mmcourse.blip.checkpoints import GATES, load_blip
    from mmcourse.blip.tasks import caption_accuracy, matching_accuracy, retrieval_r1
    from mmcourse.weights import entry

    model = load_blip()
    metrics = entry("blip_shapes").metrics
    assert all(metrics[k] >= v for k, v in GATES.items())
    m = matching_accuracy(model, 200)
    assert m["itm"] >= 0.95 and m["itm"] >= m["itc"]
    # the counts of comparisons only one score gets right explain the difference of the shares
    assert m["comparisons"] > 0 and m["itm_only"] + m["itc_only"] <= m["comparisons"]
    assert m["itm"] - m["itc"] == pytest.approx((m["itm_only"] - m["itc_only"]) / m["comparisons"], abs=1e-6)
    assert abs(caption_accuracy(model, 200)["all_right"] - metrics["caption_single_all_right"]) < 0.1
    assert retrieval_r1(model)["i2t_attribute_r1"] == pytest.approx(metrics["i2t_attribute_r1"], abs=1e-3)


def test_single_share_sets_the_share_of_single_object_scenes():
    from mmcourse.blip.tasks import _batch

    # share 0: the plain 1-3 object draw, unchanged
    images, captions = _batch(None, 48, seed=3)
    plain = sample_scenes(48, seed=3)
    assert torch.equal(images, plain.images) and captions == list(plain.captions)
    # share 0.5: the first half names exactly one object, the rest 1 to 3; the draw is deterministic
    images, captions = _batch(None, 600, seed=4, single_share=0.5)
    assert images.shape == (600, 3, 32, 32) and len(captions) == 600
    counts = torch.tensor([len(parse_caption(c)) for c in captions])
    assert (counts[:300] == 1).all()
    assert set(counts[300:].tolist()) == {1, 2, 3}
    assert 0.6 < (counts == 1).float().mean() < 0.74  # about 1/2 + 1/2 * 1/3
    again = _batch(None, 600, seed=4, single_share=0.5)
    assert torch.equal(again[0], images) and again[1] == captions
    images, captions = _batch(None, 20, seed=4, single_share=1.0)
    assert all(len(parse_caption(c)) == 1 for c in captions)
    with pytest.raises(ValueError, match="single_share"):
        blip_loss_fn(single_share=1.5)


def test_capfilt_experiment_runs_end_to_end_and_its_numbers_agree():
    from mmcourse.blip.tasks import capfilt_experiment

    out = capfilt_experiment(n_images=96, steps=2, finetune_steps=1, batch_size=32, eval_n=20, progress=False)
    # the official filter is the 0.5 threshold of the sweep; recall can only fall as the threshold falls
    assert out["filter"] == out["filter_by_threshold"]["0.5"]
    recalls = [out["filter_by_threshold"][t]["recall"] for t in ("0.1", "0.2", "0.3", "0.5", "0.7", "0.9")]
    assert recalls == sorted(recalls)
    assert out["bootstrapped_set"]["pairs"] == round(out["filter"]["kept"] * 96) + round(out["synthetic"]["kept"] * 96) + 32
    assert set(out["models"]) == {"noisy", "bootstrapped", "clean"}
    assert 0.0 <= out["noisy_set_right"] <= 1.0 and len(out["examples"]) == 8

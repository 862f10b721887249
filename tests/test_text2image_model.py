"""The shipped text-to-image checkpoint (``text2image_shapes``).

It meets the course's targets (autoencoder shape kept >= 0.98, shape and colour >= 0.90 at the
best guidance scale), and its registry row says so; these tests hold it to what it measured, on
fresh scenes and prompts, with bounds about three standard errors below the registry's values
(kept 0.98 on 2,000 scenes; at w = 2 on 300 prompts shape 0.93, colour 0.99, position 1.0),
and check the claims the notebook makes: guidance helps, colour and place are learned at least
as well as the shape.
"""

from __future__ import annotations

import pytest
import torch

from mmcourse.text2image.judges import Judges
from mmcourse.text2image.prompts import prompt_set
from mmcourse.text2image.recipe import TARGETS
from mmcourse.text2image.tasks import generate, load_text2image, world
from mmcourse.weights import entry


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_text2image()


@pytest.fixture(scope="module")
def judges():
    return Judges.load()


def test_registry_says_whether_the_targets_were_met():
    m = entry("text2image_shapes").metrics
    met = m["ae_shape_kept"] >= TARGETS["ae_shape_kept"] and m["best_shape_and_colour"] >= TARGETS["best_shape_and_colour"]
    assert m["targets_met"] == float(met)
    assert m["best_shape_and_colour"] > m["w0_shape_and_colour"] + 0.1


def test_autoencoder_round_trip(model, judges):
    b = world().sample(300, seed=31, split="test")
    with torch.no_grad():
        r = model.ae.decode(model.ae.encode(b.images))
    assert float(((r - b.images) ** 2).mean()) < 0.002
    assert (judges.shape(r) == judges.shape(b.images)).float().mean() >= 0.95  # the shape label kept
    lab = judges.labels(r)
    assert (lab[:, 1] == b.colour[:, 0]).float().mean() >= 0.98   # colour survives
    assert (lab[:, 3] == b.position[:, 0]).float().mean() >= 0.98  # and so does the place


@pytest.mark.slow  # a re-measurement (about 5 s alone)
def test_guidance_helps_and_colour_and_place_at_least_match_the_shape(model, judges):
    best = entry("text2image_shapes").metrics["best_guidance_scale"]
    prompts, labels = prompt_set(60, seed=17, split="test")
    acc = {}
    for w in (0.0, best):
        got = judges.labels(generate(model, prompts, w, steps=50, seed=3))
        acc[w] = (got == labels).float().mean(dim=0)  # shape, colour, size, position
    assert acc[best][0] >= 0.8 and acc[best][1] >= 0.9 and acc[best][3] >= 0.9, acc
    assert acc[best][1] > acc[0.0][1] + 0.5 and acc[best][3] > acc[0.0][3] + 0.5, acc
    assert acc[best][1] >= acc[best][0] and acc[best][3] >= acc[best][0], acc


@pytest.mark.slow  # a long re-measurement (about 25 s alone): make test, not test-fast
def test_the_targets_hold_when_measured_again(model, judges):
    """The registry's two targets, measured again the way the builder measured them."""
    from mmcourse.text2image.recipe import EVAL, autoencoder_quality, guidance_accuracy

    m = entry("text2image_shapes").metrics
    kept = autoencoder_quality(model.ae, judges)["ae_shape_kept"]           # 2,000 test scenes
    assert kept >= TARGETS["ae_shape_kept"] and abs(kept - m["ae_shape_kept"]) < 0.005, kept
    best = m["best_guidance_scale"]
    row = guidance_accuracy(model, judges, EVAL["n_prompts"], [best], EVAL["steps"], EVAL["seed"])[str(float(best))]
    assert row["shape_and_colour"] >= TARGETS["best_shape_and_colour"], row
    assert abs(row["shape_and_colour"] - m["best_shape_and_colour"]) < 0.02, row

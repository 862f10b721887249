"""ShapesWorld: labels, geometry, occlusion, captions, splits, colour modes and input checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mmcourse.data import shapes
from mmcourse.data.shapes import (
    CAPTION_TEMPLATES, COLOUR_NAMES, COLOURS, HELDOUT_COMBOS, POSITION_PHRASES, POSITIONS, SHAPES,
    SIZES, SceneBatch, ShapesWorld, describe, pair_counts,
)

HELDOUT = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELDOUT_COMBOS}


@pytest.fixture(scope="module")
def crowded() -> tuple[ShapesWorld, SceneBatch]:
    """Nine objects at 24 pixels: the most crowded scenes the rules allow."""
    world = ShapesWorld(image_size=24, min_objects=9, max_objects=9)
    return world, world.sample(300, seed=5)


@pytest.fixture(scope="module")
def mixed() -> tuple[ShapesWorld, SceneBatch]:
    world = ShapesWorld(min_objects=1, max_objects=4)
    return world, world.sample(400, seed=1)


def combos(batch: SceneBatch) -> set[tuple[int, int]]:
    return set(zip(batch.colour[batch.valid].tolist(), batch.shape[batch.valid].tolist()))


# --- the vocabulary ----------------------------------------------------------------------------


def test_vocabulary():
    assert SHAPES == ("circle", "square", "triangle", "diamond", "cross")
    assert len(COLOURS) == 6 and COLOUR_NAMES == tuple(COLOURS) and SIZES == ("small", "large")
    assert len(POSITIONS) == 9 == len(set(POSITIONS)) and set(POSITION_PHRASES) == set(POSITIONS)
    palette = torch.tensor(list(COLOURS.values()))
    assert ((palette >= 0) & (palette <= 1)).all()
    distance = torch.cdist(palette, palette) + 9 * torch.eye(6)
    assert distance.min() > 0.4  # no two named colours look alike
    assert len(CAPTION_TEMPLATES) >= 4


def test_heldout_combos():
    assert len(HELDOUT_COMBOS) == 6 == len(set(HELDOUT_COMBOS))
    assert sorted(c for c, _ in HELDOUT_COMBOS) == sorted(COLOUR_NAMES)  # one per colour
    assert len({s for _, s in HELDOUT_COMBOS}) >= 5
    assert all(s in SHAPES for _, s in HELDOUT_COMBOS)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pair_counts_count_objects_and_hold_out_exactly_the_heldout_pairs(split):
    batch = ShapesWorld(min_objects=1, max_objects=3).sample(600, seed=2, split=split)
    counts = pair_counts(batch)
    assert counts.shape == (len(COLOUR_NAMES), len(SHAPES)) and counts.sum() == batch.valid.sum()
    zero = {(int(c), int(s)) for c, s in (counts == 0).nonzero()}
    every = {(c, s) for c in range(len(COLOUR_NAMES)) for s in range(len(SHAPES))}
    assert zero == (HELDOUT if split == "train" else every - HELDOUT)
    first = batch[0].objects[0]  # one object counted where it belongs
    assert counts[COLOUR_NAMES.index(first["colour"]), SHAPES.index(first["shape"])] >= 1


# --- shapes, dtypes, padding -------------------------------------------------------------------


def test_batch_fields(mixed):
    world, b = mixed
    n, K, S = 400, 4, 32
    assert len(b) == n and len(b.captions) == len(b.phrases) == len(b.spans) == n
    assert b.images.shape == (n, 3, S, S) and b.images.dtype == torch.float32
    assert 0 <= b.images.min() and b.images.max() <= 1
    assert b.masks.shape == (n, K, S, S) and b.masks.dtype == torch.bool
    assert b.boxes.shape == (n, K, 4) and b.boxes.dtype == torch.float32
    assert b.rgb.shape == (n, K, 3) and b.rgb.dtype == torch.float32
    assert b.valid.shape == (n, K) and b.valid.dtype == torch.bool
    counts = b.valid.sum(1)
    assert counts.min() == 1 and counts.max() == 4  # both ends of the range occur
    # real objects come first, then padding
    assert (b.valid == (torch.arange(K) < counts[:, None])).all()
    for t, names in ((b.shape, SHAPES), (b.colour, COLOUR_NAMES), (b.size, SIZES), (b.position, POSITIONS)):
        assert t.shape == (n, K) and t.dtype == torch.int64
        assert (t[~b.valid] == -1).all()
        assert (t[b.valid] >= 0).all() and (t[b.valid] < len(names)).all()
    assert not b.masks[~b.valid].any() and (b.boxes[~b.valid] == 0).all() and (b.rgb[~b.valid] == 0).all()
    assert b.masks[b.valid].flatten(1).any(1).all()  # every real object shows up
    for i in range(n):
        assert len(b.phrases[i]) == len(b.spans[i]) == counts[i]
        positions = b.position[i, : counts[i]].tolist()
        assert len(set(positions)) == len(positions)  # one object per grid cell


def test_getitem(mixed):
    _, b = mixed
    i = int(b.valid.sum(1).argmax())
    scene = b[i]
    assert torch.equal(scene.image, b.images[i]) and torch.equal(scene.masks, b.masks[i])
    assert scene.caption == b.captions[i] and len(scene.objects) == int(b.valid[i].sum())
    for k, obj in enumerate(scene.objects):
        assert obj["shape"] == SHAPES[b.shape[i, k]] and obj["colour"] == COLOUR_NAMES[b.colour[i, k]]
        assert obj["size"] == SIZES[b.size[i, k]] and obj["position"] == POSITIONS[b.position[i, k]]
        assert obj["phrase"] == b.phrases[i][k] and obj["span"] == b.spans[i][k]
        assert obj["box"] == tuple(b.boxes[i, k].tolist())
    assert b[-1].caption == b.captions[-1]
    with pytest.raises(IndexError):
        b[len(b)]


# --- determinism and splits --------------------------------------------------------------------


def test_deterministic():
    world = ShapesWorld(max_objects=3, colour_mode="random")
    a, b, c = world.sample(64, seed=3), world.sample(64, seed=3), world.sample(64, seed=4)
    for field in ("images", "masks", "boxes", "shape", "colour", "rgb"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.captions == b.captions and a.spans == b.spans
    assert not torch.equal(a.images, c.images) and a.captions != c.captions
    # train and test draw from different streams: no shared scene
    test = world.sample(64, seed=3, split="test")
    assert not (a.images[:, None] == test.images[None]).flatten(2).all(2).any()


def test_splits():
    world = ShapesWorld(max_objects=2)
    train, test = world.sample(2000, seed=0), world.sample(2000, seed=0, split="test")
    heldout, every = world.sample(500, seed=0, split="heldout"), world.sample(2000, seed=0, split="all")
    assert not combos(train) & HELDOUT and not combos(test) & HELDOUT
    assert len(combos(train)) == 30 - 6  # and every seen combo is used
    assert combos(heldout) == HELDOUT
    assert combos(every) >= HELDOUT and len(combos(every)) == 30


def test_subsets():
    world = ShapesWorld(shapes=("circle", "cross"), colours=["red", "blue"])
    assert world.shapes == ("circle", "cross") and world.colours == ("red", "blue")
    b = world.sample(300, split="all")
    assert set(b.shape[b.valid].tolist()) == {0, 4} and set(b.colour[b.valid].tolist()) == {0, 2}
    assert ShapesWorld(shapes=SHAPES) == ShapesWorld()  # None means "all"
    # blue circle is held out: the heldout split of this world only has it
    h = world.sample(50, split="heldout")
    assert combos(h) == {(COLOUR_NAMES.index("blue"), 0)}


# --- geometry and occlusion --------------------------------------------------------------------


@pytest.mark.parametrize("size, count", [(16, 4), (24, 9), (32, 9), (48, 3), (64, 9)])
def test_objects_inside_image_and_cell(size, count):
    world = ShapesWorld(image_size=size, min_objects=count, max_objects=count)
    b = world.sample(100, seed=size)
    assert b.images.shape[-2:] == (size, size)
    for m in (b.masks, world.full_masks(b)):
        border = m[..., 0, :].any() | m[..., -1, :].any() | m[..., :, 0].any() | m[..., :, -1].any()
        assert not border
    # the centre lies in the object's cell of the 3x3 grid
    cell = (b.centres[b.valid] / (size / 3)).floor().long()  # (m, 2) column, row
    p = b.position[b.valid]
    assert (cell[:, 0] == p % 3).all() and (cell[:, 1] == p // 3).all()


def test_sizes_scale_with_image():
    areas = {}
    for size in (32, 64):
        b = ShapesWorld(image_size=size).sample(400, seed=0)
        area = b.masks[:, 0].sum((1, 2)).float()
        areas[size] = [area[b.size[:, 0] == z].mean().item() for z in range(2)]
    assert areas[32][1] > 1.6 * areas[32][0]  # large looks clearly larger than small
    assert areas[64][0] == pytest.approx(4 * areas[32][0], rel=0.15)
    assert areas[64][1] == pytest.approx(4 * areas[32][1], rel=0.15)


def test_occlusion(crowded):
    world, b = crowded
    full, visible = world.full_masks(b), b.masks
    assert (visible.sum(1) <= 1).all()  # visible masks are disjoint
    assert not (visible & ~full).any()  # and part of each object's full mask
    hidden = full & ~visible
    assert hidden.any()  # crowded scenes do overlap...
    kept = visible.sum((2, 3)).float() / full.sum((2, 3)).float()
    assert kept.min() >= 0.5  # ...but every object keeps at least half its pixels
    # painting order: the last object is never covered, the others lose exactly what later ones cover
    assert torch.equal(visible[:, -1], full[:, -1])
    later = full.flip(1).cumsum(1).flip(1) - full.int()  # how many later objects cover a pixel
    assert torch.equal(visible, full & (later == 0))


def test_overlap_retries_and_fallback(monkeypatch):
    # Larger "large" objects overlap a lot, so many placements break the half-visible rule.
    monkeypatch.setitem(shapes.RADIUS, "large", 0.2)
    world = ShapesWorld(min_objects=9, max_objects=9)
    fallbacks = {}
    for retries in (shapes.MAX_RETRIES, 0):
        # with retries=0 every offending scene goes straight to the last resort (all small, on anchors)
        monkeypatch.setattr(shapes, "MAX_RETRIES", retries)
        b = world.sample(200, seed=0)
        kept = b.masks.sum((2, 3)).float() / world.full_masks(b).sum((2, 3)).float()
        assert kept.min() >= 0.5
        all_small = (b.size == 0).all(1)
        fallbacks[retries] = int(all_small.sum())
        i = int(all_small.nonzero()[-1])
        assert all(p.startswith("small ") for p in b.phrases[i]) and " large " not in b.captions[i]
    retried = max(fallbacks)
    assert fallbacks[0] > 50 and fallbacks[retried] < fallbacks[0] / 5  # re-jittering fixes most


def test_boxes_are_tight(mixed):
    _, b = mixed
    for i, k in b.valid.nonzero().tolist():
        ys, xs = np.nonzero(b.masks[i, k].numpy())
        assert b.boxes[i, k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


# --- captions ----------------------------------------------------------------------------------


def test_captions_and_spans(mixed):
    _, b = mixed
    vocabulary = set()
    for i in range(len(b)):
        caption = b.captions[i]
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", caption), caption
        vocabulary.update(caption.split())
        for k, ((s, e), phrase) in enumerate(zip(b.spans[i], b.phrases[i])):
            assert caption[s:e] == phrase
            assert phrase == f"{SIZES[b.size[i, k]]} {COLOUR_NAMES[b.colour[i, k]]} {SHAPES[b.shape[i, k]]}"
            where = POSITION_PHRASES[POSITIONS[b.position[i, k]]]
            # the position is said right after the phrase, or right before "there is a <phrase>"
            assert caption[e:].startswith(" " + where) or caption[:s].endswith(where + " there is a ")
        if len(b.spans[i]) > 1:
            assert caption.count(" and ") == len(b.spans[i]) - 1
    assert len(vocabulary) <= 40  # small enough for a word-level tokenizer
    # all five templates show up
    openings = ("there is a ", "a picture of a ", "an image with a ", "a small ", "a large ")
    kinds = {next((o for o in openings if c.startswith(o)), "position first") for c in b.captions}
    assert len(kinds) == 6


def test_describe():
    assert describe("circle", "red", "small", "top left") == "a small red circle at the top left"
    assert describe("cross", None, "large", "middle") == "a large cross in the middle"
    with pytest.raises(ValueError, match="shape"):
        describe("hexagon", "red", "small", "top")


# --- colours -----------------------------------------------------------------------------------


def test_named_colours_are_exact():
    world = ShapesWorld(min_objects=1, max_objects=3, noise=0.0)
    b = world.sample(100, seed=2)
    for i, k in b.valid.nonzero().tolist():
        assert torch.equal(b.rgb[i, k], torch.tensor(COLOURS[COLOUR_NAMES[b.colour[i, k]]]))
        pixels = b.images[i][:, b.masks[i, k]].T  # (m, 3)
        exact = (pixels - b.rgb[i, k]).abs().max(1).values < 1e-6
        assert exact.sum() >= 3 and exact.float().mean() > 0.25  # only the soft edge blends


def test_noise():
    clean = ShapesWorld(noise=0.0).sample(200, seed=2)
    noisy = ShapesWorld(noise=0.05).sample(200, seed=2)  # the same scenes plus noise
    assert torch.equal(clean.masks, noisy.masks)
    inside = (clean.images > 0.2) & (clean.images < 0.8)  # away from the clamp at 0 and 1
    diff = (noisy.images - clean.images)[inside]
    assert abs(diff.mean()) < 0.005 and diff.std() == pytest.approx(0.05, rel=0.05)
    assert 0 <= noisy.images.min() and noisy.images.max() <= 1


def test_backgrounds_differ_from_objects():
    b = ShapesWorld(noise=0.0).sample(500, seed=0)
    corner = b.images[:, :, 0, 0]  # never covered: the background
    assert torch.cdist(corner, torch.tensor(list(COLOURS.values()))).min() > 0.4
    assert (corner.max(1).values < 0.4).any() and (corner.min(1).values > 0.6).any()  # dark and light


def test_jitter_colours():
    b = ShapesWorld(colour_mode="jitter").sample(300, seed=0)
    named = torch.tensor(list(COLOURS.values()))[b.colour[:, 0]]
    offset = (b.rgb[:, 0] - named).abs()
    assert offset.max() <= shapes.RGB_JITTER + 1e-6 and offset.mean() > shapes.RGB_JITTER / 4


def test_random_colours():
    world = ShapesWorld(colour_mode="random", max_objects=2)
    b = world.sample(500, seed=0)
    rgb, label = b.rgb[b.valid], b.colour[b.valid]
    palette = torch.tensor(list(COLOURS.values()))
    assert torch.equal(torch.cdist(rgb, palette).argmin(1), label)  # label = nearest named colour
    assert torch.cdist(rgb, palette).min(1).values.mean() > 0.1  # not just the palette
    for phrases, colours in zip(b.phrases, b.colour.tolist()):
        assert [p.split()[1] for p in phrases] == [COLOUR_NAMES[c] for c in colours[: len(phrases)]]
    quiet = ShapesWorld(colour_mode="random", random_caption_colour="none").sample(200, seed=0)
    words = {w for c in quiet.captions for w in c.split()}
    assert not words & set(COLOUR_NAMES)
    for i, (size, shape) in enumerate(zip(quiet.size[:, 0].tolist(), quiet.shape[:, 0].tolist())):
        s, e = quiet.spans[i][0]
        assert quiet.captions[i][s:e] == quiet.phrases[i][0] == f"{SIZES[size]} {SHAPES[shape]}"


# --- render ------------------------------------------------------------------------------------


def test_render():
    world = ShapesWorld(max_objects=3, noise=0.0)
    objects = [dict(shape="cross", colour="blue", size="large", position="middle"),
               dict(shape="triangle", colour=(0.95, 0.6, 0.1), size="small", position="bottom right")]
    scene = world.render(objects, seed=1)
    assert scene.image.shape == (3, 32, 32) and scene.masks.shape == (3, 32, 32)
    assert scene.valid.tolist() == [True, True, False]
    assert [o["shape"] for o in scene.objects] == ["cross", "triangle"]
    assert [o["colour"] for o in scene.objects] == ["blue", "orange"]  # nearest named colour
    assert scene.phrases == ["large blue cross", "small orange triangle"]
    assert torch.allclose(scene.rgb[1], torch.tensor([0.95, 0.6, 0.1]))
    for (s, e), phrase in zip(scene.spans, scene.phrases):
        assert scene.caption[s:e] == phrase
    # the cross is centred in the image, the triangle in the bottom-right cell
    x0, y0, x1, y1 = scene.boxes[0].tolist()
    assert abs((x0 + x1) / 2 - 16) <= 2 and abs((y0 + y1) / 2 - 16) <= 2
    assert (scene.centres[1] > 32 * 2 / 3).all()
    again = world.render(objects, seed=1)
    assert torch.equal(again.image, scene.image) and again.caption == scene.caption


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=8), "image_size"),
    (dict(image_size=32.0), "image_size"),
    (dict(image_size=16, max_objects=5), "image_size.*max_objects"),
    (dict(min_objects=0), "min_objects"),
    (dict(max_objects=10), "max_objects.*9"),
    (dict(min_objects=3, max_objects=2), "max_objects"),
    (dict(colour_mode="grey"), "colour_mode.*named, jitter, random"),
    (dict(shapes=("circle", "hexagon")), "shapes.*circle, square"),
    (dict(shapes=()), "shapes"),
    (dict(colours=("pink",)), "colours.*red, green"),
    (dict(noise=-0.1), "noise"),
    (dict(random_caption_colour="always"), "random_caption_colour.*nearest, none"),
])
def test_bad_world(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesWorld(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be an int in 1..200,000"),
    (dict(n=2.5), "n must be an int in 1..200,000"),
    (dict(n=4, split="val"), "split.*train, test, heldout, all"),
    (dict(n=4, seed=-1), "seed"),
])
def test_bad_sample(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesWorld().sample(**kwargs)


def test_bad_split_for_subset():
    with pytest.raises(ValueError, match="split='train'"):
        ShapesWorld(shapes=("circle",), colours=("blue",)).sample(4)


def _obj(**change) -> dict:
    return dict(dict(shape="circle", colour="red", size="small", position="top"), **change)


@pytest.mark.parametrize("objects, match", [
    ([], "objects"),
    ([_obj(shape="star")], "shape.*circle"),
    ([_obj(colour="pink")], "colour.*red"),
    ([_obj(colour=(1.0, 2.0, 0.0))], "colour"),
    ([_obj(size="medium")], "size.*small, large"),
    ([_obj(position="centre")], "position.*middle"),
    ([{"shape": "circle", "colour": "red", "size": "small"}], "position"),
    ([_obj(), _obj(shape="square")], "position"),
    ([_obj(position=p) for p in POSITIONS] + [_obj()], "objects"),
])
def test_bad_render(objects, match):
    with pytest.raises(ValueError, match=match):
        ShapesWorld().render(objects)
    if objects and objects[0].get("shape") == "star":  # also outside the world's own subset
        with pytest.raises(ValueError, match="shape"):
            ShapesWorld(shapes=("square",)).render([_obj()])


def test_draw_objects_places_objects_at_given_centres():
    """draw_objects (SAM's tracking clip): objects at explicit pixel centres, one background per clip."""
    w = ShapesWorld(image_size=64, noise=0.0)
    centres = torch.tensor([[[20.0, 20.0], [44.0, 40.0]], [[24.0, 21.0], [44.0, 40.0]]])  # object 0 moves right
    clip = w.draw_objects(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([1, 0]), centres, seed=3)
    assert clip.images.shape == (2, 3, 64, 64) and clip.masks.shape == (2, 2, 64, 64)
    # the mask moves with the centre: its box shifts by the offset, the static object stays put
    assert torch.allclose(clip.boxes[1, 0] - clip.boxes[0, 0], torch.tensor([4.0, 1.0, 4.0, 1.0]))
    assert torch.equal(clip.masks[0, 1], clip.masks[1, 1])
    # same background in every frame (noise off: identical far from the objects)
    assert torch.equal(clip.images[0, :, 60:, :5], clip.images[1, :, 60:, :5])
    # later objects cover earlier ones
    over = w.draw_objects(torch.tensor([1, 1]), torch.tensor([0, 2]), torch.tensor([1, 1]),
                          torch.tensor([[[30.0, 30.0], [36.0, 30.0]]]))
    assert not (over.masks[0, 0] & over.masks[0, 1]).any() and over.masks[0, 1].sum() > over.masks[0, 0].sum()
    with pytest.raises(ValueError, match="centres must have shape"):
        w.draw_objects(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="shape indices"):
        w.draw_objects(torch.tensor([7]), torch.tensor([0]), torch.tensor([0]), torch.zeros(1, 1, 2))

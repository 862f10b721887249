"""mmcourse.sam.tasks (targets, prompts, losses, the route), the notebook's checkers and widget logic,
and the shipped checkpoint's targets."""

import pytest
import torch

from mmcourse.checks.sam import (check_click_from_error, check_postprocess_masks, check_random_fourier_pe,
                                 click_from_error_reference, postprocess_masks_reference, random_fourier_pe_reference)
from mmcourse.sam.tasks import (HELDOUT_SHAPE, TRAIN_SHAPES, Recipe, box_iou, click_from_error, dice_loss, eval_set,
                                focal_loss, interior_point, level_masks, mask_box, mask_iou, mask_loss, moving_clip,
                                nms, noisy_boxes, phrase, random_points, stability_score, text_targets, world)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_levels_part_whole_group():
    w = world()
    batch = w.sample(300, seed=0, split="all")
    lv = level_masks(batch, w)                                   # (B, K, 3, H, W)
    part, whole, group = lv[:, :, 0], lv[:, :, 1], lv[:, :, 2]
    assert torch.equal(part, batch.masks)
    assert torch.equal(whole, w.full_masks(batch))
    assert bool((part <= whole).all()) and bool((part <= group).all())     # the part lies inside both
    # an isolated, unhidden object: all three readings coincide
    lone = batch.valid & (part == group).flatten(2).all(-1) & (part == whole).flatten(2).all(-1)
    assert lone.sum() > 0.7 * batch.valid.sum()
    # a group is the union of visible parts of objects whose shapes touch, so it covers a neighbour
    grouped = (group != part).flatten(2).any(-1)
    assert grouped.any()
    b, k = grouped.nonzero()[0].tolist()
    others = part[b][[j for j in range(part.shape[1]) if j != k]]
    assert bool((group[b, k] & others.any(0)).any())


def test_training_world_has_no_heldout_shape():
    assert HELDOUT_SHAPE not in TRAIN_SHAPES
    batch = world(train=True).sample(200, seed=1, split="all")
    assert not (batch.shape == 4).any()


def test_mask_box_matches_shapesworld_boxes():
    batch = world().sample(50, seed=2, split="all")
    assert torch.equal(mask_box(batch.masks), batch.boxes)


def test_random_points_lie_inside_and_click_rule():
    g = torch.Generator().manual_seed(0)
    batch = world().sample(40, seed=3, split="all")
    m = batch.masks[:, 0]
    p = random_points(m, g).long()
    assert bool(m[torch.arange(40), p[:, 1], p[:, 0]].all())
    target = m
    pred = torch.zeros_like(m)                                  # nothing predicted: positive clicks inside
    pts, lab = click_from_error(pred, target, torch.rand(m.shape, generator=g))
    assert bool((lab == 1).all())
    pred = target | torch.roll(target, 5, dims=2)               # over-covering: clicks on wrong pixels are negative
    pts, lab = click_from_error(pred, target, torch.rand(m.shape, generator=g))
    x, y = pts[:, 0].long(), pts[:, 1].long()
    assert bool((pred ^ target)[torch.arange(40), y, x].all())
    assert bool((lab == target[torch.arange(40), y, x].long()).all())


def test_losses_and_iou():
    t = torch.zeros(2, 1, 8, 8)
    t[:, :, 2:6, 2:6] = 1
    good, bad = (t * 20 - 10), (10 - t * 20)
    assert focal_loss(good, t).max() < 1e-3 < focal_loss(bad, t).min()
    assert dice_loss(good, t).max() < 0.01 and dice_loss(bad, t).min() > 0.9
    assert torch.equal(mask_iou(t.bool(), t.bool()), torch.ones(2, 1))
    # mask_loss picks the best of K masks and is differentiable
    low = torch.stack([bad[:, 0], good[:, 0]], 1).repeat_interleave(4, -1).repeat_interleave(4, -2)[..., :32, :32]
    low = low.clone().requires_grad_()
    target = torch.zeros(2, 64, 64, dtype=torch.bool)
    target[:, 16:48, 16:48] = True
    loss, best = mask_loss(low, torch.zeros(2, 2), target)
    assert best.tolist() == [1, 1]
    loss.sum().backward()
    assert low.grad[:, 0].abs().sum() == 0 and low.grad[:, 1].abs().sum() > 0


def test_noisy_boxes_stay_valid_and_close():
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[10.0, 12.0, 30.0, 40.0]]).repeat(100, 1)
    nb = noisy_boxes(boxes, g)
    assert bool((nb[:, 0] <= nb[:, 2]).all()) and bool((nb[:, 1] <= nb[:, 3]).all())
    assert (nb - boxes).abs().max() <= 3.0 and (nb - boxes).abs().mean() > 0.3


def test_text_targets_union_of_named_objects():
    batch = world().sample(100, seed=4, split="all")
    k = torch.zeros(100, dtype=torch.long)
    t = text_targets(batch, k, torch.ones(100, dtype=torch.bool))
    assert bool((t >= batch.masks[:, 0]).all())
    assert phrase(2, 0) == "the red triangle" and phrase(0, 1, 0) == "the small green circle"


def test_eval_sets():
    es = eval_set(30, seed=1, target="heldout")
    assert bool((es.batch.shape[torch.arange(30), es.k] == 4).all())
    es = eval_set(20, seed=1, target="ambiguous")
    lv = es.levels
    assert bool(((lv[:, 0] != lv[:, 1]).flatten(1).any(1) & (lv[:, 1] != lv[:, 2]).flatten(1).any(1)).all())
    x, y = es.clicks[:, 0].long(), es.clicks[:, 1].long()
    assert bool(lv[torch.arange(20), 0, y, x].all())            # the click is on the visible part
    with pytest.raises(ValueError, match="target must be"):
        eval_set(5, target="plain")


def test_nms_box_iou_stability_interior():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    assert box_iou(boxes, boxes)[0, 1].item() == pytest.approx(81 / 100)
    assert nms(boxes, torch.tensor([0.9, 0.95, 0.5]), 0.5).tolist() == [1, 2]
    sharp = torch.full((1, 8, 8), -20.0)
    sharp[0, 2:6, 2:6] = 20
    assert stability_score(sharp).item() == 1.0
    assert stability_score(sharp * 0.01).item() < 1.0
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[0, 1:8, 2:7] = True
    x, y = interior_point(m)[0].tolist()                       # 3 pixels deep: column 4, rows 3-5 tie
    assert x == 4.0 and y in (3.0, 4.0, 5.0)


def test_moving_clip():
    clip, k = moving_clip(8)
    assert clip.images.shape == (8, 3, 64, 64)
    boxes = mask_box(clip.masks[:, k])
    assert boxes[-1, 0] > boxes[0, 0] + 20                    # it moves right


def test_checkers_accept_the_reference_and_reject_mistakes(capsys):
    assert check_random_fourier_pe(random_fourier_pe_reference)
    assert not check_random_fourier_pe(lambda c, G: random_fourier_pe_reference(c, G).flip(-1))   # cos first
    assert not check_random_fourier_pe(lambda c, G: random_fourier_pe_reference((c + 1) / 2, G))  # no 2c - 1
    assert check_click_from_error(click_from_error_reference)
    assert not check_click_from_error(lambda p, t, u: (click_from_error_reference(p, t, u)[0],
                                                      1 - click_from_error_reference(p, t, u)[1]))  # labels swapped
    yx = lambda p, t, u: (click_from_error_reference(p, t, u)[0].flip(-1), click_from_error_reference(p, t, u)[1])  # noqa: E731
    assert not check_click_from_error(yx)                                                          # (y, x) order
    assert check_postprocess_masks(postprocess_masks_reference)
    assert not check_postprocess_masks(lambda l, s, i, o: postprocess_masks_reference(l, s, i, o) | True)
    no_crop = lambda l, s, i, o: torch.nn.functional.interpolate(  # noqa: E731
        l[None], o, mode="bilinear", align_corners=False)[0] > 0
    assert not check_postprocess_masks(no_crop)
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# The shipped checkpoint
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from mmcourse.sam.tasks import load_sam
    from mmcourse.weights import available

    if "sam_shapes" not in available():
        pytest.fail("sam_shapes is not registered (python -m mmcourse.weights.build sam_shapes)")
    return load_sam()


@pytest.mark.slow  # a long re-measurement (about 10 s alone)
def test_shipped_checkpoint_meets_its_targets(shipped):
    from mmcourse.sam.tasks import evaluate

    m = evaluate(shipped, n=500, seed=1)
    assert m["seen_1click_miou"] >= 0.92, m     # issue 11's targets; the patch-8 model had 0.901 / 0.906
    assert m["seen_box_miou"] >= 0.92, m
    assert m["heldout_1click_miou"] >= 0.78, m


def test_widget_session_logic(shipped):
    from mmcourse.sam.widgets import ClickSession, draw_session

    es = eval_set(2, seed=7)
    s = ClickSession(shipped, es.images[0])
    r = s.predict()
    assert r.masks is None and "no prompt" in r.status
    x, y = es.clicks[0].tolist()
    r = s.click(x, y)
    assert r.masks.shape == (3, 64, 64) and r.multimask and r.best == int(r.iou_predictions.argmax())
    assert mask_iou(r.masks[r.best], es.levels[0, 0]).item() > 0.7
    r2 = s.click(2, 2, positive=False)
    assert not r2.multimask and "1 positive, 1 negative" in r2.status and r2.decoder_ms > 0
    r3 = s.drag(40, 50, 10, 5)                                  # corners in any order
    assert s.box == (10.0, 5.0, 40.0, 50.0) and "a box" in r3.status
    r4 = s.click(200, -5)                                        # clamped into the image
    assert s.points[-1] == (64 - 1e-3, 0.0) and r4.masks is not None
    assert s.reset().masks is None and s.points == [] and s.box is None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4)
    draw_session(axes, s, s.click(x, y))
    assert len(axes[0].images) == 1
    plt.close(fig)


def test_route_on_the_shipped_model(shipped):
    from mmcourse.sam.tasks import route, track

    r = route(shipped, n=8, seed=21)
    assert r["AP50_class_agnostic"] > 0.5 and r["recognition_shape_accuracy"] > 0.5, r
    clip, k = moving_clip(12)
    t = track(shipped, clip, k)
    # the first frames are tracked well; the track breaks behind the occluder (clip 0: mIoU 0.44)
    assert len(t["iou_per_frame"]) == 12 and min(t["iou_per_frame"][:3]) > 0.8 and t["miou"] > 0.3, t["iou_per_frame"]


def test_shapes_config_grid():
    """Patch 4 (shipped): 16 x 16 image tokens and 64 x 64 low-res masks, the image's own size;
    patch 8: 8 x 8 and 32 x 32. Other patch sizes are refused by name."""
    from mmcourse.sam import Sam
    from mmcourse.sam.tasks import shapes_sam_config

    for patch, grid in ((4, 16), (8, 8)):
        sam = Sam(shapes_sam_config(patch_size=patch)).eval()
        assert sam.prompt_encoder.image_embedding_size == (grid, grid)
        with torch.no_grad():
            emb = sam.embed(torch.rand(1, 3, 64, 64))
            low, iou = sam.decode(emb, torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1, dtype=torch.long))
        assert emb.shape == (1, 64, grid, grid) and low.shape == (1, 3, 4 * grid, 4 * grid) and iou.shape == (1, 3)
    with pytest.raises(ValueError, match="patch_size"):
        shapes_sam_config(patch_size=5)

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from mmcourse.viz import caption_html, overlay_masks, scene_view, show_images  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_scene_view_renders_a_png_and_the_scenes_caption():
    v = scene_view(seed=3, n_objects=2)
    assert v.png.startswith(PNG)
    assert v.caption == v.scene.caption and int(v.scene.valid.sum()) == 2
    for o in v.scene.objects:  # every phrase is highlighted in the HTML
        s, e = o["span"]
        assert v.scene.caption[s:e] in v.caption_html


def test_scene_view_changes_with_the_seed_and_is_deterministic():
    a, b, a2 = scene_view(seed=0), scene_view(seed=1), scene_view(seed=0)
    assert a.caption == a2.caption and torch.equal(a.scene.image, a2.scene.image)
    assert not torch.equal(a.scene.image, b.scene.image)


@pytest.mark.parametrize("shape, colour", [("triangle", "any"), ("any", "purple"), ("cross", "orange")])
def test_pickers_force_the_first_object(shape, colour):
    v = scene_view(seed=7, n_objects=3, shape=shape, colour=colour)
    first = v.scene.objects[0]
    if shape != "any":
        assert first["shape"] == shape and shape in v.caption
    if colour != "any":
        assert first["colour"] == colour and colour in v.caption


def test_unknown_picker_values_are_rejected_by_name():
    with pytest.raises(ValueError, match="shape"):
        scene_view(shape="hexagon")
    with pytest.raises(ValueError, match="colour"):
        scene_view(colour="teal")


def test_caption_html_escapes_and_keeps_text():
    v = scene_view(seed=2, n_objects=1)
    import re

    assert re.sub(r"<[^>]+>", "", caption_html(v.scene)) == v.caption


def test_overlay_masks_only_changes_masked_pixels():
    img = torch.full((3, 4, 4), 0.5)
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    m[0, 1, 2] = True
    out = overlay_masks(img, m)
    assert out.shape == (4, 4, 3)
    changed = (out != 0.5).any(-1)
    assert changed[1, 2] and changed.sum() == 1


def test_show_images_lays_out_a_grid():
    fig = show_images(torch.rand(10, 3, 8, 8), ncols=4)
    assert len(fig.axes) == 12

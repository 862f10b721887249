import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from mmcourse.viz import (  # noqa: E402
    FIG_DPI,
    SCENE_FIGSIZE,
    WIDGET_PIXEL_RATIO,
    caption_html,
    draw_mask_outlines,
    mask_outline_segments,
    overlay_masks,
    png_size,
    scene_view,
    show_images,
    show_tiles,
    tile_images,
    widget_width,
    wrap_title,
)

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


def test_wrap_title_keeps_every_word_and_respects_the_width():
    caption = "a picture of a large purple cross at the top left and a small red circle in the middle"
    wrapped = wrap_title(caption, 24)
    assert wrapped.replace("\n", " ") == caption  # nothing is cut (the old grid cut at 32 characters)
    assert max(len(line) for line in wrapped.split("\n")) <= 24 and wrapped.count("\n") >= 3
    with pytest.raises(ValueError, match="width"):
        wrap_title(caption, 0)


def test_show_images_wraps_titles_and_grows_the_rows():
    titles = ["a small red circle at the top left and a large blue square in the middle"] * 4
    short = show_images(torch.rand(4, 3, 8, 8), titles=["x"] * 4, ncols=4)
    fig = show_images(torch.rand(4, 3, 8, 8), titles=titles, ncols=4, title_width=20)
    assert fig.axes[0].get_title().replace("\n", " ") == titles[0]
    assert fig.get_figheight() > short.get_figheight()


def test_mask_outline_segments_trace_pixel_edges():
    one = torch.zeros(3, 3, dtype=torch.bool)
    one[1, 1] = True
    segs = mask_outline_segments(one)
    assert segs.shape == (4, 2, 2)  # the four sides of one pixel, at half-integer coordinates
    assert sorted(map(tuple, segs.reshape(-1, 2).tolist())) == sorted([(0.5, 0.5), (1.5, 0.5), (0.5, 1.5), (1.5, 1.5)] * 2)
    bar = torch.zeros(4, 5, dtype=torch.bool)
    bar[1, 1:4] = True  # a 1x3 bar: 3 + 3 horizontal edges and 2 vertical
    assert len(mask_outline_segments(bar)) == 8
    assert len(mask_outline_segments(torch.ones(2, 2, dtype=torch.bool))) == 8  # the border counts
    assert mask_outline_segments(torch.zeros(3, 3, dtype=torch.bool)).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        mask_outline_segments(torch.zeros(2, 3, 3, dtype=torch.bool))


def test_scene_view_outlines_keep_the_object_colours_and_render_at_twice_the_shown_size():
    """Outlines instead of a tint: the picture's right panel shows the image's own pixels."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    scene = scene_view(seed=3, n_objects=2).scene
    ax.imshow(scene.image.permute(1, 2, 0).numpy())
    draw_mask_outlines(ax, scene.masks[scene.valid])
    assert len(ax.collections) == 2 and len(ax.images) == 1
    plt.close(fig)
    v = scene_view(seed=3, n_objects=2)
    width, _ = png_size(v.png)
    assert width == round(SCENE_FIGSIZE[0] * FIG_DPI * WIDGET_PIXEL_RATIO)
    assert widget_width(SCENE_FIGSIZE[0]) == f"{round(SCENE_FIGSIZE[0] * FIG_DPI)}px"
    with pytest.raises(ValueError, match="PNG"):
        png_size(b"GIF89a" + bytes(30))


def test_tile_images_places_each_image_in_its_tile_on_white():
    imgs = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 3) / 10  # image i is all i/10
    grid = tile_images(imgs, ncols=3, pad=1, top=2)
    assert grid.shape == (2 * (2 + 2 + 2), 3 * (3 + 2))
    for i in range(5):
        r, c = divmod(i, 3)
        tile = grid[r * 6:(r + 1) * 6, c * 5:(c + 1) * 5]
        assert (tile[3:5, 1:4] == i / 10).all() and tile[:3].min() == 1.0  # the image, white above it
    assert (grid[6:, 10:] == 1.0).all()  # the missing sixth tile is white
    rgb = tile_images(torch.rand(2, 3, 4, 4), ncols=2)
    assert rgb.shape == (6, 12, 3)
    with pytest.raises(ValueError, match="N, C, H, W"):
        tile_images(torch.rand(4, 4))


def test_show_tiles_draws_one_axes_with_labels():
    import matplotlib.pyplot as plt

    fig = show_tiles(torch.rand(10, 1, 8, 8), ncols=4, labels=[str(i) for i in range(10)], row_labels=["a", "b", "c"])
    try:
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.texts] == [str(i) for i in range(10)]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
        with pytest.raises(ValueError, match="one label per image"):
            show_tiles(torch.rand(3, 1, 8, 8), labels=["x"])
    finally:
        plt.close("all")

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


# -- course figure defaults: twice the pixels, the same displayed size, text >= 8 pt ------------


def test_setup_matplotlib_renders_inline_figures_at_twice_the_pixel_density():
    """In an IPython shell the inline PNG is rendered at 2 x 72 dpi and carries width/height
    metadata at half its pixels, so JupyterLab shows it at the figure's 72-dpi size."""
    import base64

    import matplotlib.pyplot as plt
    from IPython.core.interactiveshell import InteractiveShell

    from mmcourse.viz import setup_matplotlib

    shell = InteractiveShell.instance()
    try:
        setup_matplotlib()
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([0, 1], [0, 1])
        data, meta = shell.display_formatter.format(fig)
        plt.close(fig)
        png = data["image/png"]
        png = base64.b64decode(png) if isinstance(png, str) else png
        w, h = png_size(png)
        # bbox_inches="tight" trims a little, never more than a few dozen pixels
        assert 2 * 4 * FIG_DPI * 0.85 < w <= 2 * 4 * FIG_DPI and 2 * 2 * FIG_DPI * 0.85 < h <= 2 * 2 * FIG_DPI
        assert meta["image/png"] == {"width": w // 2, "height": h // 2}
        # `%matplotlib inline` after setup_matplotlib (every notebook's first cell) keeps it
        from matplotlib_inline.config import InlineBackend

        assert InlineBackend.instance().figure_formats == {"retina"}
    finally:
        InteractiveShell.clear_instance()


def test_text_sizes_finds_small_text_and_the_course_helpers_have_none():
    import matplotlib.pyplot as plt

    from mmcourse.viz import MIN_FONT_PT, draw_boxes, plot_confusion, text_sizes

    fig, ax = plt.subplots()
    ax.set_title("big", fontsize=12)
    ax.text(0, 0, "tiny", fontsize=6)
    sizes = dict((t, s) for s, t in text_sizes(fig))
    assert sizes["tiny"] == 6 and sizes["big"] == 12 and "0.0" in sizes  # tick labels too
    plt.close(fig)

    images = torch.rand(6, 3, 8, 8)
    figs = [show_images(images, titles=[f"a caption {i}" for i in range(6)], ncols=3, suptitle="s"),
            show_tiles(images, ncols=3, labels=[str(i) for i in range(6)], row_labels=["a", "b"], title="t")]
    fig, ax = plt.subplots()
    plot_confusion(ax, torch.randint(0, 9, (5, 5)), list("abcde"), title="c")
    draw_boxes(ax, torch.tensor([[0.0, 0.0, 2.0, 2.0]]), labels=["box"])
    figs.append(fig)
    for fig in figs:
        small = [(s, t) for s, t in text_sizes(fig) if s < MIN_FONT_PT]
        plt.close(fig)
        assert not small, small


def _smallest_text_in_widget_pictures(module, make) -> float:
    """Call make() with the module's figure_png spied on; the smallest text of its figures."""
    from mmcourse.viz import figure_png, text_sizes

    seen = []

    def spy(fig, **kw):
        seen.append(min(s for s, _ in text_sizes(fig)))
        assert kw.get("dpi") == FIG_DPI * WIDGET_PIXEL_RATIO and kw.get("tight") is False, kw
        return figure_png(fig, **kw)

    original = module.figure_png
    module.figure_png = spy
    try:
        make()
    finally:
        module.figure_png = original
    assert seen
    return min(seen)


@pytest.mark.slow  # about 2 s: renders every widget picture (make test runs it)
def test_vit_and_clip_widget_pictures_are_sharp_and_legible():
    """The widget pictures of notebooks 03 and 04: rendered at 2x, shown at their 72-dpi width,
    no text under 8 pt."""
    from mmcourse.clip import CLIP
    from mmcourse.clip import widgets as cw
    from mmcourse.clip.tasks import shapes_clip_config
    from mmcourse.viz import MIN_FONT_PT
    from mmcourse.vit import VisionTransformer, ViTConfig
    from mmcourse.vit import widgets as vw

    torch.manual_seed(0)
    vit = VisionTransformer(ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        _, attns = vit(x, return_attn=True)
    clip = CLIP(shapes_clip_config()).eval()
    bank = cw.build_bank(clip, n=40)
    cases = [(vw, lambda: vw.patch_view(vw.SCENE, 4)), (vw, lambda: vw.patch_view(vw.PHOTO, 16)),
             (vw, lambda: vw.attention_view(x[0], [a[0] for a in attns], title="a title")),
             (cw, lambda: cw.similarity_view(clip, seed=0)),
             (cw, lambda: cw.text_query_view(clip, bank, "a red circle")),
             (cw, lambda: cw.image_query_view(clip, bank, 0))]
    for module, make in cases:
        assert _smallest_text_in_widget_pictures(module, make) >= MIN_FONT_PT
    # shown at the figure's 72-dpi width: the picture is exactly twice as wide in pixels
    png = vw.patch_view(vw.SCENE, 8).png
    assert abs(png_size(png)[0] - WIDGET_PIXEL_RATIO * int(widget_width(vw.PATCH_FIGSIZE[0])[:-2])) <= WIDGET_PIXEL_RATIO


def test_committed_notebooks_stay_under_3_mb():
    """Figures at twice the pixel density cost bytes: each executed notebook stays under 3 MB
    (the English ones and their generated translations, notebooks/zh_CN/, which carry the same outputs)."""
    from pathlib import Path

    from mmcourse.tools.execute import MAX_BYTES

    folder = Path(__file__).resolve().parents[1] / "notebooks"
    english = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    notebooks = english + sorted(folder.glob("*/[0-9][0-9]_*.ipynb"))
    assert english
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in notebooks}
    assert all(size < MAX_BYTES for size in sizes.values()), sizes


def test_markdown_table_is_in_viz_and_clip_widgets_re_exports_it():
    from mmcourse.clip.widgets import markdown_table as from_clip
    from mmcourse.viz import markdown_table

    assert from_clip is markdown_table
    assert markdown_table(["a", "b"], [[1, 2]]).splitlines()[1] == "|---|---:|"


def test_mask_outline_halo_draws_a_wider_stroke_beneath():
    import matplotlib.pyplot as plt

    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, 2:5, 2:5] = True
    fig, ax = plt.subplots()
    draw_mask_outlines(ax, m, lw=2)
    draw_mask_outlines(ax, m, lw=2, halo="white")
    plain, halo = ax.collections
    assert not plain.get_path_effects()
    stroke = halo.get_path_effects()[0]
    assert stroke._gc["linewidth"] == 4 and stroke._gc["foreground"] == "white"
    plt.close(fig)

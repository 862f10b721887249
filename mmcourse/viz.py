"""Plotting helpers, widget builders, and ``markdown_table`` for tables of measurements.

Every widget here follows one rule: the work a control triggers is a plain function of the
control values (``scene_view`` for the ShapesWorld explorer) that is unit-tested without a
browser; the widget builder only wires controls to it. The rendering itself is tested in
JupyterLab with Chromium (tests/test_browser.py).
"""

from __future__ import annotations

import html
import io
import textwrap
from dataclasses import dataclass
from typing import Sequence

import matplotlib

import numpy as np
import torch

# Figures are laid out at 72 dpi: one point is one CSS pixel, so a figure w inches wide shows
# w * 72 CSS pixels wide and 8-point text is 8 pixels tall on screen.
FIG_DPI = 72
# Pictures carry this many device pixels per CSS pixel (inline figures: the "retina" format, PNG
# at 2 x FIG_DPI shown at its 1x size; widget pictures: rendered at FIG_DPI * 2 and shown at
# ``widget_width``), so their text stays sharp on high-density screens and is never scaled up.
# Each committed notebook stays under 3 MB with it.
WIDGET_PIXEL_RATIO = 2
# The smallest text a course figure uses, in points at its displayed size (see ``text_sizes``).
MIN_FONT_PT = 8


def setup_matplotlib() -> None:
    """Course-wide matplotlib defaults, called by every notebook's first cell.

    Figures keep their size on screen (72 CSS px per inch) and are rendered at twice the pixel
    density (IPython's "retina" PNG: 144 dpi with width/height metadata at half, which JupyterLab
    honours); no top/right spines; nearest-neighbour images. Outside IPython only the rcParams
    change.
    """
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": FIG_DPI, "savefig.dpi": FIG_DPI, "figure.figsize": (6, 3.5),
        "axes.spines.top": False, "axes.spines.right": False, "image.interpolation": "nearest",
    })
    _inline_retina()


def _inline_retina() -> None:
    """Make the inline backend emit retina PNGs, now and after a later ``%matplotlib inline``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib_inline.config import InlineBackend

    cfg = InlineBackend.instance(parent=shell)
    # The setting survives `%matplotlib inline` (which re-selects cfg.figure_formats); selecting
    # the formatter directly covers a shell where the inline backend is already configured.
    cfg.figure_formats = {"retina"}
    select_figure_formats(shell, {"retina"}, **cfg.print_figure_kwargs)


def text_sizes(fig) -> list[tuple[float, str]]:
    """(size in points at the displayed size, text) of every visible, non-empty text of ``fig``:
    titles, labels, tick labels, legends, annotations. The figure is drawn once first, so tick
    labels exist. Course figures keep every size >= MIN_FONT_PT."""
    from matplotlib.text import Text

    fig.canvas.draw()
    out = []
    for t in fig.findobj(lambda a: isinstance(a, Text)):
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None:
            out.append((float(t.get_fontsize()), t.get_text()))
    return out


def _to_hwc(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) tensor/array in [0, 1] -> (H, W, C) or (H, W) numpy for imshow."""
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return np.clip(a, 0, 1)


def wrap_title(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters at spaces (nothing is cut)."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def show_images(
    images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8, scale: float = 1.2,
    cmap: str = "gray", suptitle: str | None = None, title_width: int | None = None,
):
    """A grid of images (N, C, H, W) in [0, 1]; returns the matplotlib figure.

    ``title_width``: wrap each title at that many characters (captions stay whole); each row of
    the grid grows by the height of its longest title.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    if titles is not None and title_width is not None:
        titles = [wrap_title(t, title_width) for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=1) if titles is not None else 0
    title_h = 0.15 * lines + 0.05 if titles is not None else 0.0  # inches per row at fontsize 8
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, (scale + title_h) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_to_hwc(images[i]), cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=MIN_FONT_PT, linespacing=1.1)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # keep 0.3 in for the suptitle
    else:
        fig.tight_layout()
    return fig


# Distinct outline colours for instance overlays (tab10 without the greys).
_OVERLAY = np.array(matplotlib.colormaps["tab10"].colors)[[0, 1, 2, 3, 4, 5, 6, 8, 9]]

def tile_images(images: torch.Tensor, ncols: int = 8, pad: int = 1, top: int = 0) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one array, row by row, on a white background.

    Each tile is the image with ``pad`` white pixels around it and ``top`` more above (room for a
    label). Returns (rows * (H + 2 pad + top), ncols * (W + 2 pad)) for C = 1, with a trailing C
    axis otherwise; the last row is padded with white tiles.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N > 0, got {tuple(images.shape)}")
    if ncols < 1 or pad < 0 or top < 0:
        raise ValueError(f"need ncols >= 1, pad >= 0, top >= 0, got {ncols}, {pad}, {top}")
    n, c, h, w = images.shape
    rows = -(-n // ncols)
    x = images.detach().cpu().float().clamp(0, 1)
    x = torch.cat([x, x.new_ones(rows * ncols - n, c, h, w)])  # white tiles fill the last row
    x = torch.nn.functional.pad(x, (pad, pad, pad + top, pad), value=1.0)  # (rows * ncols, C, th, tw)
    th, tw = x.shape[2], x.shape[3]
    grid = x.reshape(rows, ncols, c, th, tw).permute(0, 3, 1, 4, 2).reshape(rows * th, ncols * tw, c)
    return grid[..., 0].numpy() if c == 1 else grid.numpy()


def show_tiles(images: torch.Tensor, ncols: int = 8, labels: list[str] | None = None,
               row_labels: list[str] | None = None, scale: float = 0.7, title: str | None = None):
    """A grid of images (N, C, H, W) in [0, 1] drawn as ONE picture; returns the figure.

    The same grid as :func:`show_images`, but matplotlib lays out a single axes
    instead of one per image: 32 digits render in tens of milliseconds instead of about a second.
    ``labels`` (one per image) are written above the tiles, ``row_labels`` at the left of the rows.
    """
    import matplotlib.pyplot as plt

    n, _, h, w = images.shape
    if labels is not None and len(labels) != n:
        raise ValueError(f"need one label per image ({n}), got {len(labels)}")
    pad, top = 1, (h // 2 if labels is not None else 0)
    grid = tile_images(images, ncols, pad, top)
    rows, cols = -(-n // ncols), min(ncols, n)
    th, tw = h + 2 * pad + top, w + 2 * pad
    fig, ax = plt.subplots(figsize=(scale * cols * tw / w, scale * rows * th / w))
    ax.imshow(grid[:, : cols * tw], cmap="gray", vmin=0, vmax=1)
    for i, text in enumerate(labels or []):
        ax.text((i % ncols + 0.5) * tw - 0.5, (i // ncols) * th + top - 0.5, text, ha="center", va="bottom", fontsize=MIN_FONT_PT)
    ax.set_xticks([])
    ax.set_yticks([(r + 0.5) * th + top / 2 - 0.5 for r in range(len(row_labels))] if row_labels else [],
                  row_labels or [], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


def overlay_masks(image: torch.Tensor, masks: torch.Tensor, alpha: float = 0.45) -> np.ndarray:
    """Blend instance masks (K, H, W) bool over an image (3, H, W) in [0, 1]: (H, W, 3) array."""
    out = _to_hwc(image).copy()
    for k, m in enumerate(masks.cpu().numpy().astype(bool)):
        out[m] = (1 - alpha) * out[m] + alpha * _OVERLAY[k % len(_OVERLAY)]
    return out


def mask_outline_segments(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """The outline of a (H, W) boolean mask along pixel edges, as line segments (S, 2, 2) of (x, y).

    Pixel (row r, column c) is the square [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5] (imshow's
    coordinates); a segment is drawn wherever a mask pixel meets a non-mask pixel or the border.
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {m.shape}")
    p = np.pad(m.astype(bool), 1)
    segs = []
    # Horizontal edges: between rows r-1 and r (in the padded grid) where exactly one side is set.
    for r, c in zip(*np.nonzero(p[1:, 1:-1] != p[:-1, 1:-1])):
        y = r - 0.5
        segs.append(((c - 0.5, y), (c + 0.5, y)))
    for r, c in zip(*np.nonzero(p[1:-1, 1:] != p[1:-1, :-1])):  # vertical edges
        x = c - 0.5
        segs.append(((x, r - 0.5), (x, r + 0.5)))
    return np.array(segs, dtype=float).reshape(-1, 2, 2)


def draw_mask_outlines(ax, masks: torch.Tensor, lw: float = 1.5, halo: str | None = None) -> None:
    """Outline instance masks (K, H, W) on an axis in the instance colours, leaving the pixels as they are.

    A tint would mix the mask colour into the object (a red shape under an orange tint looks
    orange); an outline keeps every object's true colour visible. ``halo`` (a colour, e.g. "white")
    draws each line over a wider stroke of that colour, so an outline stays visible on an object
    of its own colour.
    """
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection

    effects = None if halo is None else [patheffects.Stroke(linewidth=lw + 2, foreground=halo), patheffects.Normal()]
    for k, m in enumerate(masks):
        ax.add_collection(LineCollection(mask_outline_segments(m), colors=[_OVERLAY[k % len(_OVERLAY)]],
                                         linewidths=lw, capstyle="projecting", path_effects=effects))


def draw_boxes(ax, boxes: torch.Tensor, labels: Sequence[str] | None = None, fontsize: float = MIN_FONT_PT,
               ls="--") -> None:
    """Draw xyxy pixel boxes (K, 4) on a matplotlib axis (pixel centres at integer coordinates).

    Dashed by default, so a box stays distinguishable from a mask outline drawn on the same edge.
    """
    from matplotlib.patches import Rectangle

    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        c = _OVERLAY[k % len(_OVERLAY)]
        # A box [x0, x1) covers pixels x0..x1-1, whose outer edges are at x0-0.5 and x1-0.5.
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2, ec=c, ls=ls))
        if labels is not None:
            ax.text(x0 - 0.5, y0 - 1, labels[k], color=c, fontsize=fontsize, va="bottom")


def plot_curves(curves: dict[str, Sequence[float]], xlabel: str = "step", ylabel: str = "loss",
                logy: bool = False, title: str | None = None, ax=None):
    """Plot named curves (e.g. a loss history) on one axis; returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for name, ys in curves.items():
        ax.plot(np.arange(len(ys)), ys, label=name, lw=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return ax


def plot_history(history, title: str = "training loss", window: int = 20, ax=None, label: str | None = None,
                 color=None):
    """Raw and smoothed loss of a :class:`mmcourse.train.History`.

    With ``label`` (to compare runs on one ``ax``), both curves take one colour and only the
    smoothed one enters the legend, under that label.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    if label is not None and color is None:
        color = f"C{sum(not line.get_label().startswith('_') for line in ax.get_lines())}"  # one colour per run
    ax.plot(history.loss, lw=0.6, alpha=0.35, color=color, label="_nolegend_" if label else "per step")
    ax.plot(history.smoothed(window), lw=1.5, color=color, label=label or f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_confusion(ax, counts: torch.Tensor, labels: Sequence[str], title: str = "", ylabels: Sequence[str] | None = None):
    """Row-normalised confusion matrix (rows: true class, columns: predicted) with each cell's share printed."""
    share = (counts / counts.sum(1, keepdim=True).clamp_min(1)).cpu().numpy()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            if share[i, j] >= 0.005:
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=MIN_FONT_PT,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=MIN_FONT_PT)
    ax.set_yticks(range(len(labels)), ylabels or labels, fontsize=MIN_FONT_PT)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax


def figure_png(fig, dpi: int = FIG_DPI, tight: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (for ipywidgets.Image).

    ``tight=False`` keeps the figure's own size, figsize x dpi pixels, so a widget can show it
    at a known size (see :func:`widget_width`).
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buf.getvalue()


def widget_width(fig_width_inches: float) -> str:
    """The CSS width ("374px") at which a widget shows a figure this wide: 72 CSS px per inch.

    Render the figure at ``FIG_DPI * WIDGET_PIXEL_RATIO`` dpi and show it at this width: one
    figure pixel per device pixel on a 2x screen, so the picture is never scaled up.
    """
    return f"{round(fig_width_inches * FIG_DPI)}px"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels of PNG bytes (or a widget's memoryview of them), read from the header."""
    png = bytes(png[:24])
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png must be PNG bytes (they start with the PNG signature)")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# ---------------------------------------------------------------------------------------------
# ShapesWorld explorer: the callback is `scene_view`, a plain function of the control values.
# ---------------------------------------------------------------------------------------------

ANY = "any"
SCENE_FIGSIZE = (5.8, 3.0)  # inches; shown at widget_width(5.8) = 418 CSS px


@dataclass
class SceneView:
    """What the explorer shows for one set of control values."""

    png: bytes
    caption: str
    caption_html: str
    scene: object  # mmcourse.data.shapes.Scene


def scene_view(
    seed: int = 0, n_objects: int = 1, shape: str = ANY, colour: str = ANY, colour_mode: str = "named",
    image_size: int = 32, show_masks: bool = True, show_boxes: bool = True,
) -> SceneView:
    """Build the ShapesWorld explorer's picture and caption for one set of control values.

    With ``shape`` and ``colour`` both ``"any"`` the scene is ``ShapesWorld.sample``'s scene number
    ``seed``. Picking a shape or colour renders a scene whose first object has it (the others, and
    size and position, still follow the seed).
    """
    import matplotlib.pyplot as plt

    from .data.shapes import ShapesWorld

    world = ShapesWorld(image_size=image_size, min_objects=n_objects, max_objects=n_objects, colour_mode=colour_mode)
    scene = world.sample(1, seed=seed, split="all")[0]
    if shape != ANY or colour != ANY:
        objs = [dict(shape=o["shape"], colour=o["colour"], size=o["size"], position=o["position"]) for o in scene.objects]
        if shape != ANY:
            objs[0]["shape"] = shape
        if colour != ANY:
            objs[0]["colour"] = colour
        scene = world.render(objs, seed=seed)

    fig, axes = plt.subplots(1, 2, figsize=SCENE_FIGSIZE)
    axes[0].imshow(_to_hwc(scene.image))
    axes[0].set_title("image", fontsize=12)
    axes[1].imshow(_to_hwc(scene.image))
    if show_masks:
        draw_mask_outlines(axes[1], scene.masks[scene.valid])
    if show_boxes:
        draw_boxes(axes[1], scene.boxes[scene.valid], labels=[o["shape"] for o in scene.objects], fontsize=11)
    axes[1].set_title("mask outlines and boxes", fontsize=12)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    png = figure_png(fig, dpi=FIG_DPI * WIDGET_PIXEL_RATIO, tight=False)
    return SceneView(png=png, caption=scene.caption, caption_html=caption_html(scene), scene=scene)


def caption_html(scene) -> str:
    """The caption with each object's phrase highlighted by its character span (in its mask colour)."""
    text = scene.caption
    parts, last = [], 0
    for k, o in enumerate(scene.objects):
        s, e = o["span"]
        r, g, b = (_OVERLAY[k % len(_OVERLAY)] * 255).astype(int)
        parts.append(html.escape(text[last:s]))
        parts.append(f'<span style="border-bottom:3px solid rgb({r},{g},{b})">{html.escape(text[s:e])}</span>')
        last = e
    parts.append(html.escape(text[last:]))
    return f'<div style="font-size:15px">{"".join(parts)}</div>'


def shapes_explorer():
    """ShapesWorld explorer widget: seed, objects, shape and colour pickers -> scene, masks, boxes, caption.

    CSS classes ``mmcourse-seed``, ``mmcourse-scene`` and ``mmcourse-caption`` let the browser
    test find the parts.
    """
    import ipywidgets as W

    from .data.shapes import COLOUR_NAMES, SHAPES

    seed = W.IntSlider(value=0, min=0, max=999, description="seed", continuous_update=False)
    seed.add_class("mmcourse-seed")
    n_objects = W.IntSlider(value=2, min=1, max=4, description="objects", continuous_update=False)
    shape = W.Dropdown(options=[ANY, *SHAPES], value=ANY, description="shape")
    colour = W.Dropdown(options=[ANY, *COLOUR_NAMES], value=ANY, description="colour")
    mode = W.ToggleButtons(options=["named", "jitter", "random"], value="named", description="colours",
                           style={"button_width": "84px"})  # "random" fits without an ellipsis
    image = W.Image(format="png", layout=W.Layout(width=widget_width(SCENE_FIGSIZE[0])))
    image.add_class("mmcourse-scene")
    caption = W.HTML()
    caption.add_class("mmcourse-caption")

    def update(_=None) -> None:
        v = scene_view(seed.value, n_objects.value, shape.value, colour.value, mode.value)
        image.value = v.png
        caption.value = v.caption_html

    for w in (seed, n_objects, shape, colour, mode):
        w.observe(update, names="value")
    update()
    controls = W.VBox([seed, n_objects, shape, colour, mode])
    return W.VBox([W.HBox([controls, image]), caption])


def show_source(obj) -> None:
    """Display an object's source as a highlighted code block (works in static notebook viewers too).

    In JupyterLab, ``obj??`` shows the same source in a pager.
    """
    import inspect

    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table: the first column left-aligned, the others (numbers) right-aligned.
    Cells are shown with ``str``, so format numbers before passing them."""
    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"every row must have {len(header)} cells like the header, got {[len(r) for r in rows]}")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)

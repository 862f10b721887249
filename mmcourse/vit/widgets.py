"""Pictures and widgets of notebook 03: the patch explorer, position embeddings, the attention viewer.

As everywhere in the course, what a control triggers is a plain function of the control values
(``patch_view``, ``attention_view``) that returns PNG bytes and is unit-tested without a browser;
the widget builders (``patch_explorer``, ``attention_viewer``) only wire controls to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from ..viz import FIG_DPI, MIN_FONT_PT, WIDGET_PIXEL_RATIO, _to_hwc, figure_png, widget_width
from .patch_embed import check_divisible, patchify
from .rollout import attention_rollout, cls_attention_map

# The three pictures of the patch explorer and the patch sizes that divide each of them.
PHOTO, DIGIT, SCENE = "photo (astronaut, 224 px)", "digit (8 px)", "ShapesWorld scene (32 px)"
PATCH_SIZES: dict[str, tuple[int, ...]] = {
    PHOTO: (8, 14, 16, 28, 32, 56),
    DIGIT: (1, 2, 4),
    SCENE: (2, 4, 8, 16),
}
MAX_SHOWN_PATCHES = 24  # the sequence strip shows the first patches only
# Widget pictures: drawn at this size, rendered at 2x and shown at widget_width (text at its point size).
PATCH_FIGSIZE, ATTENTION_FIGSIZE = (7.8, 4.2), (7.8, 2.9)
_WIDGET_DPI = FIG_DPI * WIDGET_PIXEL_RATIO


@lru_cache(maxsize=4)
def _example_image(name: str) -> np.ndarray:
    if name == PHOTO:
        from skimage import data, transform

        # scikit-image ships this photo, so it works offline; 224 px is the classic ViT input size.
        return transform.resize(data.astronaut(), (224, 224), anti_aliasing=True).transpose(2, 0, 1).astype(np.float32)
    if name == DIGIT:
        from ..data.digits import load_digits, to_unit

        x, _ = load_digits("test")
        return to_unit(x[0]).numpy()
    if name == SCENE:
        from ..data.shapes import ShapesWorld

        return ShapesWorld(image_size=32, min_objects=3, max_objects=3).sample(1, seed=3).images[0].numpy()
    raise ValueError(f"image must be one of {list(PATCH_SIZES)}, got {name!r}")


def example_image(name: str) -> torch.Tensor:
    """One of the patch explorer's pictures as (C, H, W) float in [0, 1] (see ``PATCH_SIZES``)."""
    return torch.from_numpy(_example_image(name).copy())


@dataclass
class PatchView:
    """What the patch explorer shows for one picture and patch size."""

    png: bytes
    num_patches: int
    patch_length: int   # C * P * P numbers per patch
    grid: tuple[int, int]


def patch_view(name: str = SCENE, patch_size: int = 8) -> PatchView:
    """The picture cut into ``patch_size`` patches (grid lines, raster numbering) above the first
    patches of the resulting sequence, each a token of C*P*P numbers."""
    import matplotlib.pyplot as plt

    img = example_image(name)
    C, H, W = img.shape
    check_divisible(H, W, patch_size)
    patches = patchify(img[None], patch_size)[0]                       # (N, C*P*P)
    gh, gw = H // patch_size, W // patch_size
    N = gh * gw
    shown = min(N, MAX_SHOWN_PATCHES)

    fig = plt.figure(figsize=PATCH_FIGSIZE)
    ax = fig.add_axes([0.02, 0.30, 0.5, 0.62])
    ax.imshow(_to_hwc(img), cmap="gray", vmin=0, vmax=1, extent=(0, W, H, 0))
    for i in range(1, gh):
        ax.axhline(i * patch_size, color="white", lw=0.8)
    for j in range(1, gw):
        ax.axvline(j * patch_size, color="white", lw=0.8)
    if N <= 64:  # number the patches in the order the transformer reads them
        for n in range(N):
            r, c = divmod(n, gw)
            ax.text((c + 0.5) * patch_size, (r + 0.5) * patch_size, str(n), color="white", fontsize=MIN_FONT_PT,
                    ha="center", va="center", bbox=dict(boxstyle="round,pad=0.1", fc="black", alpha=0.4, lw=0))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{name}: {gh} x {gw} patches of {patch_size} x {patch_size}", fontsize=8)
    text = fig.add_axes([0.55, 0.30, 0.43, 0.62])
    text.axis("off")
    text.text(0, 0.75, f"sequence length N = {gh} x {gw} = {N}", fontsize=9)
    text.text(0, 0.55, f"each patch: {patch_size} x {patch_size} x {C} = {C * patch_size**2} numbers", fontsize=9)
    text.text(0, 0.35, f"attention compares N x N = {N * N:,} pairs", fontsize=9)
    for k in range(shown):  # the strip: patch tokens 0, 1, 2, ... as the model receives them
        a = fig.add_axes([0.02 + k * 0.96 / MAX_SHOWN_PATCHES, 0.05, 0.9 / MAX_SHOWN_PATCHES, 0.16])
        a.imshow(_to_hwc(patches[k].reshape(C, patch_size, patch_size)), cmap="gray", vmin=0, vmax=1)
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(str(k), fontsize=MIN_FONT_PT, pad=1)
    fig.text(0.02, 0.235, "the sequence the transformer sees" + (" (first patches)" if shown < N else ""), fontsize=8)
    return PatchView(png=figure_png(fig, dpi=_WIDGET_DPI, tight=False), num_patches=N, patch_length=C * patch_size**2, grid=(gh, gw))


def patch_explorer():
    """Widget: pick a picture and a patch size; see the grid and the token sequence."""
    import ipywidgets as W

    picture = W.Dropdown(options=list(PATCH_SIZES), value=SCENE, description="picture")
    size = W.SelectionSlider(options=PATCH_SIZES[SCENE], value=8, description="patch size", continuous_update=False)
    image = W.Image(format="png", layout=W.Layout(width=widget_width(PATCH_FIGSIZE[0])))
    image.add_class("mmcourse-patches")
    size.add_class("mmcourse-patch-size")  # CSS classes: handles for the browser test

    def update(_=None) -> None:
        image.value = patch_view(picture.value, size.value).png

    def new_picture(_=None) -> None:
        options = PATCH_SIZES[picture.value]
        with size.hold_trait_notifications():
            size.options = options
            size.value = options[len(options) // 2]
        update()

    picture.observe(new_picture, names="value")
    size.observe(update, names="value")
    update()
    return W.VBox([W.HBox([picture, size]), image])


# ---------------------------------------------------------------------------------------------
# Position embeddings
# ---------------------------------------------------------------------------------------------


def pos_embed_similarity(model) -> torch.Tensor:
    """Cosine similarity between the learned position embeddings of the patches.

    Returns (gh, gw, gh, gw): entry [i, j] is the map of patch (i, j)'s similarity to every patch.
    """
    gh, gw = model.patch_embed.grid_size
    pe = model.pos_embed.detach()[0, 1:]                        # (N, D), the class token's dropped
    pe = pe / pe.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (pe @ pe.T).reshape(gh, gw, gh, gw)


def similarity_by_distance(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean cosine similarity of two patches' position embeddings, by their distance on the grid.

    Returns (distances, mean similarity, number of unordered patch pairs) for every distinct
    distance > 0, in patches.
    """
    sim = pos_embed_similarity(model)
    gh, gw = sim.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    ys, xs = ys.flatten().float(), xs.flatten().float()
    dist = ((ys[:, None] - ys[None]) ** 2 + (xs[:, None] - xs[None]) ** 2).sqrt()  # (N, N)
    flat = sim.reshape(gh * gw, gh * gw)
    dist = dist.round(decimals=3)  # equal distances compare equal
    ds = sorted(set(dist[dist > 0].tolist()))
    means = [flat[dist == d].mean().item() for d in ds]
    pairs = [int((dist == d).sum().item()) // 2 for d in ds]  # (a, b) and (b, a) once
    return np.array(ds), np.array(means), np.array(pairs)


def plot_pos_embed_similarity(model, title: str = "position embeddings"):
    """Left: a gh x gw grid of small maps; map (i, j) shows how similar patch (i, j)'s position
    embedding is to every other patch's (its own cell, always 1, is grey). Right: the mean
    similarity against the distance between the patches, each point labelled with its number
    of patch pairs. Returns the figure."""
    import matplotlib.pyplot as plt

    sim = pos_embed_similarity(model).cpu().numpy().copy()
    gh, gw = sim.shape[:2]
    for i in range(gh):
        for j in range(gw):
            sim[i, j, i, j] = np.nan  # self-similarity is 1 by definition: hide it to show the rest
    lim = float(np.nanmax(np.abs(sim)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.6")  # the hidden self cell grey, not the colour of 0
    fig = plt.figure(figsize=(7.6, 3.3))
    grid = fig.add_gridspec(gh, gw, left=0.06, right=0.47, bottom=0.17, top=0.86, wspace=0.08, hspace=0.08)
    for i in range(gh):
        for j in range(gw):
            ax = fig.add_subplot(grid[i, j])
            im = ax.imshow(sim[i, j], cmap=cmap, vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(str(i), fontsize=8, rotation=0, labelpad=6, va="center")
            if i == gh - 1:
                ax.set_xlabel(str(j), fontsize=8)
    # The grid of maps is laid out like the patches: map (i, j) belongs to the patch in row i, column j.
    fig.text(0.265, 0.04, "patch column (each map's cells are laid out the same way)", ha="center", fontsize=8)
    fig.text(0.005, 0.515, "patch row", rotation=90, va="center", fontsize=8)
    cbar = fig.colorbar(im, cax=fig.add_axes([0.485, 0.17, 0.012, 0.69]))
    cbar.set_label("cosine similarity", fontsize=8)
    ax = fig.add_subplot(fig.add_gridspec(1, 1, left=0.67, right=0.96, bottom=0.17, top=0.86)[0, 0])
    d, m, n = similarity_by_distance(model)
    ax.plot(d, m, "o-")
    for x, y, k in zip(d, m, n):
        ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=MIN_FONT_PT, color="0.3")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("distance between patches (in patches)")
    ax.set_ylabel("mean cosine similarity")
    fig.suptitle(title, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Attention viewer
# ---------------------------------------------------------------------------------------------


def _overlay(ax, image: torch.Tensor, heat: torch.Tensor, title: str) -> None:
    """Show image (C, H, W) in [0, 1] with a (gh, gw) heat map stretched over it."""
    _, H, W = image.shape
    ax.imshow(_to_hwc(image), cmap="gray", vmin=0, vmax=1, extent=(0, W, H, 0))
    ax.imshow(heat.detach().cpu().numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=1, extent=(0, W, H, 0),
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def attention_view(
    image: torch.Tensor, attns: Sequence[torch.Tensor], layer: int = 1, head: int | str = "mean", title: str = "",
) -> bytes:
    """One image's attention as PNG bytes: the image, the class token's attention in one layer and
    head, and the attention rollout through all layers.

    Args:
        image: (C, H, W) in [0, 1], for display.
        attns: per layer, this image's attention weights (heads, T, T).
        layer: 1-based layer number.  head: 1-based head number, or "mean" (average of the heads).
    """
    import matplotlib.pyplot as plt

    attns = [a.detach() for a in attns]
    depth, heads = len(attns), attns[0].shape[0]
    if not 1 <= layer <= depth:
        raise ValueError(f"layer must be in 1..{depth}, got {layer!r}")
    if head != "mean" and not (isinstance(head, int) and 1 <= head <= heads):
        raise ValueError(f"head must be 'mean' or in 1..{heads}, got {head!r}")
    a = attns[layer - 1]                                                 # (heads, T, T)
    one = a.mean(0) if head == "mean" else a[head - 1]                   # (T, T)
    rollout = attention_rollout([t[None] for t in attns])                # (1, T, T)
    fig, axes = plt.subplots(1, 3, figsize=ATTENTION_FIGSIZE)
    axes[0].imshow(_to_hwc(image), cmap="gray", vmin=0, vmax=1)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    axes[0].set_title(title, fontsize=8)
    where = "mean of heads" if head == "mean" else f"head {head}"
    _overlay(axes[1], image, cls_attention_map(one[None])[0], f"layer {layer}, {where}")
    _overlay(axes[2], image, cls_attention_map(rollout)[0], f"rollout of {depth} layers")
    fig.tight_layout()
    return figure_png(fig, dpi=_WIDGET_DPI, tight=False)


def attention_viewer(model, images: torch.Tensor, titles: Sequence[str], display: torch.Tensor | None = None):
    """Widget: pick an image, a layer and a head; see where the class token looks.

    Args:
        model: a :class:`~mmcourse.vit.VisionTransformer`.
        images: (B, C, H, W) model inputs.  titles: B strings (e.g. "true / predicted").
        display: (B, C, H, W) in [0, 1] to draw (default: ``images`` clamped to [0, 1]).
    """
    import ipywidgets as W

    if len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image: {len(titles)} titles for {len(images)} images")
    with torch.no_grad():
        _, attns = model.eval()(images, return_attn=True)    # depth x (B, heads, T, T), computed once
    display = images.clamp(0, 1) if display is None else display
    depth, heads = len(attns), attns[0].shape[1]
    pick = W.Dropdown(options=[(f"{i}: {t}", i) for i, t in enumerate(titles)], value=0, description="image")
    layer = W.IntSlider(value=1, min=1, max=depth, description="layer", continuous_update=False)
    head = W.Dropdown(options=["mean", *range(1, heads + 1)], value="mean", description="head")
    out = W.Image(format="png", layout=W.Layout(width=widget_width(ATTENTION_FIGSIZE[0])))
    out.add_class("mmcourse-attention")
    layer.add_class("mmcourse-layer")

    def update(_=None) -> None:
        i = pick.value
        out.value = attention_view(display[i], [a[i] for a in attns], layer.value, head.value, titles[i])

    for w in (pick, layer, head):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([pick, layer, head]), out])

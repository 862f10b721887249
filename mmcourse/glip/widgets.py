"""The GLIP notebook's drawings and its prompt widget.

The widget's callback is :func:`prompt_view`, a plain function of (model, scene, prompt,
threshold) that returns PNG bytes and the lines of text shown under them; it is unit-tested
headless. :func:`prompt_explorer` only wires ipywidgets to it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch

from ..viz import FIG_DPI, WIDGET_PIXEL_RATIO, _to_hwc, figure_png, widget_width
from .predict import grounding_predict

PHRASE_COLOURS = np.array(matplotlib.colormaps["tab10"].colors)[[0, 1, 2, 3, 4, 6, 8, 9]]
FIGSIZE = (3.6, 3.6)  # inches; shown at widget_width(3.6) = 259 CSS px
LABEL_CLEARANCE = 6.0  # image pixels: two label anchors closer than this in x and y would overlap


def draw_detections(ax, image: torch.Tensor, result: dict, threshold: float = 0.3, fontsize: float = 8,
                    title: str | None = None, labels: bool = True) -> int:
    """Draw the image and the boxes of ``result`` (from :func:`grounding_predict`) scoring at least
    ``threshold``, each coloured by its phrase and, if ``labels``, labelled "phrase score". Returns
    how many.

    The best box is drawn last (on top). Labels go above their box, best box first; a label whose
    place above is taken by a better box's label (the same object found for two phrases, say) goes
    below its box instead, so neither hides the other."""
    from matplotlib.patches import Rectangle

    ax.imshow(_to_hwc(image))
    ax.set_xticks([])
    ax.set_yticks([])
    shown = [(score, box, label) for box, score, label in
             zip(result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist()) if score >= threshold]
    shown.sort(key=lambda r: r[0])  # ascending: the best box is drawn last
    for score, (x0, y0, x1, y1), label in shown:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.6,
                               ec=PHRASE_COLOURS[label % len(PHRASE_COLOURS)]))
    if labels:
        taken: list[tuple[float, float]] = []  # label anchors in use (image pixels)
        for score, (x0, y0, x1, y1), label in reversed(shown):
            x, y, va = x0 - 0.5, y0 - 1, "bottom"
            if any(abs(x - tx) < LABEL_CLEARANCE and abs(y - ty) < LABEL_CLEARANCE for tx, ty in taken):
                x, y, va = x0 - 0.5, y1 + 0.5, "top"
            taken.append((x, y))
            c = PHRASE_COLOURS[label % len(PHRASE_COLOURS)]
            ax.text(x, y, f"{result['phrases'][label]} {score:.2f}", color=c, fontsize=fontsize,
                    va=va, bbox=dict(fc="white", ec="none", alpha=0.7, pad=0.5))
    if title:
        ax.set_title(title, fontsize=max(fontsize, 9))
    return len(shown)


@dataclass
class PromptView:
    """What the widget shows for one prompt: a picture (None on bad input) and text lines."""

    png: bytes | None
    lines: list[str]
    result: dict | None


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")


@torch.no_grad()
def prompt_view(model, image: torch.Tensor, prompt: str, threshold: float = 0.3) -> PromptView:
    """Ground ``prompt`` in ``image`` and draw the boxes scoring at least ``threshold``.

    A prompt the model cannot read (empty, an unknown word: the message names the nearest known
    words) gives no picture and the reason, instead of an exception.
    """
    import matplotlib.pyplot as plt

    _check_threshold(threshold)
    try:
        result = grounding_predict(model, image, prompt)
    except ValueError as err:
        return PromptView(None, [str(err)], None)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    n = draw_detections(ax, image, result, threshold, fontsize=8)
    fig.tight_layout(pad=0.2)
    png = figure_png(fig, dpi=FIG_DPI * WIDGET_PIXEL_RATIO, tight=False)
    lines = [f"phrases: {' | '.join(result['phrases'])}", f"{n} boxes with score ≥ {threshold:.2f}"]
    for box, s, p in zip(result["boxes"].tolist(), result["scores"].tolist(), result["phrase"]):
        if s >= threshold:
            lines.append(f"  {p:<22} {s:.2f}  box ({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f})")
    return PromptView(png, lines, result)


def prompt_explorer(model, scenes, prompt: str = "circle. square. triangle. diamond. cross.", threshold: float = 0.3,
                    scene: int = 0):
    """A scene picker (starting at index ``scene``), a prompt box and a score-threshold slider ->
    the grounded boxes."""
    import ipywidgets as W

    if isinstance(scene, bool) or not isinstance(scene, int) or not 0 <= scene < len(scenes):
        raise ValueError(f"scene must be an index into the {len(scenes)} scenes, got {scene!r}")
    pick = W.IntSlider(value=scene, min=0, max=len(scenes) - 1, description="scene", continuous_update=False)
    text = W.Text(value=prompt, description="prompt", continuous_update=False, layout=W.Layout(width="460px"))
    thr = W.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                        continuous_update=False)
    image = W.Image(format="png", layout=W.Layout(width=widget_width(FIGSIZE[0])))
    info = W.HTML()
    for w, name in ((pick, "scene"), (text, "prompt"), (thr, "threshold"), (image, "image"), (info, "info")):
        w.add_class(f"mmcourse-glip-{name}")  # handles for the browser test

    def update(_=None) -> None:
        v = prompt_view(model, scenes.images[pick.value], text.value, thr.value)
        if v.png is not None:
            image.value = v.png
        info.value = f"<pre>{html.escape(chr(10).join(v.lines))}</pre>"

    for w in (pick, text, thr):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([pick, thr]), text, W.HBox([image, info])])


@torch.no_grad()
def phrase_heatmap(model, image: torch.Tensor, prompt: str, phrase: int) -> torch.Tensor:
    """(g, g) grid of phrase ``phrase``'s probability (mean sigmoid over its tokens) at each location."""
    from .predict import check_images, phrase_scores
    from .prompts import parse_prompt
    from .targets import positive_map
    from .text import prompt_units

    check_images(image, model.cfg.img_size, name="image", batched=False)
    phrases, spans = parse_prompt(prompt, model.tokenizer)
    if isinstance(phrase, bool) or not isinstance(phrase, int) or not 0 <= phrase < len(phrases):
        raise ValueError(f"phrase must be an index in 0..{len(phrases) - 1} (phrases: {phrases}), got {phrase!r}")
    tokens = model.tokenizer([prompt])
    maps = positive_map(prompt, spans, tokens.shape[1])[None]
    out = model.eval()(image[None], tokens, prompt_units(model.tokenizer, [prompt], tokens.shape[1]))
    g = model.cfg.img_size // model.stride
    return phrase_scores(out["logits"], maps)[0, :, phrase].reshape(g, g)

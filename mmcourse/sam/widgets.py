"""Notebook 06's click-to-segment widget.

The logic is :class:`ClickSession`, a plain object tested without a browser: ``click(x, y,
positive)`` adds a point, ``drag(x0, y0, x1, y1)`` sets a box, ``reset()`` clears them; each
returns a :class:`ClickResult` (the three masks, their predicted IoUs, the decoder time). The
widget (:func:`click_widget`) only wires an ipympl canvas and two buttons to it: left click = a
positive point, right click (or the "negative" toggle) = a negative point, drag = a box.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .sam import Sam

DRAG_PIXELS = 2.0   # a press and release further apart than this (image pixels) is a box


@dataclass
class ClickResult:
    masks: torch.Tensor | None            # (3, H, W) bool, None before the first prompt
    iou_predictions: torch.Tensor | None  # (3,)
    best: int | None                      # index of the highest predicted IoU
    decoder_ms: float | None
    status: str
    multimask: bool = True                # False: one mask (several prompts make the target clear)


@dataclass
class ClickSession:
    """Prompts on one image; the image embedding is computed once, in ``__post_init__``."""

    sam: Sam
    image: torch.Tensor                   # (3, H, W) in [0, 1]
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    encoder_ms: float = 0.0

    def __post_init__(self) -> None:
        t0 = time.perf_counter()
        self.sam.set_image(self.image)
        self.encoder_ms = 1000 * (time.perf_counter() - t0)
        self.H, self.W = self.image.shape[1:]

    def _inside(self, x: float, y: float) -> tuple[float, float]:
        return min(max(float(x), 0.0), self.W - 1e-3), min(max(float(y), 0.0), self.H - 1e-3)

    def click(self, x: float, y: float, positive: bool = True) -> ClickResult:
        """Add a point at pixel (x, y) (clamped into the image), positive or negative."""
        self.points.append(self._inside(x, y))
        self.labels.append(1 if positive else 0)
        return self.predict()

    def drag(self, x0: float, y0: float, x1: float, y1: float) -> ClickResult:
        """Set the box spanned by two corners (any order); a new box replaces the old one."""
        (x0, y0), (x1, y1) = self._inside(x0, y0), self._inside(x1, y1)
        self.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        return self.predict()

    def reset(self) -> ClickResult:
        self.points, self.labels, self.box = [], [], None
        return self.predict()

    def predict(self) -> ClickResult:
        n = len(self.points)
        if n == 0 and self.box is None:
            return ClickResult(None, None, None, None, "no prompt yet: click on an object")
        t0 = time.perf_counter()
        # SAM's rule: several masks for an ambiguous prompt (one point), one mask otherwise
        multi = n <= 1 and self.box is None
        pred = self.sam.predict(points=self.points or None, labels=self.labels or None, box=self.box,
                                multimask_output=multi)
        ms = 1000 * (time.perf_counter() - t0)
        masks = pred.masks if multi else pred.masks.expand(3, -1, -1)
        iou = pred.iou_predictions if multi else pred.iou_predictions.expand(3)
        best = int(iou.argmax())
        prompt = f"{sum(self.labels)} positive, {n - sum(self.labels)} negative point(s)" + (", a box" if self.box else "")
        ious = " ".join(f"{v:.2f}" for v in pred.iou_predictions.tolist())
        return ClickResult(masks, iou, best, ms, f"{prompt} | predicted IoU {ious} | decoder {ms:.1f} ms", multi)


def draw_session(axes, session: ClickSession, result: ClickResult) -> None:
    """Draw the image with prompts and the best mask (axes[0]) and the 3 candidates (axes[1:4])."""
    from matplotlib.patches import Rectangle

    from ..viz import _to_hwc, draw_mask_outlines

    img = _to_hwc(session.image)
    for ax in axes:
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
    if result.masks is None:
        axes[0].imshow(img)
        axes[0].set_title("click on an object", fontsize=9)
        for k, ax in enumerate(axes[1:]):
            ax.imshow(np.zeros_like(img[..., 0]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"mask {k + 1}", fontsize=9)
        return
    # an outline with a white halo, not a tint: the object keeps its colour and the line shows on any colour
    axes[0].imshow(img)
    draw_mask_outlines(axes[0], result.masks[result.best:result.best + 1], lw=1.5, halo="white")
    axes[0].set_title(f"best: mask {result.best + 1}", fontsize=9)
    for (x, y), lab in zip(session.points, session.labels):
        axes[0].scatter([x - 0.5], [y - 0.5], s=90, marker="*", c="lime" if lab else "red", edgecolors="black",
                        linewidths=0.8, zorder=3)
    if session.box is not None:
        x0, y0, x1, y1 = session.box
        axes[0].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
    same = not result.multimask
    for k, ax in enumerate(axes[1:]):
        ax.imshow(result.masks[k].numpy(), cmap="gray", vmin=0, vmax=1)
        title = "single mask" if same else f"mask {k + 1}"
        ax.set_title(f"{title}: pred IoU {float(result.iou_predictions[k]):.2f}", fontsize=9,
                     color="tab:green" if k == result.best else "black")
        if same:
            break
    if same:
        for ax in axes[2:]:
            ax.axis("off")


def png_data_url(fig) -> str:
    """The figure as a ``data:image/png;base64,...`` URL (ipympl's ``_data_url`` format)."""
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi="figure")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def click_widget(sam: Sam, images: list[torch.Tensor]):
    """An ipympl canvas: left click = positive point, right click (or the toggle) = negative,
    drag = box; buttons: reset, next image. Returns the VBox (its ``.session`` is the state)."""
    import ipywidgets as w
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # Importing ipympl's backend module makes it pyplot's backend; keep the notebook's own (inline)
    # for every other figure: only this canvas is interactive.
    backend = matplotlib.get_backend()
    from ipympl.backend_nbagg import Canvas, FigureManager

    plt.switch_backend(backend)

    fig = Figure(figsize=(8.4, 2.4), dpi=100)
    axes = fig.subplots(1, 4)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.02, wspace=0.08)
    canvas = Canvas(fig)
    FigureManager(canvas, 0)
    canvas.header_visible = False
    canvas.footer_visible = False
    canvas.toolbar_visible = False
    canvas.resizable = False
    canvas.capture_scroll = False

    state = {"i": 0, "press": None}
    status = w.HTML()
    negative = w.ToggleButton(value=False, description="negative click", icon="minus",
                              tooltip="on: a left click adds a negative point (as a right click does)")
    reset = w.Button(description="reset", icon="undo")
    nxt = w.Button(description="next image", icon="forward")

    def show(result: ClickResult) -> None:
        draw_session(axes, box.session, result)
        canvas.draw_idle()
        if canvas.syncing_data_url:
            # No front end yet (a notebook executed by nbclient, or not yet shown): store the picture
            # in the widget's state, so a saved notebook and the website show it before any kernel runs.
            # (ipympl does this only for a canvas displayed on its own, not inside a VBox.)
            canvas._data_url = png_data_url(fig)
        enc = f"encoder {box.session.encoder_ms:.0f} ms (once per image)"
        status.value = f"<code>{result.status} | {enc}</code>"

    def new_image() -> None:
        box.session = ClickSession(sam, images[state["i"] % len(images)])
        show(box.session.predict())

    def on_press(event) -> None:
        if event.inaxes is axes[0] and event.xdata is not None:
            state["press"] = (event.xdata + 0.5, event.ydata + 0.5, event.button)

    def on_release(event) -> None:
        press, state["press"] = state["press"], None
        if press is None:
            return
        x0, y0, button = press
        x1, y1 = (event.xdata + 0.5, event.ydata + 0.5) if event.inaxes is axes[0] and event.xdata is not None else (x0, y0)
        if max(abs(x1 - x0), abs(y1 - y0)) > DRAG_PIXELS:
            show(box.session.drag(x0, y0, x1, y1))
        else:
            positive = int(button) == 1 and not negative.value
            show(box.session.click(x0, y0, positive))

    canvas.mpl_connect("button_press_event", on_press)
    canvas.mpl_connect("button_release_event", on_release)
    reset.on_click(lambda _: show(box.session.reset()))

    def on_next(_) -> None:
        state["i"] += 1
        new_image()

    nxt.on_click(on_next)
    box = w.VBox([w.HBox([negative, reset, nxt]), canvas, status])
    box.add_class("mmcourse-sam-click")
    status.add_class("mmcourse-sam-status")
    reset.add_class("mmcourse-sam-reset")
    box.canvas, box.status = canvas, status
    new_image()
    return box

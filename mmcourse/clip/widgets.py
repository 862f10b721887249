"""The CLIP notebook's widgets: a batch's similarity matrix with a temperature, and retrieval.

As everywhere in the course, each control calls a plain function of the control values
(``similarity_view``, ``text_query_view``, ``image_query_view``) that returns PNG bytes and the
numbers behind them; those functions are unit-tested headless. The builders at the bottom only
wire ipywidgets to them.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

import numpy as np
import torch

from ..viz import FIG_DPI, MIN_FONT_PT, WIDGET_PIXEL_RATIO, _to_hwc, figure_png, markdown_table, widget_width  # noqa: F401  (markdown_table: notebooks 02, 04, 06 and 08 import it from here)
from .tasks import Pairs, sample_pairs
from .tokenizer import WordTokenizer


def _wrap(caption: str, width: int = 14) -> str:
    return "\n".join(textwrap.wrap(caption, width))


# ---------------------------------------------------------------------------------------------
# Similarity matrix and temperature
# ---------------------------------------------------------------------------------------------


# Widget pictures: figure widths in inches, rendered at 2x and shown at widget_width (text at its
# point size on screen).
SIMILARITY_WIDTH, QUERY_WIDTH, PICKED_WIDTH = 11.0, 10.0, 1.7
_WIDGET_DPI = FIG_DPI * WIDGET_PIXEL_RATIO

@dataclass
class SimilarityView:
    """One batch: cosine similarities (B, B), row softmax at the temperature, and the picture."""

    png: bytes
    cosine: torch.Tensor   # (B, B), row = image, column = caption
    probs: torch.Tensor    # (B, B), softmax(cosine / temperature) over each row
    captions: list[str]


def _check_batch(batch_size: int) -> None:
    if not isinstance(batch_size, int) or not 2 <= batch_size <= 16:
        raise ValueError(f"batch_size must be an int in 2..16, got {batch_size!r}")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


@torch.no_grad()
def batch_cosine(model, seed: int = 0, batch_size: int = 6) -> tuple[Pairs, torch.Tensor]:
    """Batch number ``seed`` of ``batch_size`` test pairs and its (B, B) cosine similarities
    (row = image i, column = caption j)."""
    _check_batch(batch_size)
    pairs = sample_pairs(batch_size, seed=seed, split="test")
    tok = WordTokenizer(context_length=model.cfg.text.context_length)
    model.eval()
    img = model.encode_image(pairs.images, normalize=True)
    txt = model.encode_text(tok(pairs.captions), normalize=True)
    return pairs, img @ txt.T


def _draw_matrix(ax, mat: torch.Tensor, pairs: Pairs, title: str, vmin: float, vmax: float, fontsize: float,
                 caption_size: float = MIN_FONT_PT, wrap: int = 14) -> None:
    """A (B, B) matrix with the batch's images left of the rows, captions under the columns and
    the diagonal (the positives) outlined in red."""
    import matplotlib.pyplot as plt

    B = len(mat)
    ax.imshow(mat.numpy(), cmap="viridis", vmin=vmin, vmax=vmax, extent=(-0.5, B - 0.5, B - 0.5, -0.5))
    for i in range(B):
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.imshow(_to_hwc(pairs.images[i]), extent=(-1.6, -0.6, i + 0.5, i - 0.5))  # image i, left of its row
        for j in range(B):
            v = float(mat[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if v < (vmin + vmax) / 2 else "black")
    ax.set_xlim(-1.7, B - 0.5)
    ax.set_ylim(B - 0.5, -0.5)
    ax.set_xticks(range(B))
    ax.set_xticklabels([_wrap(c, wrap) for c in pairs.captions], fontsize=caption_size)
    ax.set_yticks([])
    ax.set_title(title, fontsize=fontsize + 1)


def similarity_view(model, seed: int = 0, temperature: float = 0.07, batch_size: int = 6) -> SimilarityView:
    """Draw batch number ``seed`` of ``batch_size`` test pairs; show its cosine matrix and each
    image's softmax over the captions at ``temperature`` (the loss's view of the batch).

    The diagonal (the positives) is outlined; everything off it is an in-batch negative.
    """
    import matplotlib.pyplot as plt

    _check_temperature(temperature)
    pairs, cosine = batch_cosine(model, seed, batch_size)
    probs = (cosine / temperature).softmax(dim=1)
    fig, axes = plt.subplots(1, 2, figsize=(SIMILARITY_WIDTH, 0.7 * batch_size + 1.6))
    _draw_matrix(axes[0], cosine, pairs, "cosine similarity", -1, 1, 8, wrap=11)
    _draw_matrix(axes[1], probs, pairs, f"softmax over each row, T = {temperature:.3f}", 0, 1, 8, wrap=11)
    fig.tight_layout()
    return SimilarityView(figure_png(fig, dpi=_WIDGET_DPI, tight=False), cosine, probs, list(pairs.captions))


def temperature_comparison(model, temperatures: tuple[float, ...], seed: int = 0, batch_size: int = 4) -> SimilarityView:
    """One batch's cosine matrix beside its row softmax at each of ``temperatures`` (e.g. T = 1
    and the learned T), in large type: the same similarities, sharpened by dividing by T.

    ``probs`` of the returned view holds the softmax at the last temperature.
    """
    import matplotlib.pyplot as plt

    if not temperatures:
        raise ValueError("temperatures must name at least one temperature, got an empty sequence")
    for t in temperatures:
        _check_temperature(t)
    pairs, cosine = batch_cosine(model, seed, batch_size)
    n = 1 + len(temperatures)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 0.9 * batch_size + 2.4))
    _draw_matrix(axes[0], cosine, pairs, "cosine similarity", -1, 1, 11, caption_size=8, wrap=13)
    for ax, t in zip(axes[1:], temperatures):
        probs = (cosine / t).softmax(dim=1)
        _draw_matrix(ax, probs, pairs, f"softmax of each row, T = {t:.3g}", 0, 1, 11, caption_size=8, wrap=13)
    fig.tight_layout()
    return SimilarityView(figure_png(fig), cosine, probs, list(pairs.captions))


def batch_matrix_diagram(batch_size: int = 4):
    """Diagram of the contrastive loss on a batch: images I1..IB as rows, captions T1..TB as
    columns, the positives on the diagonal, every other cell an in-batch negative; each row and
    each column is one B-way classification. Returns the figure."""
    import matplotlib.pyplot as plt

    _check_batch(batch_size)
    B = batch_size
    fig, ax = plt.subplots(figsize=(8, 5.8))
    for i in range(B):
        for j in range(B):
            pos = i == j
            ax.add_patch(plt.Rectangle((j, i), 1, 1, fc="#2a9d8f" if pos else "#e9ecef", ec="white", lw=2))
            ax.text(j + 0.5, i + 0.5, f"I{i + 1}·T{j + 1}", ha="center", va="center", fontsize=13,
                    color="white" if pos else "0.3")
        ax.text(-0.15, i + 0.5, f"image I{i + 1}", ha="right", va="center", fontsize=13)
        ax.text(i + 0.5, -0.15, f"T{i + 1}", ha="center", va="bottom", fontsize=13)
    ax.text(B / 2, -0.65, "captions T1 … TB (text tower)", ha="center", fontsize=13)
    ax.annotate("", xy=(B + 0.9, 0.5), xytext=(B + 0.1, 0.5), arrowprops=dict(arrowstyle="->"))
    ax.text(B + 1.0, 0.5, "softmax over a row:\nwhich caption is\nimage I1's?", va="center", fontsize=12)
    ax.annotate("", xy=(0.5, B + 0.9), xytext=(0.5, B + 0.1), arrowprops=dict(arrowstyle="->"))
    ax.text(0.5, B + 1.0, "softmax over a column: which image is caption T1's?", va="top", fontsize=12)
    ax.text(B + 1.0, B - 0.9, "green: B positives\ngrey: B² − B in-batch\nnegatives", fontsize=12)
    ax.set_xlim(-1.9, B + 3.2)
    ax.set_ylim(B + 1.6, -0.9)
    ax.axis("off")
    ax.set_title(f"the B × B similarity matrix of a batch (B = {B})", fontsize=14)
    return fig


# ---------------------------------------------------------------------------------------------
# Retrieval: a bank of test scenes with precomputed features
# ---------------------------------------------------------------------------------------------


@dataclass
class RetrievalBank:
    """Test scenes to search: their images' features and the features of their distinct captions."""

    pairs: Pairs
    image_features: torch.Tensor   # (N, E) unit length
    captions: list[str]            # distinct captions of the bank
    text_features: torch.Tensor    # (M, E) unit length


@torch.no_grad()
def build_bank(model, n: int = 1000, seed: int = 3) -> RetrievalBank:
    """Encode n single-object test scenes and their distinct captions."""
    pairs = sample_pairs(n, seed=seed, split="test")
    tok = WordTokenizer(context_length=model.cfg.text.context_length)
    model.eval()
    img = torch.cat([model.encode_image(pairs.images[i : i + 500], normalize=True) for i in range(0, n, 500)])
    captions = sorted(set(pairs.captions))
    return RetrievalBank(pairs, img, captions, model.encode_text(tok(captions), normalize=True))


@dataclass
class QueryView:
    """The answer to one query: the ranked indices and scores, a picture, or an error message."""

    png: bytes | None
    indices: list[int]
    scores: list[float]
    message: str


@torch.no_grad()
def text_query_view(model, bank: RetrievalBank, query: str, k: int = 8) -> QueryView:
    """Text -> image retrieval: the k bank images most similar to ``query``.

    A word the tokenizer does not know gives no picture and the tokenizer's message (which names
    the nearest known words) instead of an exception, so a typo in the widget is harmless.
    """
    import matplotlib.pyplot as plt

    tok = WordTokenizer(context_length=model.cfg.text.context_length)
    try:
        tokens = tok([query])
    except ValueError as err:
        return QueryView(None, [], [], str(err))
    if not tok.split(query):
        return QueryView(None, [], [], "type a description, e.g. 'a small red circle at the top left'")
    q = model.encode_text(tokens, normalize=True)[0]
    scores, idx = (bank.image_features @ q).topk(k)
    fig, axes = plt.subplots(1, k, figsize=(QUERY_WIDTH, 1.7))
    for ax, i, s in zip(np.atleast_1d(axes), idx.tolist(), scores.tolist()):
        ax.imshow(_to_hwc(bank.pairs.images[i]))
        ax.set_title(f"{s:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"top {k} of {len(bank.pairs)} images for: {query!r}", fontsize=9)
    fig.tight_layout()
    return QueryView(figure_png(fig, dpi=_WIDGET_DPI, tight=False), idx.tolist(), scores.tolist(), f"query: {query}")


@torch.no_grad()
def image_query_view(model, bank: RetrievalBank, index: int, k: int = 5) -> QueryView:
    """Image -> text retrieval: the k distinct bank captions most similar to image ``index``."""
    import matplotlib.pyplot as plt

    if not isinstance(index, int) or not 0 <= index < len(bank.pairs):
        raise ValueError(f"index must be an int in 0..{len(bank.pairs) - 1}, got {index!r}")
    scores, idx = (bank.text_features @ bank.image_features[index]).topk(k)
    fig, ax = plt.subplots(figsize=(PICKED_WIDTH, PICKED_WIDTH))
    ax.imshow(_to_hwc(bank.pairs.images[index]))
    ax.axis("off")
    ax.set_title(f"image {index}", fontsize=8)
    own = bank.pairs.captions[index]
    lines = [f"own caption: {own}", ""]
    for rank, (j, s) in enumerate(zip(idx.tolist(), scores.tolist()), start=1):
        mark = "  ← its own caption" if bank.captions[j] == own else ""
        lines.append(f"{rank}. {s:.3f}  {bank.captions[j]}{mark}")
    fig.tight_layout(pad=0.2)
    return QueryView(figure_png(fig, dpi=_WIDGET_DPI, tight=False), idx.tolist(), scores.tolist(), "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Widget builders: controls only
# ---------------------------------------------------------------------------------------------


def slider_temperature(temperature: float) -> float:
    """Where the logarithmic temperature slider starts: ``temperature`` clamped to [0.01, 1]."""
    _check_temperature(temperature)
    return min(max(float(temperature), 0.01), 1.0)


def similarity_explorer(model, batch_size: int = 6, temperature: float | None = None):
    """Batch picker and temperature slider -> the batch's similarity matrix and row softmax.

    The slider starts at ``temperature``, by default the model's own learned T = 1 / exp(logit_scale).
    """
    import ipywidgets as W

    if temperature is None:
        temperature = 1.0 / float(model.logit_scale.detach().exp())
    seed = W.IntSlider(value=0, min=0, max=99, description="batch", continuous_update=False)
    # Logarithmic: T from 0.01 to 1 in steps of a factor 10^0.05 (about 12%), so the small
    # temperatures where the softmax changes fastest get most of the slider's travel.
    temperature = W.FloatLogSlider(value=slider_temperature(temperature), base=10, min=-2, max=0, step=0.05,
                                   description="temperature", continuous_update=False, readout_format=".3f")
    image = W.Image(format="png", layout=W.Layout(width=widget_width(SIMILARITY_WIDTH)))
    image.add_class("mmcourse-similarity")
    temperature.add_class("mmcourse-temperature")  # CSS classes: handles for the browser test

    def update(_=None) -> None:
        image.value = similarity_view(model, seed.value, temperature.value, batch_size).png

    for w in (seed, temperature):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([seed, temperature]), image])


def retrieval_explorer(model, bank: RetrievalBank, k: int = 8):
    """A text box (text -> images) and an image picker (image -> captions)."""
    import ipywidgets as W

    query = W.Text(value="a small red circle at the top left", description="query",
                   continuous_update=False, layout=W.Layout(width="460px"))
    query.add_class("mmcourse-query")
    images = W.Image(format="png", layout=W.Layout(width=widget_width(QUERY_WIDTH)))
    message = W.HTML()
    pick = W.IntSlider(value=0, min=0, max=len(bank.pairs) - 1, description="image", continuous_update=False)
    picked = W.Image(format="png", layout=W.Layout(width=widget_width(PICKED_WIDTH)))
    ranked = W.HTML()
    images.add_class("mmcourse-query-images")
    message.add_class("mmcourse-query-message")

    def on_query(_=None) -> None:
        v = text_query_view(model, bank, query.value, k)
        if v.png is not None:
            images.value = v.png
        message.value = f"<pre>{html.escape(v.message)}</pre>"

    def on_pick(_=None) -> None:
        v = image_query_view(model, bank, pick.value)
        picked.value = v.png
        ranked.value = f"<pre>{html.escape(v.message)}</pre>"

    query.observe(on_query, names="value")
    pick.observe(on_pick, names="value")
    on_query()
    on_pick()
    return W.VBox([W.HTML("<b>text → image</b>"), query, message, images,
                   W.HTML("<b>image → text</b>"), pick, W.HBox([picked, ranked])])

"""The BLIP notebook's widgets: captions marked word by word, and one-word edits scored by ITM and ITC.

As everywhere in the course, each control calls a plain function of the control values
(:func:`caption_view`, :func:`matching_view`) that returns PNG bytes, HTML and the numbers behind
them; those functions are unit-tested headless. The builders at the bottom only wire ipywidgets.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import torch

from ..data.shapes import COLOUR_NAMES, SHAPES, SIZES
from ..viz import FIG_DPI, WIDGET_PIXEL_RATIO, _to_hwc, figure_png, widget_width
from .captions import _WORD_KIND, COLUMN_WORDS, ROW_WORDS, sample_scenes, scene_objects, word_marks
from .evaluate import generate_captions, itc_scores, itm_scores

METHOD_NAMES = {"greedy": "greedy", "beam": "beam search (3 beams)", "nucleus": "nucleus sampling (top-p 0.9)"}
COLOURS = {"right": "#1a7f37", "wrong": "#cf222e", "glue": "#57606a"}
IMAGE_INCHES = 1.9


def marks_html(marks: list[tuple[str, str]]) -> str:
    """Words coloured by verdict: right green, wrong red and struck through, glue grey."""
    out = []
    for w, verdict in marks:
        style = f"color:{COLOURS[verdict]}" + (";font-weight:600" if verdict != "glue" else "")
        if verdict == "wrong":
            style += ";text-decoration:line-through"
        out.append(f'<span class="mm-{verdict}" style="{style}">{html.escape(w)}</span>')
    return " ".join(out)


def _image_png(image: torch.Tensor) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(IMAGE_INCHES, IMAGE_INCHES))
    ax.imshow(_to_hwc(image))
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return figure_png(fig, dpi=FIG_DPI * WIDGET_PIXEL_RATIO, tight=False)


def _check_scene(seed: int, n_objects: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if n_objects not in (1, 2, 3):
        raise ValueError(f"n_objects must be 1, 2 or 3, got {n_objects!r}")


def widget_scene(seed: int, n_objects: int):
    """Test scene number ``seed`` with ``n_objects`` objects (a SceneBatch of one)."""
    _check_scene(seed, n_objects)
    return sample_scenes(1, seed=seed, split="test", min_objects=n_objects, max_objects=n_objects)


# ------------------------------------------------------------------------------------ captions
@dataclass
class CaptionView:
    """One scene and the captions of the three decoding methods, each word judged."""

    png: bytes
    html: str
    captions: dict[str, str]                     # method -> caption
    wrong: dict[str, int]                        # method -> number of wrong words
    truth: str


def caption_view(model, seed: int = 0, n_objects: int = 1, sample_seed: int = 0) -> CaptionView:
    """Test scene ``seed`` with ``n_objects`` objects, captioned greedily, by beam search and by
    nucleus sampling (``sample_seed`` draws the sample); each word marked right or wrong."""
    batch = widget_scene(seed, n_objects)
    truth = scene_objects(batch, 0)
    captions, wrong, rows = {}, {}, []
    for method, name in METHOD_NAMES.items():
        c = generate_captions(model, batch.images, method, seed=sample_seed)[0]
        marks = word_marks(c, truth)
        captions[method], wrong[method] = c, sum(v == "wrong" for _, v in marks)
        rows.append(f"<tr><td style='padding-right:12px;color:#57606a'>{name}</td><td>{marks_html(marks)}</td></tr>")
    body = ("<table class='mmcourse-captions'>" + "".join(rows) + "</table>"
            f"<div style='color:#57606a;margin-top:4px'>ShapesWorld's caption: {html.escape(batch.captions[0])}</div>")
    return CaptionView(_image_png(batch.images[0]), body, captions, wrong, batch.captions[0])


# ------------------------------------------------------------------------------------ matching
def editable_words(caption: str) -> list[tuple[int, str, list[str]]]:
    """The words of a caption one can swap for another of their kind: (index, word, alternatives).

    Colours and shapes: every other colour or shape; size: the other size; a position word: its
    opposite (top/bottom, left/right). "middle" has no one-word alternative.
    """
    out = []
    for i, w in enumerate(caption.split()):
        kind = _WORD_KIND.get(w)
        if kind is None or w == "middle":
            continue
        if kind == "position":
            pair = ROW_WORDS if w in ROW_WORDS else COLUMN_WORDS
            alts = [pair[1 - pair.index(w)]]
        else:
            alts = [x for x in {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES}[kind] if x != w]
        out.append((i, w, alts))
    return out


def edit_caption(caption: str, index: int, new_word: str) -> str:
    """``caption`` with word ``index`` replaced by ``new_word`` (one of its :func:`editable_words` alternatives)."""
    choices = {i: alts for i, _, alts in editable_words(caption)}
    if index not in choices:
        raise ValueError(f"index must be the position of a colour, shape, size or position word, one of "
                         f"{sorted(choices)}, got {index!r}")
    if new_word not in choices[index]:
        raise ValueError(f"new_word must be one of {choices[index]} for word {index}, got {new_word!r}")
    words = caption.split()
    words[index] = new_word
    return " ".join(words)


@dataclass
class MatchView:
    """A scene, its caption and an edited caption, scored by ITM and ITC."""

    png: bytes
    html: str
    caption: str
    edited: str
    itm: tuple[float, float]   # match probability (true caption, edited)
    itc: tuple[float, float]   # cosine similarity (true caption, edited)


def matching_view(model, seed: int = 0, n_objects: int = 1, index: int | None = None,
                  new_word: str | None = None) -> MatchView:
    """Test scene ``seed``: its caption against the caption with word ``index`` -> ``new_word``
    (None: the first editable word, its first alternative), both scored by ITM and ITC."""
    batch = widget_scene(seed, n_objects)
    caption = batch.captions[0]
    editable = editable_words(caption)
    if index is None:
        index, _, alts = editable[0]
        new_word = alts[0]
    edited = edit_caption(caption, index, new_word)
    images = batch.images.expand(2, -1, -1, -1)
    p = itm_scores(model, images, [caption, edited]).tolist()
    s = itc_scores(model, images, [caption, edited]).tolist()
    truth = scene_objects(batch, 0)
    rows = [f"<tr><th></th><th style='text-align:left'>caption</th><th>ITM match probability</th>"
            f"<th>ITC cosine</th></tr>"]
    for name, text, pi, si in (("true", caption, p[0], s[0]), ("edited", edited, p[1], s[1])):
        bar = f"<div style='background:#0969da;height:10px;width:{round(120 * pi)}px'></div>"
        rows.append(f"<tr><td>{name}</td><td>{marks_html(word_marks(text, truth))}</td>"
                    f"<td style='text-align:right'>{pi:.3f}{bar}</td><td style='text-align:right'>{si:.3f}</td></tr>")
    verdict = ("ITM prefers the true caption" if p[0] > p[1] else "ITM prefers the edited caption") + ", " + \
              ("ITC prefers the true caption" if s[0] > s[1] else "ITC prefers the edited caption")
    body = f"<table class='mmcourse-matching'>{''.join(rows)}</table><div>{verdict}</div>"
    return MatchView(_image_png(batch.images[0]), body, caption, edited, (p[0], p[1]), (s[0], s[1]))


# ------------------------------------------------------------------------------------- widgets
def caption_explorer(model):
    """Scene and object-count pickers -> greedy, beam and nucleus captions, words marked."""
    import ipywidgets as W

    seed = W.IntSlider(value=0, min=0, max=199, description="scene", continuous_update=False)
    n_objects = W.ToggleButtons(options=[1, 2, 3], value=1, description="objects", style={"button_width": "40px"})
    resample = W.IntSlider(value=0, min=0, max=9, description="sample", continuous_update=False)
    image = W.Image(format="png", layout=W.Layout(width=widget_width(IMAGE_INCHES)))
    text = W.HTML()
    seed.add_class("mmcourse-caption-seed")
    n_objects.add_class("mmcourse-caption-objects")
    text.add_class("mmcourse-caption-text")

    def update(_=None) -> None:
        v = caption_view(model, seed.value, n_objects.value, resample.value)
        image.value, text.value = v.png, v.html

    for w in (seed, n_objects, resample):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([seed, n_objects, resample]), W.HBox([image, text])])


def matching_explorer(model):
    """Scene picker, a word of its caption and its replacement -> ITM and ITC for both captions."""
    import ipywidgets as W

    seed = W.IntSlider(value=0, min=0, max=199, description="scene", continuous_update=False)
    n_objects = W.ToggleButtons(options=[1, 2, 3], value=1, description="objects", style={"button_width": "40px"})
    word = W.Dropdown(description="word")
    new = W.Dropdown(description="becomes")
    image = W.Image(format="png", layout=W.Layout(width=widget_width(IMAGE_INCHES)))
    text = W.HTML()
    word.add_class("mmcourse-match-word")
    new.add_class("mmcourse-match-new")
    text.add_class("mmcourse-match-text")
    state = {"busy": False}

    def show(_=None) -> None:
        if state["busy"] or word.value is None or new.value is None:
            return
        v = matching_view(model, seed.value, n_objects.value, word.value, new.value)
        image.value, text.value = v.png, v.html

    def on_word(_=None) -> None:
        caption = widget_scene(seed.value, n_objects.value).captions[0]
        alts = dict((i, a) for i, _, a in editable_words(caption))[word.value]
        state["busy"] = True
        new.options = alts
        new.value = alts[0]
        state["busy"] = False
        show()

    def on_scene(_=None) -> None:
        caption = widget_scene(seed.value, n_objects.value).captions[0]
        options = [(f"{w} (word {i + 1})", i) for i, w, _ in editable_words(caption)]
        state["busy"] = True
        word.options = options
        word.value = options[0][1]
        state["busy"] = False
        on_word()

    seed.observe(on_scene, names="value")
    n_objects.observe(on_scene, names="value")
    word.observe(on_word, names="value")
    new.observe(show, names="value")
    on_scene()
    return W.VBox([W.HBox([seed, n_objects]), W.HBox([word, new]), W.HBox([image, text])])

"""Prompts: a class list becomes a sentence, and a sentence is cut back into phrases.

- Detection prompt (GLIP): the class names joined by ". ", e.g. "circle. square. triangle. diamond.
  cross."; each name is one phrase with its character span.
- Caption: free text such as "a small red circle at the top left and a large blue square"; its
  phrases are the runs of [size] [colour] shape words (GLIP extracts noun phrases with NLTK; in
  ShapesWorld's vocabulary a noun phrase is exactly such a run).
"""

from __future__ import annotations

import re

from ..clip.tokenizer import WordTokenizer
from ..data.shapes import COLOUR_NAMES, SHAPES, SIZES
from .targets import word_offsets

SEPARATOR = ". "


def detection_prompt(names: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Names -> ("circle. square.", [(0, 6), (8, 14)]): the prompt and each name's span."""
    if not names:
        raise ValueError("names must be a non-empty list of phrases")
    text, spans = "", []
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or "." in name:
            raise ValueError(f"names[{k}]={name!r} must be a non-empty phrase without '.'")
        if k:
            text += " "
        spans.append((len(text), len(text) + len(name)))
        text += name + "."
    return text, spans


def caption_phrases(caption: str) -> list[tuple[str, tuple[int, int]]]:
    """The noun phrases of a ShapesWorld caption: maximal runs of [size] [colour] shape words.

    >>> caption_phrases("a small red circle and a square")
    [('small red circle', (2, 18)), ('square', (25, 31))]
    """
    words = word_offsets(caption)
    lower = caption.lower()
    out, start = [], None
    for i, (s, e) in enumerate(words):
        w = lower[s:e]
        if w in SIZES or w in COLOUR_NAMES:
            start = s if start is None else start
        elif w in SHAPES:
            s0 = s if start is None else start
            out.append((caption[s0:e], (s0, e)))
            start = None
        else:
            start = None
    return out


def parse_prompt(prompt: str, tokenizer: WordTokenizer) -> tuple[list[str], list[tuple[int, int]]]:
    """A prompt -> its phrases and their spans, after checking every word is known.

    A prompt with a "." is a phrase list ("red circle. blue square."): every piece between the
    full stops is a phrase. Otherwise it is a caption and its phrases are found by
    :func:`caption_phrases`. Raises ValueError naming ``prompt`` for an empty prompt, an unknown
    word (listing the nearest known words), a caption without any shape word, or a prompt longer
    than the context length.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string such as 'circle. square.', got {prompt!r}")
    try:
        tokenizer.encode(prompt)
    except ValueError as err:
        raise ValueError(f"prompt: {err}") from None
    if "." in prompt:
        phrases, spans = [], []
        for m in re.finditer(r"[^.]+", prompt):
            piece = m.group()
            if piece.strip():
                s = m.start() + len(piece) - len(piece.lstrip())
                e = m.end() - (len(piece) - len(piece.rstrip()))
                phrases.append(prompt[s:e])
                spans.append((s, e))
        if not phrases:
            raise ValueError(f"prompt {prompt!r} has no phrase between its full stops")
        return phrases, spans
    found = caption_phrases(prompt)
    if not found:
        raise ValueError(f"prompt {prompt!r} names no object: a caption needs a shape word "
                         f"({', '.join(SHAPES)}), or separate phrases with '. '")
    return [p for p, _ in found], [s for _, s in found]

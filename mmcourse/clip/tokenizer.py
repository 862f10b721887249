"""A word-level tokenizer for ShapesWorld captions.

Real CLIP reads text through a byte-pair encoding of ~49k pieces, because people write anything.
ShapesWorld captions use about thirty words, so one token per word is enough and every token
can be read back. The layout copies OpenAI's CLIP:

    [<start>, w_1, ..., w_n, <end>, <pad>, <pad>, ...]      (length = context_length)

``<end>`` has the largest id, as OpenAI's end-of-text token does (49407), so both ways of
finding it work: ``tokens.argmax(-1)`` (OpenAI) and "first position equal to eot_token_id"
(transformers). The text tower reads its sentence embedding at that position (see
:mod:`.text_encoder`).
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence

import torch

from ..data.shapes import CAPTION_TEMPLATES, COLOUR_NAMES, POSITION_PHRASES, SHAPES, SIZES

PAD, START, END = "<pad>", "<start>", "<end>"


def shapes_vocabulary() -> list[str]:
    """Every word a ShapesWorld caption can contain, sorted: template glue words, position
    phrases, sizes, colours, shapes and the "and" that joins objects."""
    words: set[str] = {"and"}
    for scene, clause in CAPTION_TEMPLATES:
        words.update(re.sub(r"\{\w+\}", " ", scene + " " + clause).split())
    for phrase in POSITION_PHRASES.values():
        words.update(phrase.split())
    words.update(SIZES)
    words.update(COLOUR_NAMES)
    words.update(SHAPES)
    return sorted(words)


class WordTokenizer:
    """Words <-> ids, with start, end and padding tokens.

    Args:
        words: the vocabulary (default: :func:`shapes_vocabulary`).
        context_length: length of every encoded row, including <start> and <end>.

    Ids: ``<pad>`` = 0, the words 1..V in the given order, ``<start>`` = V + 1, ``<end>`` = V + 2.
    Padding is 0 (as in OpenAI's CLIP) so that a padded row reads as "nothing here".
    """

    def __init__(self, words: Sequence[str] | None = None, context_length: int = 16) -> None:
        words = list(shapes_vocabulary() if words is None else words)
        if len(set(words)) != len(words):
            raise ValueError("words must not contain duplicates")
        if any(w in (PAD, START, END) or not w or " " in w for w in words):
            raise ValueError(f"words must be single non-empty words other than {PAD}, {START}, {END}")
        if not isinstance(context_length, int) or context_length < 3:
            raise ValueError(f"context_length must be an int >= 3 (start, one word, end), got {context_length!r}")
        self.words = words
        self.context_length = context_length
        self.itos = [PAD, *words, START, END]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_token_id = 0
        self.sot_token_id = self.stoi[START]
        self.eot_token_id = self.stoi[END]  # the largest id: OpenAI's argmax pooling finds it

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def split(self, text: str) -> list[str]:
        """Lowercase words of ``text``; commas, full stops and other punctuation are dropped."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return re.sub(r"[^\w\s]", " ", text.lower()).split()

    def encode(self, text: str, truncate: bool = False) -> list[int]:
        """One text -> ids ``[<start>, words..., <end>]`` (not padded).

        Raises ValueError for a word outside the vocabulary (naming the closest known words) and
        for a text longer than ``context_length`` unless ``truncate`` (then the end is cut, and
        the last id is still ``<end>``).
        """
        ids = []
        for w in self.split(text):
            if w not in self.stoi or w in (PAD, START, END):
                near = difflib.get_close_matches(w, self.words, n=3, cutoff=0.5)
                hint = f"nearest known words: {', '.join(near)}" if near else f"known words: {', '.join(self.words)}"
                raise ValueError(f"unknown word {w!r} in text {text!r}; {hint}")
            ids.append(self.stoi[w])
        ids = [self.sot_token_id, *ids, self.eot_token_id]
        if len(ids) > self.context_length:
            if not truncate:
                raise ValueError(f"text {text!r} has {len(ids) - 2} words, more than context_length - 2 = "
                                 f"{self.context_length - 2}; shorten it or pass truncate=True")
            ids = ids[: self.context_length - 1] + [self.eot_token_id]
        return ids

    def __call__(self, texts: str | Iterable[str], truncate: bool = False) -> torch.Tensor:
        """Texts -> (N, context_length) int64 ids, padded with 0. A single str gives N = 1."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a string or a list of strings, got {type(texts).__name__}: {texts!r:.80}")
        texts = list(texts)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.encode(text, truncate=truncate)
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Ids of one text -> the words between <start> and <end> (padding dropped)."""
        words = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eot_token_id:
                break
            if i not in (self.pad_token_id, self.sot_token_id):
                words.append(self.itos[i])
        return " ".join(words)

    def __repr__(self) -> str:
        return f"WordTokenizer({len(self.words)} words, context_length={self.context_length})"

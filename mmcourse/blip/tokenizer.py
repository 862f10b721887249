"""BLIP's tokenizer: the course's word tokenizer (:mod:`mmcourse.clip.tokenizer`) with BERT's tokens.

BLIP reads every caption with one BERT tokenizer and tells the text transformer which job it is
doing by the first token:

    [CLS] w_1 ... w_n [SEP] [PAD] ...     unimodal encoder (ITC): [CLS] is pooled
    [ENC] w_1 ... w_n [SEP] [PAD] ...     image-grounded encoder (ITM): the 2-way head reads [ENC]
    [DEC] w_1 ... w_n [SEP] [PAD] ...     image-grounded decoder (LM): [DEC] starts, [SEP] ends

The tokenizer always writes ``[CLS]``; the model swaps token 0 for ``[ENC]`` or ``[DEC]`` itself,
as BLIP's ``blip_pretrain.py`` does (transformers' BLIP does not: it expects the caller to do it).

Ids: ``[PAD]`` = 0, the words 1..V, then ``[CLS]``, ``[SEP]``, ``[ENC]``, ``[DEC]`` (V+1..V+4).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..clip.tokenizer import WordTokenizer

PAD, CLS, SEP, ENC, DEC = "[PAD]", "[CLS]", "[SEP]", "[ENC]", "[DEC]"
SPECIAL = (PAD, CLS, SEP, ENC, DEC)


class BlipTokenizer(WordTokenizer):
    """Words <-> ids with ``[CLS]``, ``[SEP]``, ``[ENC]``, ``[DEC]`` and ``[PAD]``.

    Args:
        words: the vocabulary (default: ShapesWorld's, :func:`mmcourse.clip.shapes_vocabulary`).
        context_length: length of every encoded row, ``[CLS]`` and ``[SEP]`` included.

    ``encode`` and the error messages (unknown words with the nearest known ones, texts longer
    than the context) are :class:`mmcourse.clip.WordTokenizer`'s; ``__call__`` adds the name of
    the argument the texts came from.
    """

    def __init__(self, words: Sequence[str] | None = None, context_length: int = 16) -> None:
        super().__init__(words, context_length)
        if any(w in SPECIAL for w in self.words):
            raise ValueError(f"words must not contain the special tokens {SPECIAL}")
        self.itos = [PAD, *self.words, CLS, SEP, ENC, DEC]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_token_id = self.stoi[PAD]
        self.cls_token_id = self.stoi[CLS]
        self.sep_token_id = self.stoi[SEP]
        self.enc_token_id = self.stoi[ENC]
        self.dec_token_id = self.stoi[DEC]
        # the names WordTokenizer.encode uses for the first and last token
        self.sot_token_id, self.eot_token_id = self.cls_token_id, self.sep_token_id

    def token_ids(self) -> dict[str, int]:
        """The special ids, named as :class:`mmcourse.blip.TextConfig` names them."""
        return {"pad_token_id": self.pad_token_id, "cls_token_id": self.cls_token_id, "sep_token_id": self.sep_token_id,
                "enc_token_id": self.enc_token_id, "dec_token_id": self.dec_token_id}

    def __call__(self, texts: str | Iterable[str], truncate: bool = False, argument: str = "texts") -> torch.Tensor:
        """Texts -> (N, context_length) int64 ids ``[CLS] words [SEP] [PAD]...``.

        A ValueError (unknown word, text too long) starts with ``argument``, the name of the
        caller's parameter, e.g. ``captions``.
        """
        try:
            return super().__call__(texts, truncate=truncate)
        except ValueError as err:
            raise ValueError(f"{argument}: {err}") from None

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Ids of one text -> its words: stops at ``[SEP]``, drops ``[PAD]``, ``[CLS]``, ``[ENC]``, ``[DEC]``."""
        words = []
        skip = {self.pad_token_id, self.cls_token_id, self.enc_token_id, self.dec_token_id}
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.sep_token_id:
                break
            if i not in skip:
                words.append(self.itos[i])
        return " ".join(words)

    def __repr__(self) -> str:
        return f"BlipTokenizer({len(self.words)} words, context_length={self.context_length})"

"""Prompts for the ShapesWorld text-to-image model: reading what a prompt asks for, and prompt sets.

A prompt uses ShapesWorld's caption words ("a large purple diamond at the bottom right"). What it
asks for is read back word by word (:func:`parse_prompt`), so the judges know what to check; an
attribute the prompt leaves out is not judged.
"""

from __future__ import annotations

import itertools

import torch

from ..clip.tokenizer import WordTokenizer
from ..data.shapes import COLOUR_NAMES, HELDOUT_COMBOS, POSITION_PHRASES, POSITIONS, SHAPES, SIZES, describe

ATTRIBUTES = ("shape", "colour", "size", "position")


def parse_prompt(prompt: str, tokenizer: WordTokenizer | None = None) -> dict[str, str | None]:
    """What a prompt asks for: {"shape", "colour", "size", "position"} -> name, or None if not said.

    Raises ValueError naming ``prompt`` for a word the text tower does not know (with the nearest
    known words), for a prompt longer than the tower's context, and for a prompt that names two
    shapes, colours, sizes or positions (one object per image).
    """
    tokenizer = tokenizer or WordTokenizer()
    try:
        tokenizer.encode(prompt)
    except ValueError as e:
        raise ValueError(f"prompt: {e}") from None
    words = tokenizer.split(prompt)
    found: dict[str, str | None] = {}
    for attribute, names in (("shape", SHAPES), ("colour", COLOUR_NAMES), ("size", SIZES)):
        hits = [w for w in words if w in names]
        if len(set(hits)) > 1:
            raise ValueError(f"prompt: names {len(set(hits))} {attribute}s ({', '.join(hits)}); "
                             "the model draws one object, so name at most one")
        found[attribute] = hits[0] if hits else None
    # Positions: the longest phrase first, so "top left" is not read as "top" and "left".
    text = " " + " ".join(words) + " "
    positions = []
    for name in sorted(POSITIONS, key=len, reverse=True):
        phrase = " " + POSITION_PHRASES[name] + " "
        if phrase in text:
            positions.append(name)
            text = text.replace(phrase, " | ")
    if len(positions) > 1:
        raise ValueError(f"prompt: names {len(positions)} positions ({', '.join(positions)}); name at most one")
    found["position"] = positions[0] if positions else None
    return {a: found[a] for a in ATTRIBUTES}


def prompt_set(n: int, seed: int = 0, split: str = "test") -> tuple[list[str], torch.Tensor]:
    """n canonical prompts ("a small red circle at the top left") and their labels (n, 4).

    ``split``: "test" draws colour-shape pairs seen in training, "heldout" only the pairs in
    HELDOUT_COMBOS. Labels are indices into SHAPES, COLOUR_NAMES, SIZES, POSITIONS (columns in
    that order). Deterministic in (n, seed, split).
    """
    if split not in ("test", "heldout"):
        raise ValueError(f"split must be 'test' or 'heldout', got {split!r}")
    held = set(HELDOUT_COMBOS)
    pairs = [(c, s) for c, s in itertools.product(COLOUR_NAMES, SHAPES) if ((c, s) in held) == (split == "heldout")]
    g = torch.Generator().manual_seed(seed * 2 + (split == "heldout"))
    pick = torch.randint(len(pairs), (n,), generator=g)
    size = torch.randint(len(SIZES), (n,), generator=g)
    pos = torch.randint(len(POSITIONS), (n,), generator=g)
    prompts, labels = [], []
    for p, z, q in zip(pick.tolist(), size.tolist(), pos.tolist()):
        c, s = pairs[p]
        prompts.append(describe(s, c, SIZES[z], POSITIONS[q]))
        labels.append((SHAPES.index(s), COLOUR_NAMES.index(c), z, q))
    return prompts, torch.tensor(labels)

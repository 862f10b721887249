"""ShapesWorld scenes and their captions, read back word by word (notebook 05's data and judge).

- Scenes: 32x32, named colours, 1 to 3 objects; ShapesWorld's captions name every object with its
  size, colour, shape and position (:func:`sample_scenes`, :func:`scene_objects`).
- Reading a caption back into objects (:func:`parse_caption`), so that a generated caption can be
  judged word by word (:func:`word_marks`, :func:`caption_scores`), and so that two captions of the
  same content, in any template or object order, get one id (:func:`content_ids`).
- One-word-changed captions (:func:`one_word_change`): one colour, shape, size or position word
  swapped, the test ITM exists for.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, SceneBatch, ShapesWorld

ATTRIBUTES = ("shape", "colour", "size", "position")
CONTEXT_LENGTH = 34  # 3 objects in the longest template: 3 x "at the bottom right there is a large green circle" + 2 "and" = 32 words, + [CLS] [SEP]
ROW_WORDS, COLUMN_WORDS = ("top", "bottom"), ("left", "right")
_WORD_KIND = {**{w: "shape" for w in SHAPES}, **{w: "colour" for w in COLOUR_NAMES}, **{w: "size" for w in SIZES},
              **{w: "position" for w in (*ROW_WORDS, *COLUMN_WORDS, "middle")}}


def world(min_objects: int = 1, max_objects: int = 3) -> ShapesWorld:
    """The ShapesWorld of this notebook: 32x32, named colours, ``min_objects``..``max_objects`` objects."""
    return ShapesWorld(image_size=32, min_objects=min_objects, max_objects=max_objects, colour_mode="named")


def sample_scenes(n: int, seed: int = 0, split: str = "train", min_objects: int = 1, max_objects: int = 3) -> SceneBatch:
    """n scenes with their captions (a deterministic function of the arguments)."""
    return world(min_objects, max_objects).sample(n, seed=seed, split=split)


def scene_objects(batch: SceneBatch, i: int) -> list[dict[str, str]]:
    """The true objects of scene i: dicts with the names of shape, colour, size and position."""
    out = []
    for k in range(int(batch.valid[i].sum())):
        out.append({"shape": SHAPES[int(batch.shape[i, k])], "colour": COLOUR_NAMES[int(batch.colour[i, k])],
                    "size": SIZES[int(batch.size[i, k])], "position": POSITIONS[int(batch.position[i, k])]})
    return out


def _position(words: Sequence[str]) -> str | None:
    """The grid cell named by a clause's position words: ("top", "left") -> "top left"."""
    row = next((w for w in words if w in ROW_WORDS), None)
    col = next((w for w in words if w in COLUMN_WORDS), None)
    if row or col:
        return " ".join(w for w in (row, col) if w)
    return "middle" if "middle" in words else None


def parse_caption(caption: str) -> list[dict[str, str | None]]:
    """A ShapesWorld-style caption -> its objects, one per " and "-separated clause.

    Each object is a dict with ``shape``, ``colour``, ``size``, ``position`` (the names, None
    where the clause has no such word). Glue words ("there is", "a picture of") are ignored, so
    any template reads the same: ``parse_caption("on the left there is a small red circle")`` ==
    ``[{"shape": "circle", "colour": "red", "size": "small", "position": "left"}]``.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    objects = []
    for clause in caption.split(" and "):
        words = clause.split()
        if not words:
            continue
        obj = {a: next((w for w in words if _WORD_KIND.get(w) == a), None) for a in ("shape", "colour", "size")}
        obj["position"] = _position(words)
        objects.append(obj)
    return objects


def content_key(objects: Sequence[dict]) -> tuple:
    """What a caption (or scene) says, independent of template and object order."""
    return tuple(sorted(tuple(o.get(a) or "" for a in ATTRIBUTES) for o in objects))


def content_ids(captions: Sequence[str]) -> torch.Tensor:
    """(N,) int64, equal exactly for captions that describe the same objects (any template).

    ITC leaves such pairs out of each other's softmax, and ITM never draws them as negatives.
    """
    keys: dict[tuple, int] = {}
    return torch.tensor([keys.setdefault(content_key(parse_caption(c)), len(keys)) for c in captions], dtype=torch.long)


# ------------------------------------------------------------------------ captions, word by word
def word_marks(caption: str, objects: Sequence[dict]) -> list[tuple[str, str]]:
    """Each word of a caption with a verdict against the scene's true ``objects``.

    ``"right"`` or ``"wrong"`` for attribute words (a shape, colour or size word is right when the
    object its clause places names it; a position word is right when some object sits there),
    ``"glue"`` for the rest. A clause whose position matches no object marks all its words wrong.
    """
    by_position = {o["position"]: o for o in objects}
    marks = []
    for c, clause in enumerate(caption.split(" and ")):
        if c:
            marks.append(("and", "glue"))
        words = clause.split()
        target = by_position.get(_position(words))
        for w in words:
            kind = _WORD_KIND.get(w)
            if kind is None:
                marks.append((w, "glue"))
            elif kind == "position":
                marks.append((w, "right" if target is not None else "wrong"))
            else:
                marks.append((w, "right" if target is not None and target[kind] == w else "wrong"))
    return marks


def caption_outcomes(captions: Sequence[str], batch: SceneBatch) -> dict[str, torch.Tensor]:
    """Item by item, how right generated captions are against the scenes of ``batch``.

    Returns ``all_right`` (B,) bool (the caption names exactly the scene's objects, every attribute
    right), ``objects`` (B,) bool (it names as many objects as the scene holds), and over the M
    true objects of all scenes ``attributes`` (M, 4) bool (the caption's object at that object's
    position has the right shape, colour, size, position; a missing object is wrong in all four)
    and ``scene`` (M,), each object's scene index.
    """
    if isinstance(captions, str) or len(captions) != len(batch):
        raise ValueError(f"captions must hold one caption per scene ({len(batch)}), got "
                         f"{'a str' if isinstance(captions, str) else len(captions)}")
    all_right, count_right, attrs, scene = [], [], [], []
    for i, text in enumerate(captions):
        truth, said = scene_objects(batch, i), parse_caption(text)
        by_position = {o["position"]: o for o in said}
        all_right.append(content_key(said) == content_key(truth))
        count_right.append(len(said) == len(truth))
        for o in truth:
            p = by_position.get(o["position"])
            attrs.append([p is not None and p[a] == o[a] for a in ATTRIBUTES])
            scene.append(i)
    return {"all_right": torch.tensor(all_right), "objects": torch.tensor(count_right),
            "attributes": torch.tensor(attrs, dtype=torch.bool).reshape(-1, len(ATTRIBUTES)),
            "scene": torch.tensor(scene, dtype=torch.long)}


def caption_scores(captions: Sequence[str], batch: SceneBatch) -> dict[str, float]:
    """How right generated captions are, against the scenes of ``batch`` (:func:`caption_outcomes`, as shares).

    - ``all_right``: the caption names exactly the scene's objects, every attribute right;
    - ``<attribute>``: over all true objects, the share whose attribute the caption gets right
      (the object is found by its position; a missing object counts wrong for every attribute);
    - ``objects``: the caption names as many objects as the scene holds.
    """
    o = caption_outcomes(captions, batch)
    per_attribute = o["attributes"].float().mean(0).tolist()
    return {"all_right": float(o["all_right"].float().mean()), **dict(zip(ATTRIBUTES, per_attribute)),
            "objects": float(o["objects"].float().mean())}


def one_word_change(caption: str, attribute: str, generator: torch.Generator | None = None) -> str | None:
    """``caption`` with one ``attribute`` word of one object (chosen at random) replaced.

    colour, shape: another colour or shape word; size: small <-> large; position: top <-> bottom
    or left <-> right. None when no object can change that way (position of an object in the
    middle). The result always describes a different scene.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    words = caption.split()
    candidates = [i for i, w in enumerate(words) if _WORD_KIND.get(w) == attribute and w != "middle"]
    if not candidates:
        return None
    pick = lambda n: int(torch.randint(n, (1,), generator=generator))  # noqa: E731
    i = candidates[pick(len(candidates))]
    w = words[i]
    if attribute == "size":
        new = SIZES[1 - SIZES.index(w)]
    elif attribute == "position":
        pair = ROW_WORDS if w in ROW_WORDS else COLUMN_WORDS
        new = pair[1 - pair.index(w)]
    else:
        pool = [x for x in (SHAPES if attribute == "shape" else COLOUR_NAMES) if x != w]
        new = pool[pick(len(pool))]
    words[i] = new
    return " ".join(words)


"""ShapesWorld: a tiny, procedural world of coloured shapes that every topic of the course uses.

Real image data sets are big, slow to download and hard to reason about. ShapesWorld draws
scenes of simple shapes on the fly, in milliseconds, and knows *everything* about each scene,
so one generator feeds every topic:

* diffusion learns to draw the images,
* the ViT classifies the shape (or colour, size, position) of a single object,
* CLIP matches images with their captions,
* SAM segments objects from the instance masks and boxes,
* GLIP grounds phrases like "small red circle" (a character span of the caption) to boxes.

A scene holds 1 to 9 objects. Each object has a shape, a named colour, a size and a cell of a
3x3 grid. The image is an RGB float tensor in [0, 1] with a random, low-saturation background
and mild Gaussian noise. Everything is drawn for a whole batch at once (one signed-distance test
per shape type, broadcast over a pixel grid), so tens of thousands of scenes take about a second.

Conventions: images are (3, H, W); pixel (row y, column x) covers [x, x + 1) x [y, y + 1), so its
centre is (x + 0.5, y + 0.5). Boxes are xyxy in pixels: x0, y0 = first covered column / row,
x1, y1 = last covered column / row + 1. Label tensors hold indices into SHAPES, COLOUR_NAMES,
SIZES and POSITIONS; -1 marks the padding slots of scenes with fewer than K objects.

Example::

    world = ShapesWorld(max_objects=3)
    batch = world.sample(8, seed=0)          # SceneBatch: images (8, 3, 32, 32), masks, boxes, ...
    batch.captions[0]                        # 'there is a small red circle at the top left and ...'
    scene = world.render([dict(shape="cross", colour="blue", size="large", position="middle")])
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# The vocabulary of the world. Captions only use these words plus a few glue words.
# ---------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")

# Saturated, well separated colours (the closest pair, yellow and orange, are 0.42 apart in RGB)
# so that none of them can be confused with the grey-ish backgrounds.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.60, 0.20, 0.80),
    "orange": (1.00, 0.50, 0.00),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SIZES: tuple[str, ...] = ("small", "large")

# The cells of a 3x3 grid, row by row: index p is row p // 3, column p % 3.
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "middle", "right",
    "bottom left", "bottom", "bottom right",
)
# How a position reads in a caption ("a red circle *on the left*").
POSITION_PHRASES: dict[str, str] = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "middle": "in the middle", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}

# (colour, shape) pairs that never appear in the "train" and "test" splits: one per colour,
# five different shapes. Every held-out colour and shape is still seen in training with other
# partners, so the "heldout" split measures compositional generalisation.
HELDOUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("red", "square"),
    ("green", "triangle"),
    ("blue", "circle"),
    ("yellow", "diamond"),
    ("purple", "cross"),
    ("orange", "circle"),
)

# Caption templates as (scene format, object format) pairs. Each object becomes one clause,
# clauses are joined with " and ", and {phrase} is the object's phrase ("small red circle").
# Lowercase words and spaces only, so a word-level tokenizer is enough.
CAPTION_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("{objects}", "a {phrase} {where}"),              # a small red circle at the top left
    ("there is {objects}", "a {phrase} {where}"),     # there is a large blue square in the middle
    ("a picture of {objects}", "a {phrase} {where}"),  # a picture of a small green triangle on the right
    ("an image with {objects}", "a {phrase} {where}"),
    ("{objects}", "{where} there is a {phrase}"),     # at the bottom right there is a large yellow cross
)
caption_templates = CAPTION_TEMPLATES  # the same listing under its lowercase name

COLOUR_MODES: tuple[str, ...] = ("named", "jitter", "random")
SPLITS: tuple[str, ...] = ("train", "test", "heldout", "all")
CAPTION_COLOUR_CHOICES: tuple[str, ...] = ("nearest", "none")

# ---------------------------------------------------------------------------------------------
# Geometry, as fractions of image_size so that 32, 48 and 64 pixel worlds look alike.
# ---------------------------------------------------------------------------------------------

MIN_IMAGE_SIZE = 16   # below this a small object is only a few pixels
MAX_IMAGE_SIZE = 512  # far beyond the course's 32 and 64: larger only fills the memory
MAX_OBJECTS = 9       # one object per grid cell
MAX_SCENES = 200_000  # per sample() call: 200,000 32x32 scenes are ~2.4 GB of images alone
PIXELS_PER_OBJECT = 64  # rule: image_size**2 >= 64 * max_objects (an 8x8 pixel budget each)
RADIUS = {"small": 0.11, "large": 0.16}  # half-extent r of a shape along x and along y
JITTER = 0.04         # the centre moves up to this much (per axis) from its cell's anchor
EDGE = 1.0            # pixels kept free between an object and the image border
MAX_RETRIES = 20      # rounds of re-jittering scenes where an object is more than half hidden
RGB_JITTER = 0.06     # per-channel perturbation in colour_mode="jitter"
MIN_CONTRAST = 0.3    # a random-mode colour keeps at least this RGB distance from the background

_PALETTE = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])  # (6, 3)


def _anchors(image_size: int) -> torch.Tensor:
    """(3,) pixel coordinates of the anchors of the grid's columns (and rows).

    The outer anchors sit a margin of (large radius + jitter + EDGE) from the border, so even a
    large, maximally jittered object never touches the border. For image_size >= 16 every anchor
    +- jitter stays inside its own third of the image. Neighbouring anchors are 0.3 * image_size - 1
    apart, more than two small radii (0.22 * image_size) once image_size >= 16, so small objects
    on their anchors never touch: the last-resort layout of ShapesWorld._draw.
    """
    margin = (RADIUS["large"] + JITTER) * image_size + EDGE
    return torch.tensor([margin, image_size / 2, image_size - margin])


# ---------------------------------------------------------------------------------------------
# Shapes as signed distances: d > 0 inside, d < 0 outside, in pixels (approximately, outside).
# dx: (N, 1, W) and dy: (N, H, 1) are pixel centres relative to each object's centre, r: (N, 1, 1).
# Each result broadcasts to (N, H, W). Every shape reaches at most r from its centre along x and
# along y, which is what keeps it inside the image (see _anchors).
# ---------------------------------------------------------------------------------------------


def _circle(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return r - torch.sqrt(dx * dx + dy * dy)


def _square(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # half side 0.8 r: a full-r square would look much bigger than the circle
    return 0.8 * r - torch.maximum(dx.abs(), dy.abs())


def _triangle(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # apex (0, -r) at the top, base corners (+-r, 0.75 r): the minimum over its three edges
    base = 0.75 * r - dy
    sides = (dy + r - 1.75 * dx.abs()) / math.hypot(1.0, 1.75)
    return torch.minimum(base, sides)


def _diamond(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (r - dx.abs() - dy.abs()) / math.sqrt(2.0)


def _cross(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # a plus sign: the union (max) of a wide and a tall bar, each 0.7 r thick
    ax, ay, t = dx.abs(), dy.abs(), 0.35 * r
    return torch.maximum(torch.minimum(r - ax, t - ay), torch.minimum(t - ax, r - ay))


_SIGNED_DISTANCE = {"circle": _circle, "square": _square, "triangle": _triangle,
                    "diamond": _diamond, "cross": _cross}


def describe(shape: str, colour: str | None, size: str, position: str) -> str:
    """The canonical description of one object, e.g. "a small red circle at the top left".

    It is what the first caption template gives a single-object scene; colour=None leaves the
    colour word out ("a small circle at the top left").
    """
    _check_name("shape", shape, SHAPES)
    _check_name("size", size, SIZES)
    _check_name("position", position, POSITIONS)
    if colour is not None:
        _check_name("colour", colour, COLOUR_NAMES)
    return f"a {_phrase(shape, colour, size)} {POSITION_PHRASES[position]}"


def _phrase(shape: str, colour: str | None, size: str) -> str:
    """The words that name one object in a caption: "small red circle" (size, colour, shape)."""
    return f"{size} {colour} {shape}" if colour is not None else f"{size} {shape}"


def _check_name(argument: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{argument}={value!r} is not one of: {', '.join(allowed)}")


def _is_int(x: object) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for torch.Generator, different for every (seed, stream) pair."""
    tag = int.from_bytes(stream.encode(), "little")
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] >> np.uint64(1))


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """One scene: the fields of SceneBatch without the batch dimension, plus ``objects``.

    ``objects`` lists the real (non-padding) objects in painting order, each a dict with
    shape, colour, size, position (names), phrase, span, box (x0, y0, x1, y1) and rgb.
    Slot k of masks / boxes / labels belongs to objects[k]; slots past len(objects) are padding.
    """

    image: torch.Tensor      # (3, H, W) float32 in [0, 1]
    masks: torch.Tensor      # (K, H, W) bool, visible pixels of each object
    boxes: torch.Tensor      # (K, 4) float32 xyxy pixels
    valid: torch.Tensor      # (K,) bool
    shape: torch.Tensor      # (K,) int64 index into SHAPES, -1 for padding
    colour: torch.Tensor     # (K,) int64 index into COLOUR_NAMES
    size: torch.Tensor       # (K,) int64 index into SIZES
    position: torch.Tensor   # (K,) int64 index into POSITIONS
    rgb: torch.Tensor        # (K, 3) float32, the colour actually painted
    centres: torch.Tensor    # (K, 2) float32 xy pixel centre of each shape (before occlusion)
    caption: str
    phrases: list[str]
    spans: list[tuple[int, int]]
    objects: list[dict] = field(default_factory=list)


@dataclass
class SceneBatch:
    """A batch of B scenes with up to K objects each (K = the world's max_objects).

    Objects are painted in slot order (slot 0 at the bottom), so ``masks`` hold the *visible*
    pixels and never overlap. ``phrases[i][k]`` names object k of scene i and
    ``captions[i][s:e] == phrases[i][k]`` for ``(s, e) = spans[i][k]``.
    """

    images: torch.Tensor     # (B, 3, H, W) float32 in [0, 1]
    masks: torch.Tensor      # (B, K, H, W) bool, visible pixels; padding objects all False
    boxes: torch.Tensor      # (B, K, 4) float32 xyxy pixels, tight around the mask; padding zeros
    valid: torch.Tensor      # (B, K) bool
    shape: torch.Tensor      # (B, K) int64, -1 for padding
    colour: torch.Tensor     # (B, K) int64, -1 for padding
    size: torch.Tensor       # (B, K) int64, -1 for padding
    position: torch.Tensor   # (B, K) int64, -1 for padding
    rgb: torch.Tensor        # (B, K, 3) float32; padding zeros
    centres: torch.Tensor    # (B, K, 2) float32 xy pixel centres; padding zeros
    captions: list[str]
    phrases: list[list[str]]
    spans: list[list[tuple[int, int]]]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Scene:
        if not -len(self) <= i < len(self):
            raise IndexError(f"scene index {i} out of range for a batch of {len(self)}")
        i = i % len(self)
        objects = []
        for k in range(int(self.valid[i].sum())):
            objects.append(dict(
                shape=SHAPES[int(self.shape[i, k])], colour=COLOUR_NAMES[int(self.colour[i, k])],
                size=SIZES[int(self.size[i, k])], position=POSITIONS[int(self.position[i, k])],
                phrase=self.phrases[i][k], span=self.spans[i][k],
                box=tuple(self.boxes[i, k].tolist()), rgb=tuple(self.rgb[i, k].tolist()),
            ))
        return Scene(
            image=self.images[i], masks=self.masks[i], boxes=self.boxes[i], valid=self.valid[i],
            shape=self.shape[i], colour=self.colour[i], size=self.size[i],
            position=self.position[i], rgb=self.rgb[i], centres=self.centres[i],
            caption=self.captions[i], phrases=self.phrases[i], spans=self.spans[i], objects=objects,
        )


def pair_counts(batch: SceneBatch) -> torch.Tensor:
    """How many objects of each (colour, shape) pair a batch holds: int64 (len(COLOUR_NAMES), len(SHAPES)).

    Row c, column s counts the objects painted (or, in "random" mode, named) colour
    ``COLOUR_NAMES[c]`` with shape ``SHAPES[s]``; padding slots are not counted. On the "train"
    split every pair in :data:`HELDOUT_COMBOS` counts zero.
    """
    v = batch.valid
    flat = batch.colour[v] * len(SHAPES) + batch.shape[v]
    return torch.bincount(flat, minlength=len(COLOUR_NAMES) * len(SHAPES)).reshape(len(COLOUR_NAMES), len(SHAPES))


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapesWorld:
    """A configurable generator of ShapesWorld scenes (see the module docstring).

    Args:
        image_size: height = width in pixels, at least 16, and image_size**2 >= 64 * max_objects.
        min_objects, max_objects: each scene has a uniform number of objects in this range (1..9).
        colour_mode: "named" paints the exact palette colour, "jitter" perturbs it slightly,
            "random" paints any RGB colour and labels it with the nearest named colour.
        noise: standard deviation of the Gaussian pixel noise.
        shapes, colours: optional subsets of SHAPES / COLOUR_NAMES to draw from (None = all).
        random_caption_colour: in "random" mode, "nearest" names the nearest colour in the caption,
            "none" leaves the colour word out.
    """

    image_size: int = 32
    min_objects: int = 1
    max_objects: int = 1
    colour_mode: str = "named"
    noise: float = 0.02
    shapes: tuple[str, ...] | None = None
    colours: tuple[str, ...] | None = None
    random_caption_colour: str = "nearest"

    def __post_init__(self) -> None:
        if not _is_int(self.image_size) or not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be an int in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, got {self.image_size!r}")
        if not _is_int(self.min_objects) or not 1 <= self.min_objects <= MAX_OBJECTS:
            raise ValueError(f"min_objects must be an int in 1..{MAX_OBJECTS}, got {self.min_objects!r}")
        if not _is_int(self.max_objects) or not self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"max_objects must be an int in min_objects..{MAX_OBJECTS} "
                             f"= {self.min_objects}..{MAX_OBJECTS} (one object per grid cell), "
                             f"got {self.max_objects!r}")
        if self.image_size**2 < PIXELS_PER_OBJECT * self.max_objects:
            need = math.ceil(math.sqrt(PIXELS_PER_OBJECT * self.max_objects))
            raise ValueError(f"image_size={self.image_size} is too small for max_objects="
                             f"{self.max_objects}: every object needs an 8x8 pixel budget, "
                             f"so image_size must be >= {need}")
        _check_name("colour_mode", self.colour_mode, COLOUR_MODES)
        _check_name("random_caption_colour", self.random_caption_colour, CAPTION_COLOUR_CHOICES)
        if not isinstance(self.noise, (int, float)) or isinstance(self.noise, bool) or not 0 <= self.noise <= 1:
            raise ValueError(f"noise must be a number in [0, 1], got {self.noise!r}")
        # Normalise the subsets to tuples (None = everything) so equal worlds compare equal.
        for argument, allowed in (("shapes", SHAPES), ("colours", COLOUR_NAMES)):
            chosen = getattr(self, argument)
            chosen = allowed if chosen is None else chosen
            if isinstance(chosen, str) or len(chosen) == 0:
                raise ValueError(f"{argument} must be a non-empty tuple of names from: {', '.join(allowed)}")
            for name in chosen:
                _check_name(argument, name, allowed)
            if len(set(chosen)) != len(chosen):
                raise ValueError(f"{argument} has duplicates: {chosen!r}")
            object.__setattr__(self, argument, tuple(chosen))

    # -- public API ---------------------------------------------------------------------------

    def sample(self, n: int, seed: int = 0, split: str = "train") -> SceneBatch:
        """Draw n random scenes.

        split: "train" and "test" never use HELDOUT_COMBOS (they differ only in their random
        stream), "heldout" uses only held-out (colour, shape) pairs for every object, "all" any
        pair. The result is a deterministic function of (seed, split, world config).
        """
        if not _is_int(n) or not 1 <= n <= MAX_SCENES:
            raise ValueError(f"n must be an int in 1..{MAX_SCENES:,} (draw more in several calls with other seeds), got {n!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        n, seed = int(n), int(seed)
        _check_name("split", split, SPLITS)
        combos = self._combos(split)  # (C, 2) colour and shape indices
        gen = torch.Generator().manual_seed(_stream_seed(seed, split))
        K = self.max_objects

        # How many objects, where (distinct cells), and what each one is.
        count = torch.randint(self.min_objects, K + 1, (n,), generator=gen)
        valid = torch.arange(K) < count[:, None]                                    # (n, K)
        position = torch.rand(n, len(POSITIONS), generator=gen).argsort(dim=1)[:, :K]
        pick = combos[torch.randint(len(combos), (n, K), generator=gen)]            # (n, K, 2)
        colour, shape = pick[..., 0], pick[..., 1]
        size = torch.randint(len(SIZES), (n, K), generator=gen)
        shape, colour, size, position = (torch.where(valid, t, -1) for t in (shape, colour, size, position))
        template = torch.randint(len(CAPTION_TEMPLATES), (n,), generator=gen)

        background = self._backgrounds(n, gen)
        rgb = self._object_colours(colour, valid, background, gen)

        # Draw in chunks: small (chunk, K, H, W) intermediates stay in cache, which is ~2x faster.
        S = self.image_size
        images, masks = torch.empty(n, 3, S, S), torch.empty(n, K, S, S, dtype=torch.bool)
        boxes, centres = torch.empty(n, K, 4), torch.empty(n, K, 2)
        for start in range(0, n, 1024):
            part = slice(start, start + 1024)
            out = self._draw(shape[part], size[part], position[part], rgb[part], background[part], gen)
            for whole, piece in zip((images, masks, boxes, centres, size), out):
                whole[part] = piece

        omit = self.colour_mode == "random" and self.random_caption_colour == "none"
        captions, phrases, spans = _captions(template, shape, colour, size, position,
                                             torch.full((n, K), omit))
        return SceneBatch(
            images=images, masks=masks, boxes=boxes, valid=valid,
            shape=shape, colour=colour, size=size, position=position, rgb=rgb,
            centres=centres, captions=captions, phrases=phrases, spans=spans,
        )

    def render(self, objects: list[dict], seed: int = 0) -> Scene:
        """Draw one explicit scene, e.g. for a widget with pickers.

        Each dict has shape, colour, size and position names; colour may also be an RGB tuple
        in [0, 1], which is then labelled (and captioned, see random_caption_colour) with the
        nearest named colour. Named colours are painted exactly, whatever colour_mode says. The
        seed fixes the jitter, background, noise and caption template. Objects are painted in
        list order and need distinct positions.
        """
        if not isinstance(objects, (list, tuple)) or not 1 <= len(objects) <= MAX_OBJECTS:
            raise ValueError(f"objects must be a list of 1..{MAX_OBJECTS} dicts (one per grid cell), "
                             f"got {objects!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        seed = int(seed)
        K = max(self.max_objects, len(objects))
        labels = torch.full((4, 1, K), -1)  # shape, colour, size, position
        rgb = torch.zeros(1, K, 3)
        omit = torch.zeros(1, K, dtype=torch.bool)
        palette = _PALETTE[[COLOUR_NAMES.index(c) for c in self.colours]]
        for k, obj in enumerate(objects):
            for key in ("shape", "colour", "size", "position"):
                if key not in obj:
                    raise ValueError(f"objects[{k}] has no {key!r}; it needs shape, colour, size and position")
            _check_name(f"objects[{k}] shape", obj["shape"], self.shapes)
            _check_name(f"objects[{k}] size", obj["size"], SIZES)
            _check_name(f"objects[{k}] position", obj["position"], POSITIONS)
            labels[0, 0, k] = SHAPES.index(obj["shape"])
            labels[2, 0, k] = SIZES.index(obj["size"])
            labels[3, 0, k] = POSITIONS.index(obj["position"])
            colour = obj["colour"]
            if isinstance(colour, str):
                _check_name(f"objects[{k}] colour", colour, self.colours)
                labels[1, 0, k] = COLOUR_NAMES.index(colour)
                rgb[0, k] = torch.tensor(COLOURS[colour])
            else:
                try:
                    value = torch.tensor([float(v) for v in colour])
                except (TypeError, ValueError):
                    value = torch.zeros(0)
                if value.shape != (3,) or not bool(((value >= 0) & (value <= 1)).all()):
                    raise ValueError(f"objects[{k}] colour={colour!r} must be a name from "
                                     f"{', '.join(self.colours)} or an (r, g, b) tuple in [0, 1]")
                nearest = int(torch.cdist(value[None], palette).argmin())
                labels[1, 0, k] = COLOUR_NAMES.index(self.colours[nearest])
                rgb[0, k] = value
                omit[0, k] = self.random_caption_colour == "none"
        used = labels[3, 0, : len(objects)].tolist()
        if len(set(used)) != len(used):
            raise ValueError(f"position: each object needs its own grid cell, got {[POSITIONS[p] for p in used]}")

        gen = torch.Generator().manual_seed(_stream_seed(seed, "render"))
        shape, colour, size, position = labels
        template = torch.randint(len(CAPTION_TEMPLATES), (1,), generator=gen)
        background = self._backgrounds(1, gen)
        images, masks, boxes, centres, size = self._draw(shape, size, position, rgb, background, gen)
        captions, phrases, spans = _captions(template, shape, colour, size, position, omit)
        batch = SceneBatch(images=images, masks=masks, boxes=boxes, valid=shape >= 0, shape=shape,
                           colour=colour, size=size, position=position, rgb=rgb, centres=centres,
                           captions=captions, phrases=phrases, spans=spans)
        return batch[0]

    def draw_objects(self, shape: torch.Tensor, colour: torch.Tensor, size: torch.Tensor,
                     centres: torch.Tensor, seed: int = 0) -> SceneBatch:
        """Draw n frames of the same K objects at given pixel centres, e.g. a clip of moving objects.

        shape, colour, size: (K,) label indices (into SHAPES, COLOUR_NAMES, SIZES); centres:
        (n, K, 2) xy pixel centres per frame (anywhere, also partly outside the image). Every
        frame shares one background (drawn from ``seed``); the pixel noise differs per frame.
        Objects are painted in slot order, so later ones cover earlier ones where they overlap.
        Positions are labelled -1 (no grid cell) and captions left empty.
        """
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        labels = [torch.as_tensor(t, dtype=torch.long).reshape(-1) for t in (shape, colour, size)]
        K = len(labels[0])
        if K == 0 or any(len(t) != K for t in labels):
            raise ValueError(f"shape, colour and size must be (K,) with the same K >= 1, got "
                             f"{[tuple(t.shape) for t in labels]}")
        for t, names, arg in zip(labels, (SHAPES, COLOUR_NAMES, SIZES), ("shape", "colour", "size")):
            if bool(((t < 0) | (t >= len(names))).any()):
                raise ValueError(f"{arg} indices must lie in 0..{len(names) - 1}, got {t.tolist()}")
        centres = torch.as_tensor(centres, dtype=torch.float32)
        if centres.ndim != 3 or centres.shape[1:] != (K, 2):
            raise ValueError(f"centres must have shape (n, K={K}, 2), got {tuple(centres.shape)}")
        n = centres.shape[0]
        shape, colour, size = (t[None].expand(n, K) for t in labels)
        gen = torch.Generator().manual_seed(_stream_seed(int(seed), "draw_objects"))
        background = self._backgrounds(1, gen).expand(n, 3)
        rgb = _PALETTE[colour]                                              # (n, K, 3)
        cover = self._coverage(shape, size, centres)                        # (n, K, H, W)
        visible, _ = _visible_masks(cover >= 0.5)
        image = background[:, :, None, None]
        for k in range(K):
            image = torch.lerp(image, rgb[:, k, :, None, None], cover[:, k, None])
        if self.noise > 0:
            image = image + self.noise * torch.randn(image.shape, generator=gen)
        image = image.clamp(0, 1)
        position = torch.full((n, K), -1)
        return SceneBatch(
            images=image, masks=visible, boxes=_boxes(visible), valid=torch.ones(n, K, dtype=torch.bool),
            shape=shape.clone(), colour=colour.clone(), size=size.clone(), position=position, rgb=rgb,
            centres=centres, captions=[""] * n, phrases=[[""] * K for _ in range(n)],
            spans=[[(0, 0)] * K for _ in range(n)],
        )

    def full_masks(self, batch: SceneBatch) -> torch.Tensor:
        """(B, K, H, W) bool: each object's pixels as if nothing covered it (the amodal mask).

        Compare with batch.masks (the visible pixels) to see how much of an object is hidden.
        """
        return self._coverage(batch.shape, batch.size, batch.centres) >= 0.5

    # -- internals ----------------------------------------------------------------------------

    def _combos(self, split: str) -> torch.Tensor:
        """(C, 2) int64 rows of (colour index, shape index) that the split may draw."""
        heldout = set(HELDOUT_COMBOS)
        pairs = [(c, s) for c, s in itertools.product(self.colours, self.shapes)
                 if split == "all" or ((c, s) in heldout) == (split == "heldout")]
        if not pairs:
            raise ValueError(f"split={split!r} has no (colour, shape) pairs with colours={self.colours} "
                             f"and shapes={self.shapes}; held-out pairs are {HELDOUT_COMBOS}")
        return torch.tensor([(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in pairs])

    def _backgrounds(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n, 3) background colours: dark (0.05..0.3) or light (0.7..0.95) grey with a faint tint.

        Low saturation keeps them far from every (saturated) palette colour.
        """
        dark = torch.rand(n, 1, generator=gen) < 0.5
        level = torch.where(dark, 0.05, 0.7) + 0.25 * torch.rand(n, 1, generator=gen)
        tint = 0.1 * torch.rand(n, 3, generator=gen) - 0.05
        return (level + tint).clamp(0, 1)

    def _object_colours(self, colour: torch.Tensor, valid: torch.Tensor, background: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """(n, K, 3) RGB to paint, given the colour labels (n, K) and backgrounds (n, 3)."""
        named = _PALETTE[colour.clamp(min=0)]  # (n, K, 3)
        if self.colour_mode == "jitter":
            named = (named + RGB_JITTER * (2 * torch.rand(named.shape, generator=gen) - 1)).clamp(0, 1)
        elif self.colour_mode == "random":
            named = self._random_colours(colour, background, gen)
        return named * valid[..., None]

    def _random_colours(self, colour: torch.Tensor, background: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """(n, K, 3) uniformly random RGB whose nearest named colour is the label, by rejection.

        Drawing the label first and then a colour from its Voronoi cell keeps the label
        distribution (and the split rules) the same as in the named mode. Candidates too close
        to the background are rejected too, so objects stay visible.
        """
        n, K = colour.shape
        allowed = [COLOUR_NAMES.index(c) for c in self.colours]
        palette, allowed = _PALETTE[allowed], torch.tensor(allowed)
        rgb = _PALETTE[colour.clamp(min=0)].reshape(-1, 3)  # fallback, practically never kept
        want = colour.reshape(-1).clamp(min=0)
        bg = background[:, None, :].expand(n, K, 3).reshape(-1, 3)
        todo = torch.arange(n * K)
        for _ in range(MAX_RETRIES):
            cand = torch.rand(len(todo), 32, 3, generator=gen)                     # (m, 32, 3)
            label = allowed[torch.cdist(cand, palette[None].expand(len(todo), -1, -1)).argmin(-1)]
            ok = (label == want[todo, None]) & ((cand - bg[todo, None]).norm(dim=-1) > MIN_CONTRAST)
            found = ok.any(dim=1)
            first = ok.to(torch.uint8).argmax(dim=1)                                # first accepted
            rgb[todo[found]] = cand[found, first[found]]
            todo = todo[~found]
            if len(todo) == 0:
                break
        return rgb.reshape(n, K, 3)

    def _coverage(self, shape: torch.Tensor, size: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(..., H, W) float coverage in [0, 1] of each object drawn alone (zeros for padding).

        shape, size: (...) label indices; centres: (..., 2) xy pixels. One signed-distance
        function per shape type, each applied to all objects of that type at once; the soft
        edge clamp(d + 0.5, 0, 1) is a one-pixel-wide anti-aliasing ramp.
        """
        S = self.image_size
        lead = shape.shape
        shape, size, centres = shape.reshape(-1), size.reshape(-1), centres.reshape(-1, 2)
        radius = torch.tensor([RADIUS[s] * S for s in SIZES])[size.clamp(min=0)]
        grid = torch.arange(S, dtype=torch.float32) + 0.5  # pixel centres
        out = torch.zeros(len(shape), S, S)
        for s, name in enumerate(SHAPES):
            idx = (shape == s).nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            dx = grid[None, None, :] - centres[idx, 0, None, None]  # (m, 1, W)
            dy = grid[None, :, None] - centres[idx, 1, None, None]  # (m, H, 1)
            d = _SIGNED_DISTANCE[name](dx, dy, radius[idx, None, None])
            out[idx] = (d + 0.5).clamp_(0, 1)
        return out.reshape(*lead, S, S)

    def _place(self, position: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(n, K, 2) xy centres: the cell anchor plus uniform jitter of up to JITTER * image_size."""
        xy = _anchor_xy(position, self.image_size)
        jitter = JITTER * self.image_size * (2 * torch.rand(xy.shape, generator=gen) - 1)
        return (xy + jitter) * (position >= 0)[..., None]

    def _draw(self, shape: torch.Tensor, size: torch.Tensor, position: torch.Tensor,
              rgb: torch.Tensor, background: torch.Tensor, gen: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Paint n scenes. Labels (n, K), rgb (n, K, 3), background (n, 3).

        Returns images (n, 3, H, W), visible masks (n, K, H, W), boxes (n, K, 4), centres (n, K, 2)
        and the sizes (n, K), which the last-resort fallback below may change.
        """
        n, K = shape.shape
        valid, size = shape >= 0, size.clone()
        centres = self._place(position, gen)
        cover = self._coverage(shape, size, centres)                # (n, K, H, W)
        visible, hidden_too_much = _visible_masks(cover >= 0.5)     # masks = coverage >= 1/2

        # Overlaps are allowed, but every object must keep half its pixels: re-jitter the scenes
        # that break the rule (about one crowded 24-pixel scene in a thousand; one round fixes most).
        for attempt in range(MAX_RETRIES + 1):
            bad = hidden_too_much.nonzero().squeeze(1)
            if len(bad) == 0:
                break
            if attempt < MAX_RETRIES:
                centres[bad] = self._place(position[bad], gen)
            else:  # last resort: small objects on their anchors never touch each other
                size[bad] = torch.where(valid[bad], SIZES.index("small"), -1)
                centres[bad] = _anchor_xy(position[bad], self.image_size)
            cover[bad] = self._coverage(shape[bad], size[bad], centres[bad])
            visible[bad], hidden_too_much[bad] = _visible_masks(cover[bad] >= 0.5)

        # Paint back to front: each object blends over what is already there.
        image = background[:, :, None, None]                        # (n, 3, 1, 1), broadcasts
        for k in range(K):
            # lerp = image + alpha * (colour - image); coverage is the alpha of a soft edge
            image = torch.lerp(image, rgb[:, k, :, None, None], cover[:, k, None])
        if self.noise > 0:
            image = image.add_(torch.randn(image.shape, generator=gen), alpha=self.noise)
        image = image.clamp_(0, 1)
        return image, visible, _boxes(visible), centres * valid[..., None], size


def _anchor_xy(position: torch.Tensor, image_size: int) -> torch.Tensor:
    """(..., 2) xy anchors of the grid cells, without jitter (zeros for padding)."""
    anchors = _anchors(image_size)
    p = position.clamp(min=0)
    return torch.stack([anchors[p % 3], anchors[p // 3]], dim=-1) * (position >= 0)[..., None]


def _visible_masks(alone: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion: alone (n, K, H, W) bool masks -> visible masks and (n,) "some object < 50% visible".

    Later objects cover earlier ones, so object k keeps the pixels that no object j > k covers.
    """
    if alone.shape[1] == 1:  # a lone object is never hidden
        return alone, torch.zeros(alone.shape[0], dtype=torch.bool)
    visible = torch.empty_like(alone)
    covered = torch.zeros_like(alone[:, 0])
    for k in reversed(range(alone.shape[1])):
        visible[:, k] = alone[:, k] & ~covered
        covered |= alone[:, k]
    area, kept = alone.sum(dim=(2, 3)), visible.sum(dim=(2, 3))
    return visible, (2 * kept < area).any(dim=1)


def _boxes(masks: torch.Tensor) -> torch.Tensor:
    """(n, K, H, W) bool masks -> (n, K, 4) float xyxy boxes (x1, y1 exclusive), zeros if empty."""
    H, W = masks.shape[-2:]
    rows, cols = masks.any(dim=3).to(torch.uint8), masks.any(dim=2).to(torch.uint8)  # (n, K, H|W)
    # argmax returns the first maximum: the first covered row / column from each side.
    y0, x0 = rows.argmax(dim=2), cols.argmax(dim=2)
    y1, x1 = H - rows.flip(2).argmax(dim=2), W - cols.flip(2).argmax(dim=2)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1).float()
    return boxes * masks.any(dim=(2, 3))[..., None]


# Lookup tables for _captions, so that the per-scene loop only concatenates strings.
# _CLAUSE_PARTS[t][p]: the text of template t's clause before and after the phrase at position p.
_SCENE_PARTS = [scene.split("{objects}") for scene, _ in CAPTION_TEMPLATES]
_CLAUSE_PARTS = [[[part.format(where=POSITION_PHRASES[p]) for part in clause.split("{phrase}")]
                  for p in POSITIONS] for _, clause in CAPTION_TEMPLATES]
# _PHRASES[s][c][z]; the extra last colour entry (c = -1) is the phrase without a colour word.
_PHRASES = [[[_phrase(s, c, z) for z in SIZES] for c in (*COLOUR_NAMES, None)] for s in SHAPES]


def _captions(template: torch.Tensor, shape: torch.Tensor, colour: torch.Tensor, size: torch.Tensor,
              position: torch.Tensor, omit_colour: torch.Tensor,
              ) -> tuple[list[str], list[list[str]], list[list[tuple[int, int]]]]:
    """Captions, per-object phrases and their (start, end) character spans.

    template (n,) indexes CAPTION_TEMPLATES; labels and omit_colour are (n, K). Plain Python:
    strings cannot be vectorised, but a few microseconds per scene is cheap enough.
    """
    captions, phrases, spans = [], [], []
    # (numpy's tolist is several times faster than torch's)
    rows = zip(*(t.numpy().tolist() for t in (template, shape, colour, size, position, omit_colour)))
    for t, shp, col, siz, pos, omit in rows:
        text, after_objects = _SCENE_PARTS[t]
        scene_phrases, scene_spans = [], []
        for k in range(len(shp)):
            if shp[k] < 0:  # padding: the real objects come first
                break
            phrase = _PHRASES[shp[k]][-1 if omit[k] else col[k]][siz[k]]
            before, after = _CLAUSE_PARTS[t][pos[k]]  # e.g. "a " and " at the top left"
            if k > 0:
                text += " and "
            text += before
            scene_spans.append((len(text), len(text) + len(phrase)))
            scene_phrases.append(phrase)
            text += phrase + after
        captions.append(text + after_objects)
        phrases.append(scene_phrases)
        spans.append(scene_spans)
    return captions, phrases, spans

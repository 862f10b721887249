"""Zero-shot classification (零样本) as retrieval (检索), and retrieval metrics.

A CLIP model was never trained with class labels. To classify anyway, write each class as text
("a red circle"), embed it with the text tower, and give an image the class whose text embedding
is most similar to the image's: each class description is a query, and the image retrieves the
best-matching one. One wording per class is fragile, so CLIP averages the embeddings of many
wordings (templates) per class: *prompt ensembling*, as in open_clip's
``build_zero_shot_classifier``:

    w_c = normalise( mean_t normalise( text_tower(template_t(class_c)) ) )

Shapes: C = classes, T = templates, D = embedding width, N = images.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..data.shapes import CAPTION_TEMPLATES, COLOUR_NAMES, POSITION_PHRASES, POSITIONS, SHAPES


def build_zero_shot_weights(
    encode_text: Callable[[list[str]], torch.Tensor], classnames: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """Class embeddings by prompt ensembling.

    Args:
        encode_text: list of N strings -> (N, D) text features (any length).
        classnames: C class names or descriptions, e.g. "a red circle".
        templates: T format strings with one ``{}`` for the class name, e.g. "a picture of {}".

    Returns:
        (D, C): column c is the unit-length mean of class c's unit-length template embeddings, so
        ``image_features @ weights`` gives (N, C) cosine similarities.
    """
    if not classnames or not templates:
        raise ValueError(f"need at least one class name and one template, got {len(classnames)} and {len(templates)}")
    for t in templates:
        if t.count("{}") != 1:
            raise ValueError(f"each template needs exactly one '{{}}' for the class name, got {t!r}")
    texts = [t.format(c) for c in classnames for t in templates]             # class-major: C * T
    feats = F.normalize(encode_text(texts), dim=-1)                          # (C*T, D)
    feats = feats.reshape(len(classnames), len(templates), -1)               # (C, T, D)
    # Normalise each template first so every wording gets the same vote, then renormalise the
    # mean, which is shorter than 1 when the wordings disagree.
    return F.normalize(feats.mean(dim=1), dim=-1).T                          # (D, C)


@torch.no_grad()
def zero_shot_classifier(model, classnames: Sequence[str], templates: Sequence[str], tokenizer=None) -> torch.Tensor:
    """(D, C) zero-shot weights of a :class:`mmcourse.clip.CLIP`; see :func:`build_zero_shot_weights`.

    ``tokenizer`` turns a list of strings into (N, L) ids; None means ShapesWorld's
    :class:`WordTokenizer` with the model's context length.
    """
    if tokenizer is None:
        from .tokenizer import WordTokenizer

        tokenizer = WordTokenizer(context_length=model.cfg.text.context_length)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    weights = build_zero_shot_weights(lambda texts: model.encode_text(tokenizer(texts).to(device)), classnames, templates)
    model.train(was_training)
    return weights


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, E) unit-length image features, encoded ``batch_size`` images at a time."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (N, 3, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    model.eval()
    return torch.cat([model.encode_image(images[i : i + batch_size], normalize=True)
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def zero_shot_predict(model, images: torch.Tensor, weights: torch.Tensor, batch_size: int = 512,
                      image_features: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) predicted class indices: the most similar column of ``weights`` (D, C) for each image.

    ``image_features``: the images' features from :func:`encode_images`, when several sets of
    weights are scored on the same images (then ``images`` is not encoded again).
    """
    feats = encode_images(model, images, batch_size) if image_features is None else image_features
    return (feats @ weights.to(feats.device)).argmax(dim=1)


@torch.no_grad()
def zero_shot_probs(model, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, C) class probabilities: softmax over the classes of the cosine similarities times the
    model's learned scale exp(logit_scale), as CLIP's zero-shot evaluation computes them."""
    model.eval()
    feats = model.encode_image(images, normalize=True)
    return (model.logit_scale.exp() * feats @ weights.to(feats.device)).softmax(dim=1)


def short_name(classname: str) -> str:
    """A class description without its article, for plot labels: "an orange cross" -> "orange cross"."""
    for article in ("a ", "an "):
        if classname.startswith(article):
            return classname[len(article):]
    return classname


def recall_hits(similarity: torch.Tensor, relevant: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(Q,) bool: whether each query has at least one relevant item among its top-k.

    Args:
        similarity: (Q, N) query-by-item scores.
        relevant: (Q, N) bool, which items count as a correct answer for each query.
        k: how many of the best-scoring items a query may look at.
    """
    if similarity.shape != relevant.shape or similarity.ndim != 2:
        raise ValueError(f"similarity and relevant must both be (Q, N), got {tuple(similarity.shape)} "
                         f"and {tuple(relevant.shape)}")
    if not isinstance(k, int) or not 1 <= k <= similarity.shape[1]:
        raise ValueError(f"k must be an int in 1..{similarity.shape[1]}, got {k!r}")
    top = similarity.topk(k, dim=1).indices                                  # (Q, k)
    return relevant.gather(1, top).any(dim=1)


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, k: int = 1) -> float:
    """Fraction of queries with at least one relevant item among their top-k (see :func:`recall_hits`)."""
    return float(recall_hits(similarity, relevant, k).float().mean())


# ---------------------------------------------------------------------------------------------
# ShapesWorld's classes and templates
# ---------------------------------------------------------------------------------------------


def shapes_classnames() -> list[str]:
    """The 30 colour x shape classes as descriptions, colour-major: "a red circle", "a red square",
    ..., "an orange cross" (with their article, so that templates need none)."""
    return [("an " if c[0] in "aeiou" else "a ") + f"{c} {s}" for c, s in itertools.product(COLOUR_NAMES, SHAPES)]


def shapes_class_index(colour: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Class index in :func:`shapes_classnames` from colour and shape label indices (any shape)."""
    return colour * len(SHAPES) + shape


TEMPLATE_SETS = ("bare", "one template", "scene", "ensemble")


def shapes_templates(kind: str = "ensemble") -> list[str]:
    """Prompt templates for the ShapesWorld classes ("{}" = "a red circle").

    - "bare": the class description alone, ``{}``;
    - "one template": ``a picture of {}``;
    - "scene": the caption openings of ShapesWorld: ``{}``, ``there is {}``, ``a picture of {}``,
      ``an image with {}``;
    - "ensemble": every caption template, once without a position and once with each of the
      nine positions (49 prompts), so that the average forgets the position.
    """
    if kind == "bare":
        return ["{}"]
    if kind == "one template":
        return ["a picture of {}"]
    if kind not in TEMPLATE_SETS:
        raise ValueError(f"kind must be one of {TEMPLATE_SETS}, got {kind!r}")
    out: list[str] = []
    for scene, clause in CAPTION_TEMPLATES:
        for pos in (None, *POSITIONS) if kind == "ensemble" else (None,):
            if pos is None:  # "{where} there is a {phrase}" without a place reads "there is ..."
                c = "there is {phrase}" if clause.startswith("{where}") else "{phrase}"
            else:
                c = clause.replace("a {phrase}", "{phrase}")  # the class brings its own article
            text = scene.format(objects=c.format(phrase="{}", where=POSITION_PHRASES.get(pos, "")))
            if text not in out:
                out.append(text)
    return out

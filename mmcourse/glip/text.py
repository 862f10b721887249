"""GLIP's text side, two ways: one feature per token, or CLIP's pooled embedding of each phrase.

- ``"tokens"`` (GLIP's choice): a text transformer reads the whole prompt and every token keeps
  its own contextual feature (GLIP: BERT's last hidden states). The regions are aligned with
  these token features. The course's tower (notebook 04's architecture) is random and frozen:
  trained along with the detector it collapsed, and CLIP's trained tower gives per-token features
  that carry little, because CLIP's loss only ever looked at the pooled end-of-text embedding.

- ``"phrases"`` (OWL-ViT's choice, Minderer et al., 2022): the prompt is cut into its phrases
  (:func:`.prompts.parse_prompt`), each phrase is written as a sentence and encoded on its own by
  a frozen, trained CLIP text tower, and its *pooled* embedding (the one CLIP's contrastive loss
  shaped) becomes the feature of every token of that phrase. Words outside any phrase (the glue
  of a caption: "at", "the", "there") are encoded alone. The rest of GLIP is unchanged: fusion
  still reads these features, the alignment still has one column per token, and a phrase's score
  is still the mean over its tokens, which now all carry the same vector.

Shapes: B prompts, M tokens, U units (phrases and loose words) of one prompt, E = CLIP's
embedding width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.text_encoder import TextConfig, TextTransformer
from ..clip.tokenizer import WordTokenizer
from ..clip.zero_shot import shapes_templates
from ..data.shapes import SHAPES
from .prompts import parse_prompt
from .targets import span_to_tokens

TEXT_ENCODERS = ("tokens", "phrases")
CLIP_CONTEXT = 16  # the course CLIP's context length (notebook 04)
_SHAPES = set(SHAPES)  # a unit with a shape word is a phrase


def with_article(phrase: str) -> str:
    """ "red circle" -> "a red circle", "orange circle" -> "an orange circle" (CLIP's captions)."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def prompt_units(tokenizer: WordTokenizer, prompts: list[str], length: int) -> torch.Tensor:
    """(B, length) int64: the unit each token belongs to, -1 for <start>, <end> and padding.

    Units 0..P-1 are the prompt's phrases (:func:`.prompts.parse_prompt`) in order; each word
    outside every phrase is a unit of its own, numbered after them.
    """
    out = torch.full((len(prompts), length), -1, dtype=torch.long)
    for i, prompt in enumerate(prompts):
        _, spans = parse_prompt(prompt, tokenizer)
        n_words = len(tokenizer.split(prompt))
        if n_words + 2 > length:
            raise ValueError(f"prompts[{i}] has {n_words} words, more than the {length - 2} that fit")
        out[i, 1 : n_words + 1] = torch.arange(len(spans), len(spans) + n_words)  # loose words first ...
        for k, span in enumerate(spans):                                       # ... then the phrases
            out[i, span_to_tokens(prompt, span)] = k
    return out


class PhraseEncoder(nn.Module):
    """Token ids (B, M) and units (B, M) -> (B, M, E): each token carries the unit-length pooled CLIP
    embedding of its unit (zeros at the special tokens).

    A phrase is embedded by prompt ensembling over notebook 04's templates ("a picture of a red
    circle", "there is a red circle on the left", ...), as CLIP's zero-shot classifier does, so the
    vector is the one CLIP's images of that phrase point to. A loose word is embedded alone.

    Args:
        text_cfg: the CLIP text tower's config (its vocabulary must equal the prompt tokenizer's).
        embed_dim: E, the width of CLIP's joint embedding space.
    """

    def __init__(self, text_cfg: TextConfig, embed_dim: int) -> None:
        super().__init__()
        self.tower = TextTransformer(text_cfg, embed_dim)
        self.clip_tokenizer = WordTokenizer(context_length=text_cfg.context_length)
        self.templates = shapes_templates("ensemble")
        self._cache: dict[str, torch.Tensor] = {}
        self._register_load_state_dict_pre_hook(self._clear_cache)

    @torch.no_grad()
    def embed(self, units: list[str]) -> torch.Tensor:
        """(U,) unit texts -> (U, E) unit-length embeddings. A unit with a shape word is a phrase
        (template ensemble); any other unit is a loose word (encoded alone). While the tower is
        frozen the embeddings are cached (loading weights empties the cache)."""
        frozen = not any(p.requires_grad for p in self.tower.parameters())
        todo = [u for u in dict.fromkeys(units) if not (frozen and u in self._cache)]
        if todo:
            texts, owner = [], []
            for k, u in enumerate(todo):
                words = u.split()
                forms = [t.format(with_article(u)) for t in self.templates] if set(words) & _SHAPES else [u]
                texts += forms
                owner += [k] * len(forms)
            e = F.normalize(self.tower(self.clip_tokenizer(texts)), dim=-1)            # (T_all, E)
            owner = torch.tensor(owner)
            mean = torch.zeros(len(todo), e.shape[1]).index_add_(0, owner, e)         # sum per unit
            new = F.normalize(mean, dim=-1)
            fresh = dict(zip(todo, new))
            if frozen:
                self._cache.update(fresh)
        else:
            fresh = {}
        return torch.stack([fresh[u] if u in fresh else self._cache[u] for u in units])

    def _clear_cache(self, *args, **kwargs) -> None:
        self._cache.clear()

    def forward(self, tokens: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        if units is None or units.shape != tokens.shape:
            raise ValueError(f"units must be (B, M) like tokens {tuple(tokens.shape)}, got "
                             f"{None if units is None else tuple(units.shape)} (see prompt_units)")
        itos = self.clip_tokenizer.itos
        texts: dict[str, int] = {}
        index = torch.full(tokens.shape, -1, dtype=torch.long)
        for b in range(tokens.shape[0]):
            for u in units[b].unique().tolist():
                if u < 0:
                    continue
                where = units[b] == u
                text = " ".join(itos[i] for i in tokens[b][where].tolist())
                index[b][where] = texts.setdefault(text, len(texts))
        table = self.embed(list(texts)) if texts else torch.zeros(0, self.tower.text_projection.shape[1])
        feats = torch.cat([table, table.new_zeros(1, table.shape[1])])[index]   # -1 -> the zero row
        return feats                                                             # (B, M, E)

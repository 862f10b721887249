"""BLIP: one image encoder, one text transformer in three modes, three heads, three losses.

Recipe (Li et al., 2022, "BLIP: Bootstrapping Language-Image Pre-training"; models/blip_pretrain.py):

1. ``visual``: the course's ViT (:mod:`mmcourse.vit`, no classifier head). Its class token,
   projected by ``vision_proj``, is the image's ITC feature; all its tokens (B, T, Dv) are the
   keys and values of every cross-attention.
2. ``text_encoder`` (:class:`.text.TextTransformer`): the unimodal encoder for ITC (``[CLS]`` ->
   ``text_proj``) and, with the image tokens, the image-grounded encoder for ITM (``[ENC]`` ->
   ``itm_head``, 2 classes).
3. ``text_decoder``: the same transformer with causal self-attention for LM (``lm_head``). With
   ``share=True`` it takes everything but its self-attention from the encoder.
4. ``temp``: ITC's temperature, a parameter kept in [0.001, 0.5].

No momentum encoder and no feature queue (BLIP's ITC distillation); a learner's batch suffices.

``encoder=False`` or ``decoder=False`` builds only one side, as BLIP's ``blip_decoder.py``
(captioner) and ``blip_retrieval.py`` (ITC + ITM) do; the transformers loaders use them.

Shapes: B = batch, S = image side, T = image tokens, L = text length, E = ``embed_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..vit.model import ViTConfig, VisionTransformer, count_parameters  # counts a shared tensor once
from .losses import itc_loss, itm_labels, itm_loss, lm_loss
from .negatives import sample_hard_negatives
from .text import TextConfig, TextTransformer, LMHead, tie_decoder_to_encoder

TEMP_INIT, TEMP_MIN, TEMP_MAX = 0.07, 0.001, 0.5
NEGATIVES = ("hard", "random")


def _default_vision() -> ViTConfig:
    return ViTConfig(img_size=32, patch_size=8, num_classes=0, embed_dim=64, depth=3, num_heads=4)


@dataclass
class BlipConfig:
    """Hyper-parameters of :class:`BLIP`."""

    vision: ViTConfig = field(default_factory=_default_vision)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 64             # ITC's joint width (transformers: image_text_hidden_size)
    share: bool = True              # decoder shares all but self-attention with the encoder
    encoder: bool = True            # build the text encoder, ITC and ITM heads
    decoder: bool = True            # build the text decoder and LM head
    tie_word_embeddings: bool = True  # LM head's output matrix = the word embeddings (BERT)
    label_smoothing: float = 0.1    # BLIP's LM loss; transformers defaults to 0.0

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = ViTConfig(**self.vision)
        if isinstance(self.text, dict):
            self.text = TextConfig(**self.text)
        if self.vision.num_classes != 0:
            raise ValueError(f"vision.num_classes must be 0 (BLIP reads the ViT's tokens), got {self.vision.num_classes}")
        if self.text.image_width != self.vision.embed_dim:
            raise ValueError(f"text.image_width ({self.text.image_width}) must equal vision.embed_dim "
                             f"({self.vision.embed_dim}): cross-attention reads the ViT's tokens")
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {self.embed_dim!r}")
        if not (self.encoder or self.decoder):
            raise ValueError("at least one of encoder and decoder must be True")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict:
        return {"vision": self.vision.to_dict(), "text": self.text.to_dict(), "embed_dim": self.embed_dim,
                "share": self.share, "encoder": self.encoder, "decoder": self.decoder,
                "tie_word_embeddings": self.tie_word_embeddings, "label_smoothing": self.label_smoothing}

    @classmethod
    def from_dict(cls, d: dict) -> BlipConfig:
        return cls(**d)


class BLIP(nn.Module):
    """The multimodal mixture of encoder-decoder with its ITC, ITM and LM heads.

    Images (B, 3, S, S) and token ids (B, L) from :class:`mmcourse.blip.BlipTokenizer` (``[CLS]``
    first; the model swaps in ``[ENC]`` / ``[DEC]``). ``forward`` returns the three losses.
    """

    def __init__(self, cfg: BlipConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or BlipConfig()
        self.cfg = cfg
        D, Dv, E = cfg.text.width, cfg.vision.embed_dim, cfg.embed_dim
        self.visual = VisionTransformer(cfg.vision)
        if cfg.encoder:
            self.text_encoder = TextTransformer(cfg.text)
            self.vision_proj = nn.Linear(Dv, E)
            self.text_proj = nn.Linear(D, E)
            self.itm_head = nn.Linear(D, 2)
            self.temp = nn.Parameter(torch.tensor(TEMP_INIT))
        if cfg.decoder:
            self.text_decoder = TextTransformer(cfg.text)
            if cfg.share and cfg.encoder:
                tie_decoder_to_encoder(self.text_decoder, self.text_encoder)
            self.lm_head = LMHead(cfg.text)
            if cfg.tie_word_embeddings:
                self.lm_head.decoder.weight = self.text_decoder.embeddings.word_embeddings.weight

    # ----------------------------------------------------------------------------------- inputs
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> the ViT's normalised tokens (B, T, Dv), class token first."""
        self.check_images(images)
        tokens = self.visual.forward_features(images.to(self.visual.pos_embed.dtype))  # float16/64 -> the weights' dtype
        if not bool(torch.isfinite(tokens).all()):
            raise ValueError(f"images: the image encoder overflowed on values up to {float(images.abs().max()):.3g} "
                             "(ShapesWorld's images lie in [0, 1]; normalised photos within a few units of 0)")
        return tokens

    def check_images(self, images: torch.Tensor, argument: str = "images") -> None:
        """Raise a ValueError naming ``argument`` unless ``images`` is a float tensor (B >= 1, 3, S, S)
        of finite values (ShapesWorld's images lie in [0, 1]; a uint8 image is refused, not rescaled;
        any float dtype is accepted and cast to the weights' dtype)."""
        v = self.cfg.vision
        want = f"(B, {v.in_chans}, {v.img_size}, {v.img_size})"
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"{argument} must be a torch.Tensor of shape {want}, got {type(images).__name__}")
        if images.ndim != 4 or tuple(images.shape[1:]) != (v.in_chans, v.img_size, v.img_size) or len(images) == 0:
            raise ValueError(f"{argument} must have shape {want} with B >= 1, got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"{argument} must be a float tensor (values in [0, 1] for ShapesWorld), got {images.dtype}; "
                             "convert uint8 pixels with images.float() / 255")
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{argument} must be finite: it holds NaN or infinite values")

    # ------------------------------------------------------------------------------ checkpoints
    def tied_keys(self) -> dict[str, str]:
        """State-dict keys that alias an earlier key's tensor (sharing and tied embeddings): {alias: original}."""
        seen: dict[int, str] = {}
        aliases = {}
        for k, v in self.state_dict(keep_vars=True).items():
            if id(v) in seen:
                aliases[k] = seen[id(v)]
            else:
                seen[id(v)] = k
        return aliases

    def unique_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without aliases: what a safetensors file can hold (it refuses shared tensors)."""
        tied = self.tied_keys()
        return {k: v for k, v in self.state_dict().items() if k not in tied}

    def load_unique_state_dict(self, sd: dict[str, torch.Tensor]) -> BLIP:
        """Load a :meth:`unique_state_dict`; every other key must be present, none extra."""
        tied = self.tied_keys()
        result = self.load_state_dict(sd, strict=False)
        missing = sorted(set(result.missing_keys) - set(tied))
        if missing or result.unexpected_keys:
            raise ValueError(f"state dict does not fit this BLIP: missing {missing[:6]}, "
                             f"unexpected {sorted(result.unexpected_keys)[:6]}")
        return self.eval()

    def _first_token(self, tokens: torch.Tensor, token_id: int) -> torch.Tensor:
        """A copy of ``tokens`` with token 0 replaced (``[ENC]`` for ITM, ``[DEC]`` for LM)."""
        tokens = tokens.clone()
        tokens[:, 0] = token_id
        return tokens

    # -------------------------------------------------------------------------------------- ITC
    def image_features(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, Dv) -> unit (B, E): the projected class token."""
        return F.normalize(self.vision_proj(image_tokens[:, 0]), dim=-1)

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) -> unit (B, E): the unimodal encoder's [CLS] (put at token 0), projected."""
        h = self.text_encoder(self._first_token(tokens, self.cfg.text.cls_token_id))  # (B, L, D), no image
        return F.normalize(self.text_proj(h[:, 0]), dim=-1)

    def itc_similarity(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cosine similarities (B_img, B_txt), no temperature (transformers' ``use_itm_head=False``)."""
        return self.image_features(self.encode_image(images)) @ self.text_features(tokens).T

    @torch.no_grad()
    def clamp_temp(self) -> None:
        """Keep ``temp`` in [0.001, 0.5], as BLIP does before every step."""
        self.temp.clamp_(TEMP_MIN, TEMP_MAX)

    # -------------------------------------------------------------------------------------- ITM
    def itm_logits(self, image_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, Dv), (B, L) -> (B, 2) logits [no match, match] read at the [ENC] token."""
        h = self.text_encoder(self._first_token(tokens, self.cfg.text.enc_token_id), image_tokens)  # (B, L, D)
        return self.itm_head(h[:, 0])

    def match_probability(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) ITM's probability that image i and text i match."""
        return self.itm_logits(self.encode_image(images), tokens).softmax(dim=-1)[:, 1]

    # --------------------------------------------------------------------------------------- LM
    def lm_logits(self, image_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, Dv), (B, L) -> (B, L, V): at position t, the scores of token t+1 ([DEC] first)."""
        h = self.text_decoder(self._first_token(tokens, self.cfg.text.dec_token_id), image_tokens, causal=True)
        return self.lm_head(h)

    # ----------------------------------------------------------------------------------- losses
    def forward(self, images: torch.Tensor, tokens: torch.Tensor, content_ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None, negatives: str = "hard") -> dict[str, torch.Tensor]:
        """The three losses of one step: ``{"itc", "itm", "lm"}`` (only those the model has).

        ``content_ids`` (B,): equal for pairs with identical content (e.g. caption ids); they are
        masked in ITC and never drawn as ITM negatives. ``negatives``: "hard" (BLIP: drawn from
        the softmax of the ITC similarities) or "random" (uniform over the allowed pairs).
        """
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        image_tokens = self.encode_image(images)                                    # (B, T, Dv)
        losses = {}
        if self.cfg.encoder:
            self.clamp_temp()
            img, txt = self.image_features(image_tokens), self.text_features(tokens)  # (B, E) each
            losses["itc"] = itc_loss(img, txt, self.temp, content_ids)
            sim = img @ txt.T / self.temp if negatives == "hard" else torch.zeros(len(img), len(txt))  # zeros: uniform
            pair_tokens, pair_images, labels = self.itm_batch(image_tokens, tokens, sim, content_ids, generator)
            losses["itm"] = itm_loss(self.itm_logits(pair_images, pair_tokens), labels)
        if self.cfg.decoder:
            pad = self.cfg.text.pad_token_id
            losses["lm"] = lm_loss(self.lm_logits(image_tokens, tokens), tokens, pad, self.cfg.label_smoothing)
        return losses

    def itm_batch(self, image_tokens: torch.Tensor, tokens: torch.Tensor, sim_i2t: torch.Tensor,
                  content_ids: torch.Tensor | None = None, generator: torch.Generator | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ITM's pairs: B positives, then each text with a hard-negative image, then each image
        with a hard-negative text. Returns (tokens (N, L), image tokens (N, T, Dv), labels (N,))."""
        neg_img, neg_txt = sample_hard_negatives(sim_i2t, content_ids, generator)   # (B,), (B,); -1 = none
        B = len(tokens)
        rows = torch.arange(B, device=tokens.device)
        t_ok, i_ok = neg_img >= 0, neg_txt >= 0
        pair_tokens = torch.cat([tokens, tokens[rows[t_ok]], tokens[neg_txt[i_ok]]])
        pair_images = torch.cat([image_tokens, image_tokens[neg_img[t_ok]], image_tokens[rows[i_ok]]])
        labels = itm_labels(B, int(t_ok.sum() + i_ok.sum()), tokens.device)
        return pair_tokens, pair_images, labels


def sharing_counts(cfg: BlipConfig | None = None) -> dict[str, int]:
    """Parameters of BLIP built with and without encoder-decoder sharing (same config otherwise).

    Returns ``{"shared", "unshared", "saved", "decoder_own"}``: the two totals, their difference,
    and the decoder's own parameters when shared (its self-attention and LayerNorm per layer).
    """
    cfg = cfg or BlipConfig()
    counts = {}
    with torch.random.fork_rng(devices=[]):
        for share in (True, False):
            c = BlipConfig.from_dict({**cfg.to_dict(), "share": share, "encoder": True, "decoder": True})
            counts["shared" if share else "unshared"] = count_parameters(BLIP(c))
        own = BLIP(BlipConfig.from_dict({**cfg.to_dict(), "share": True, "encoder": True, "decoder": True}))
    counts["saved"] = counts["unshared"] - counts["shared"]
    counts["decoder_own"] = sum(p.numel() for layer in own.text_decoder.layers
                                for p in (*layer.self_attn.parameters(), *layer.norm1.parameters()))
    return counts

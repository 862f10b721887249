"""BLIP's text transformer: one BERT, three jobs (the multimodal mixture of encoder-decoder, MED).

BERT's layer is **post-norm** (``x = norm(x + sublayer(x))``, unlike the ViT's pre-norm blocks)
and BLIP puts a cross-attention between its self-attention and its MLP:

    x = norm1(x + self_attn(x, mask))            mask: bidirectional (encoder) or causal (decoder)
    x = norm2(x + cross_attn(x, image_tokens))   skipped in the unimodal (ITC) mode
    x = norm3(x + mlp(x))

The three modes of :class:`TextTransformer` (names as in BLIP's ``med.py``):

=========== ================== ==================== ================================
mode        self-attention     cross-attention      read out
=========== ================== ==================== ================================
``text``    bidirectional      none                 [CLS] -> ``text_proj`` (ITC)
``encoder`` bidirectional      every layer          [ENC] -> ``itm_head`` (ITM)
``decoder`` causal             every layer          every token -> ``lm_head`` (LM)
=========== ================== ==================== ================================

Shapes: B = batch, L = text length, T = image tokens, D = text width, Dv = image width, H = heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.tokenizer import shapes_vocabulary
from ..nn import Mlp, activation, attention

MODES = ("text", "encoder", "decoder")
N_SPECIAL = 5  # [PAD] + [CLS], [SEP], [ENC], [DEC]: the layout of mmcourse.blip.BlipTokenizer


@dataclass
class TextConfig:
    """Hyper-parameters of :class:`TextTransformer` (transformers' ``BlipTextConfig`` names in comments).

    Token ids left at None follow :class:`mmcourse.blip.BlipTokenizer`'s layout: ``[PAD]`` = 0 and
    the last four ids ``[CLS]``, ``[SEP]``, ``[ENC]``, ``[DEC]``.
    """

    vocab_size: int = len(shapes_vocabulary()) + N_SPECIAL
    context_length: int = 16        # max_position_embeddings
    width: int = 64                 # hidden_size
    layers: int = 2                 # num_hidden_layers
    heads: int = 4                  # num_attention_heads
    mlp_dim: int = 256              # intermediate_size
    image_width: int = 64           # encoder_hidden_size: the ViT's width, keys/values of cross-attention
    act: str = "gelu"               # hidden_act
    norm_eps: float = 1e-12         # layer_norm_eps (BERT's value)
    pad_token_id: int = 0
    cls_token_id: int | None = None
    sep_token_id: int | None = None
    enc_token_id: int | None = None
    dec_token_id: int | None = None  # transformers: bos_token_id

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "width", "layers", "heads", "mlp_dim", "image_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        activation(self.act)
        V = self.vocab_size
        for name, default in (("cls_token_id", V - 4), ("sep_token_id", V - 3), ("enc_token_id", V - 2),
                              ("dec_token_id", V - 1)):
            if getattr(self, name) is None:
                setattr(self, name, default)
        names = ("pad_token_id", "cls_token_id", "sep_token_id", "enc_token_id", "dec_token_id")
        for name in names:
            if not 0 <= getattr(self, name) < V:
                raise ValueError(f"{name} must be in 0..vocab_size-1 = 0..{V - 1}, got {getattr(self, name)}")
        ids = {name: getattr(self, name) for name in names}
        if len(set(ids.values())) != len(ids):
            raise ValueError(f"the special token ids must be distinct, got {ids}")

    def to_dict(self) -> dict:
        return asdict(self)


def attention_mask(tokens: torch.Tensor, pad_token_id: int, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) bool, True where query t may attend key s: s is not padding, and s <= t if causal.

    The notebook draws these: bidirectional for both encoder modes, lower-triangular for the decoder.
    """
    B, L = tokens.shape
    keep = (tokens != pad_token_id)[:, None, None, :]                       # (B, 1, 1, L): keys
    if causal:
        keep = keep & torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
    return keep.expand(B, 1, L, L)


def mode_mask(tokens: torch.Tensor, num_image_tokens: int, pad_token_id: int, mode: str) -> torch.Tensor:
    """(B, L, L + T) bool: which keys each text query reads in one ``mode`` of :data:`MODES`.

    The first L columns are the text keys (self-attention: padding never, later tokens not in
    the decoder), the last T the image tokens (cross-attention: all of them in "encoder" and
    "decoder", none in "text"). The notebook draws the three.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(num_image_tokens, int) or num_image_tokens < 1:
        raise ValueError(f"num_image_tokens must be a positive int, got {num_image_tokens!r}")
    self_mask = attention_mask(tokens, pad_token_id, causal=mode == "decoder")[:, 0]   # (B, L, L)
    B, L = tokens.shape
    cross = torch.full((B, L, num_image_tokens), mode != "text", dtype=torch.bool, device=tokens.device)
    return torch.cat([self_mask, cross], dim=2)


class MultiHeadAttention(nn.Module):
    """Queries from ``x`` (B, L, D); keys and values from ``context`` (B, S, Dc), or from ``x`` itself.

    Separate q/k/v projections (segment-anything's names): for cross-attention, keys and values
    read the image's width Dc while queries read the text's width D.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(context_dim or dim, dim)
        self.v_proj = nn.Linear(context_dim or dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                return_attn: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        context = x if context is None else context
        B, L, D = x.shape
        H = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, H, N, D/H)
            return t.reshape(B, t.shape[1], H, D // H).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(context)), heads(self.v_proj(context))
        if return_attn:
            out, attn = attention(q, k, v, mask)                             # (B, H, L, hd), (B, H, L, S)
        else:
            out, attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
        out = self.out_proj(out.transpose(1, 2).reshape(B, L, D))           # (B, L, D)
        return (out, attn) if return_attn else out


class TextLayer(nn.Module):
    """One post-norm BERT layer with cross-attention: (B, L, D) -> (B, L, D).

    ``self_attn`` and ``norm1`` belong to this layer alone; with parameter sharing the decoder's
    layer takes ``cross_attn``, ``norm2``, ``mlp`` and ``norm3`` from the encoder's
    (:func:`tie_decoder_to_encoder`).
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        D = cfg.width
        self.self_attn = MultiHeadAttention(D, cfg.heads)
        self.norm1 = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.cross_attn = MultiHeadAttention(D, cfg.heads, context_dim=cfg.image_width)
        self.norm2 = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.mlp = Mlp(D, cfg.mlp_dim, act=activation(cfg.act))
        self.norm3 = nn.LayerNorm(D, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x, mask=mask))
        if image_tokens is not None:                                         # (B, T, Dv): every token
            x = self.norm2(x + self.cross_attn(x, image_tokens))
        return self.norm3(x + self.mlp(x))


class TextEmbeddings(nn.Module):
    """BERT's input: word + learned position embedding, then LayerNorm. (B, L) ids -> (B, L, D)."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.context_length, cfg.width)
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)     # (L,): 0, 1, ..., L-1
        return self.norm(self.word_embeddings(tokens) + self.position_embeddings(positions))


class TextTransformer(nn.Module):
    """Token ids (B, L) [+ image tokens (B, T, Dv)] -> hidden states (B, L, D).

    ``forward(tokens, image_tokens=None, causal=False)``: the unimodal encoder is
    ``image_tokens=None``; the image-grounded encoder passes image tokens; the decoder passes
    image tokens and ``causal=True`` (see the module docstring).
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = TextEmbeddings(cfg)
        self.layers = nn.ModuleList(TextLayer(cfg) for _ in range(cfg.layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings N(0, 0.02) with the [PAD] row 0 (BERT's); linear layers keep PyTorch's default.

        BERT draws every weight from N(0, 0.02), and BLIP starts from BERT's trained weights. A
        small model trained from scratch with that init is stuck: each attention and MLP output
        is tiny next to the post-norm residual stream, so the [ENC] token carries almost the same
        vector for every pair; ITM's cheapest move is a constant 50/50 answer, its head shrinks and
        the gradients die. Measured (one seed, 16 fixed ShapesWorld pairs + 16 mismatched, AdamW
        1e-3): ITM loss still 0.693 = ln 2 after 150 steps with BERT's init; 0.34 with PyTorch's
        default (std about 0.07 at width 64). :class:`mmcourse.vit.VisionTransformer` keeps
        PyTorch's default for a similar reason.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        with torch.no_grad():
            self.embeddings.word_embeddings.weight[self.cfg.pad_token_id].zero_()

    def check_tokens(self, tokens: torch.Tensor, argument: str = "tokens") -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"{argument} must be integer ids of shape (B, L), got {shape}")
        L = tokens.shape[1]
        if L > self.cfg.context_length:
            raise ValueError(f"{argument} have length {L}, more than the context length {self.cfg.context_length} "
                             "(the number of position embeddings)")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.vocab_size):
            raise ValueError(f"{argument} must be ids in 0..{self.cfg.vocab_size - 1}, got "
                             f"{int(tokens.min())}..{int(tokens.max())}")

    def forward(self, tokens: torch.Tensor, image_tokens: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        self.check_tokens(tokens)
        x = self.embeddings(tokens)                                          # (B, L, D)
        mask = attention_mask(tokens, self.cfg.pad_token_id, causal)          # (B, 1, L, L)
        for layer in self.layers:
            x = layer(x, mask, image_tokens)
        return x


SHARED = ("cross_attn", "norm2", "mlp", "norm3")  # what BLIP's decoder takes from the encoder


def tie_decoder_to_encoder(decoder: TextTransformer, encoder: TextTransformer) -> None:
    """Make ``decoder`` use the encoder's modules for everything except self-attention.

    BLIP's ``tie_encoder_decoder_weights(..., skip_key='/attention')``: the embeddings, every
    cross-attention, MLP and their LayerNorms are the same tensors; only ``self_attn`` and its
    ``norm1`` stay the decoder's own (causal and bidirectional attention want different weights).
    """
    decoder.embeddings = encoder.embeddings
    for dec, enc in zip(decoder.layers, encoder.layers, strict=True):
        for name in SHARED:
            setattr(dec, name, getattr(enc, name))


class LMHead(nn.Module):
    """BERT's prediction head: dense -> act -> LayerNorm -> ``decoder`` onto the vocabulary.

    (B, L, D) -> (B, L, V). ``decoder.weight`` is tied to the word embeddings by :class:`mmcourse.blip.BLIP`.
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.width, cfg.width)
        self.act = activation(cfg.act)()
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.decoder = nn.Linear(cfg.width, cfg.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))

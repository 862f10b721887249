"""Writing captions with the image-grounded decoder: greedy, beam search and nucleus sampling.

Every method starts from ``[DEC]`` and adds one token at a time, reading the decoder's scores
for the next token at the last position; a caption ends at ``[SEP]`` or at ``max_length``
tokens (``[DEC]`` included, transformers' convention). The whole prefix is re-run at each step
(no key-value cache): short captions and small models make that the clearest choice.

- **greedy**: always the most likely token. Deterministic, but one early mistake is final.
- **beam search**: keep the ``num_beams`` most likely prefixes; a finished caption's score is
  its total log-probability divided by its length (``length_penalty=1``); transformers' rules.
- **nucleus (top-p) sampling** (Holtzman et al., 2020): sample from the smallest set of tokens
  whose probabilities add up to ``top_p``. BLIP's CapFilt uses it for *diverse* captions.

Output: (B, n) int64 ids, ``[DEC]`` first, ``[PAD]`` after ``[SEP]``; n <= ``max_length``.
Shapes: B = images, K = beams, T = image tokens, V = vocabulary.
"""

from __future__ import annotations

import torch

METHODS = ("greedy", "beam", "nucleus")


def _check_max_length(model, max_length: int | None) -> int:
    limit = model.cfg.text.context_length
    if max_length is None:
        return limit
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 2 <= max_length <= limit:
        raise ValueError(f"max_length must be an int in 2..{limit} (the decoder's context length, [DEC] included), "
                         f"got {max_length!r}")
    return max_length


def _next_logits(model, image_tokens: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """(B, T, Dv), (B, t) -> (B, V) scores of token t+1."""
    return model.lm_logits(image_tokens, seqs)[:, -1]


@torch.no_grad()
def greedy_decode(model, image_tokens: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """(B, T, Dv) -> (B, n) ids, the most likely token at each step."""
    max_length = _check_max_length(model, max_length)
    t = model.cfg.text
    B = len(image_tokens)
    seqs = torch.full((B, 1), t.dec_token_id, dtype=torch.long, device=image_tokens.device)
    done = torch.zeros(B, dtype=torch.bool, device=image_tokens.device)
    while seqs.shape[1] < max_length and not bool(done.all()):
        nxt = _next_logits(model, image_tokens, seqs).argmax(dim=-1)          # (B,)
        nxt = nxt.masked_fill(done, t.pad_token_id)                            # finished rows: padding
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        done |= nxt == t.sep_token_id
    return seqs


def nucleus_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) logits -> (B, V) bool, True for the tokens in the top-p nucleus.

    The nucleus is the smallest set of most likely tokens whose probabilities sum to >= top_p;
    the most likely token is always in it (so top_p -> 0 is greedy).
    """
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs                # mass of the more likely tokens
    keep_sorted = before < top_p                         # not yet enough mass without this token
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def nucleus_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) logits -> the same with every token outside the top-p nucleus (:func:`nucleus_mask`) at -inf."""
    return logits.masked_fill(~nucleus_mask(logits, top_p), float("-inf"))


@torch.no_grad()
def nucleus_sample(model, image_tokens: torch.Tensor, max_length: int | None = None, top_p: float = 0.9,
                   temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T, Dv) -> (B, n) ids sampled from the top-p nucleus of softmax(logits / temperature)."""
    max_length = _check_max_length(model, max_length)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    t = model.cfg.text
    B = len(image_tokens)
    seqs = torch.full((B, 1), t.dec_token_id, dtype=torch.long, device=image_tokens.device)
    done = torch.zeros(B, dtype=torch.bool, device=image_tokens.device)
    while seqs.shape[1] < max_length and not bool(done.all()):
        logits = nucleus_filter(_next_logits(model, image_tokens, seqs) / temperature, top_p)
        nxt = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)
        nxt = nxt.masked_fill(done, t.pad_token_id)
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        done |= nxt == t.sep_token_id
    return seqs


@torch.no_grad()
def beam_search(model, image_tokens: torch.Tensor, max_length: int | None = None, num_beams: int = 3,
                length_penalty: float = 1.0) -> torch.Tensor:
    """(B, T, Dv) -> (B, n) ids: per image, the best caption found keeping ``num_beams`` open prefixes.

    The rules are transformers' defaults (``early_stopping=False``), so both pick the same caption:

    - each step ranks the 2K best one-token extensions of the K open prefixes by their summed
      log-probability; those ending in ``[SEP]`` (or reaching ``max_length``) become finished
      captions if they rank in the top K, the best K others stay open;
    - a finished caption scores sum of log-probs / (tokens after [DEC]) ** ``length_penalty``;
    - the search stops at ``max_length``, or once K captions are finished and the best open
      prefix, scored at its current length, does not beat the worst of them.
    """
    max_length = _check_max_length(model, max_length)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive int, got {num_beams!r}")
    t, K = model.cfg.text, num_beams
    results = []
    for b in range(len(image_tokens)):
        img = image_tokens[b : b + 1]                                            # (1, T, Dv)
        beams = torch.full((1, 1), t.dec_token_id, dtype=torch.long, device=img.device)  # (K, t) open prefixes
        scores = torch.zeros(1, device=img.device)                                # (K,) their sums of log-probs
        finished: list[tuple[float, torch.Tensor]] = []                           # (score, ids), best first
        while True:
            logp = _next_logits(model, img.expand(len(beams), -1, -1), beams).log_softmax(dim=-1)  # (K, V)
            V, length = logp.shape[1], beams.shape[1] + 1                         # length after this step
            top, idx = (scores[:, None] + logp).flatten().topk(min(2 * K, logp.numel()))
            open_beams, open_scores = [], []
            for rank, (s, i) in enumerate(zip(top.tolist(), idx.tolist())):
                seq = torch.cat([beams[i // V], beams.new_tensor([i % V])])
                if i % V == t.sep_token_id or length == max_length:
                    if rank < K:
                        finished.append((s / (length - 1) ** length_penalty, seq))
                elif len(open_beams) < K:
                    open_beams.append(seq)
                    open_scores.append(s)
            finished = sorted(finished, key=lambda f: f[0], reverse=True)[:K]
            if length == max_length or not open_beams:
                break
            beams, scores = torch.stack(open_beams), torch.tensor(open_scores, device=img.device)
            if len(finished) == K and open_scores[0] / (length - 1) ** length_penalty <= finished[-1][0]:
                break
        results.append(finished[0][1])
    n = max(len(r) for r in results)
    out = torch.full((len(results), n), t.pad_token_id, dtype=torch.long, device=image_tokens.device)
    for i, r in enumerate(results):
        out[i, : len(r)] = r
    return out


def generate(model, images: torch.Tensor, method: str = "greedy", max_length: int | None = None,
             num_beams: int = 3, top_p: float = 0.9, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Images (B, 3, S, S) -> caption ids (B, n) by ``method`` in METHODS."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    # check every option before any work, whichever method reads it
    _check_max_length(model, max_length)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive int, got {num_beams!r}")
    nucleus_mask(torch.zeros(1, 2), top_p)                     # raises on a bad top_p
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    image_tokens = model.encode_image(images)
    if method == "greedy":
        return greedy_decode(model, image_tokens, max_length)
    if method == "beam":
        return beam_search(model, image_tokens, max_length, num_beams)
    return nucleus_sample(model, image_tokens, max_length, top_p, temperature, generator)

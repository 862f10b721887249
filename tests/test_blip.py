"""mmcourse.blip: BLIP's kernels, cross-checked against transformers' BLIP and by their properties.

transformers' models are built from tiny configs with random weights (never from a hub) and then
re-randomised: a fresh BlipVisionModel has initializer_range 1e-10, i.e. an image tower of zeros,
which would make every image look the same and the cross-check blind to the vision side.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from mmcourse.blip import (BLIP, BlipConfig, BlipTokenizer, TextConfig, attention_mask, beam_search, caption,
                           count_parameters, filter, from_hf_blip_captioner, from_hf_blip_itm, greedy_decode,
                           itc_loss, lm_loss, mask_failure_demo, nucleus_filter, nucleus_sample,
                           same_content_mask, sample_hard_negatives, sharing_counts)
from mmcourse.blip.text import SHARED
from mmcourse.clip import caption_ids, clip_loss
from mmcourse.vit import ViTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

V_HF = 40  # vocabulary of the transformers models: [PAD] = 0 ... [CLS] 36, [SEP] 37, [ENC] 38, [DEC] 39


def tiny_cfg(vocab_size: int | None = None, **kw) -> BlipConfig:
    text = dict(width=32, layers=2, heads=4, mlp_dim=48, image_width=32, context_length=12)
    if vocab_size is not None:
        text["vocab_size"] = vocab_size
    vision = ViTConfig(img_size=16, patch_size=4, num_classes=0, embed_dim=32, depth=1, num_heads=4)
    return BlipConfig(vision=vision, text=TextConfig(**text), embed_dim=16, **kw)


def randomize(model: torch.nn.Module, std: float = 0.15, seed: int = 0) -> torch.nn.Module:
    """Every parameter redrawn (LayerNorm gains around 1), so outputs depend strongly on inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * (std if p.ndim > 1 else std / 2)
            is_gain = p.ndim == 1 and name.endswith("weight") and "norm" in name.lower()
            p.copy_(noise + 1.0 if is_gain else noise)
    return model.eval()


def tiny_model(seed: int = 0, **kw) -> BLIP:
    torch.manual_seed(seed)
    return randomize(BLIP(tiny_cfg(**kw)), seed=seed)


# ----------------------------------------------------------------------------------- tokenizer
def test_tokenizer_layout_and_decode():
    tok = BlipTokenizer()
    V = len(tok.words)
    assert tok.token_ids() == {"pad_token_id": 0, "cls_token_id": V + 1, "sep_token_id": V + 2,
                               "enc_token_id": V + 3, "dec_token_id": V + 4}
    ids = tok(["There is a red circle.", "a blue square"])
    assert ids.shape == (2, 16) and ids[:, 0].tolist() == [tok.cls_token_id] * 2
    assert ids[0, 6] == tok.sep_token_id and ids[0, 7:].eq(0).all()
    assert tok.decode(ids[0]) == "there is a red circle"
    ids[:, 0] = tok.dec_token_id  # the decoder's view decodes the same
    assert tok.decode(ids[1]) == "a blue square"
    cfg = TextConfig()  # the model's defaults follow the tokenizer's layout
    assert {k: getattr(cfg, k) for k in tok.token_ids()} == tok.token_ids() and cfg.vocab_size == tok.vocab_size


def test_bad_text_input_names_the_argument():
    model = BLIP(tiny_cfg())
    images = torch.rand(2, 3, 16, 16)
    tok = BlipTokenizer(context_length=12)
    with pytest.raises(ValueError, match=r"captions: unknown word 'sqaure'.*nearest known words: square"):
        filter(model, images, ["a red sqaure", "a blue circle"], tokenizer=tok)
    long = " ".join(["the red circle"] * 5)
    with pytest.raises(ValueError, match=r"captions: text .* more than context_length"):
        filter(model, images, [long, "a blue circle"], tokenizer=tok)
    with pytest.raises(ValueError, match=r"captions must be a list of 2"):
        filter(model, images, ["a blue circle"], tokenizer=tok)
    with pytest.raises(ValueError, match=r"tokens have length 13, more than the context length 12"):
        model.text_features(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokenizer does not fit the model"):
        filter(model, images, ["a", "a"], tokenizer=BlipTokenizer(["a", "b"], context_length=12))


def test_bad_image_and_decoding_input_names_the_argument():
    model = BLIP(tiny_cfg())
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, 16, 16\) with B >= 1, got \(2, 3, 32, 32\)"):
        model.encode_image(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"max_length must be an int in 2..12"):
        caption(model, torch.rand(1, 3, 16, 16), tokenizer=BlipTokenizer(context_length=12), max_length=13)
    with pytest.raises(ValueError, match=r"method must be one of"):
        caption(model, torch.rand(1, 3, 16, 16), tokenizer=BlipTokenizer(context_length=12), method="sample")
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        nucleus_filter(torch.zeros(1, 5), 0.0)


# --------------------------------------------------------------------------- transformers' BLIP
def hf_config(label_smoothing: float = 0.0):
    from transformers import BlipConfig as HFBlipConfig

    text = dict(vocab_size=V_HF, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=20, bos_token_id=V_HF - 1, sep_token_id=V_HF - 3, eos_token_id=V_HF - 3,
                pad_token_id=0, label_smoothing=label_smoothing)
    vision = dict(image_size=30, patch_size=2, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4)
    return HFBlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=24)


def hf_batch(first: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, V_HF - 4, (3, 9), generator=g)
    ids[:, 0], ids[:, -1] = first, V_HF - 3
    ids[1, 5], ids[1, 6:] = V_HF - 3, 0  # a shorter, padded caption
    return ids, (ids != 0).long(), torch.randn(3, 3, 30, 30, generator=g)


def test_itm_and_itc_match_transformers():
    from transformers import BlipForImageTextRetrieval

    cfg = hf_config()
    torch.manual_seed(0)
    hf = randomize(BlipForImageTextRetrieval(cfg))
    ours = from_hf_blip_itm(hf.state_dict(), cfg)
    assert not hasattr(ours, "text_decoder") and ours.cfg.text.norm_eps == 1e-12 and ours.cfg.vision.norm_eps == 1e-5
    ids, att, px = hf_batch(first=V_HF - 2)  # [ENC] first: transformers does not insert it
    with torch.no_grad():
        theirs = hf(input_ids=ids, pixel_values=px, attention_mask=att).itm_score
        mine = ours.itm_logits(ours.encode_image(px), ids)
        assert theirs.std() > 0.1  # the logits differ between pairs: the check is not blind
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
        ids[:, 0] = V_HF - 4  # [CLS] for the unimodal encoder
        theirs = hf(input_ids=ids, pixel_values=px, attention_mask=att, use_itm_head=False).itm_score
        mine = ours.itc_similarity(px, ids)
        assert theirs.shape == (3, 3) and theirs.std() > 0.01
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_captioner_logits_loss_and_greedy_match_transformers():
    from transformers import BlipForConditionalGeneration

    cfg = hf_config(label_smoothing=0.1)
    torch.manual_seed(0)
    hf = randomize(BlipForConditionalGeneration(cfg))
    ours = from_hf_blip_captioner(hf.state_dict(), cfg)
    assert not hasattr(ours, "text_encoder") and ours.cfg.label_smoothing == 0.1
    ids, att, px = hf_batch(first=V_HF - 1)  # bos_token_id ([DEC]) first
    with torch.no_grad():
        out = hf(pixel_values=px, input_ids=ids, attention_mask=att, labels=ids.masked_fill(att == 0, -100))
        logits = ours.lm_logits(ours.encode_image(px), ids)
        torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)  # padded positions included
        loss = lm_loss(logits, ids, pad_token_id=0, label_smoothing=ours.cfg.label_smoothing)
        torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=0)
        theirs = hf.generate(pixel_values=px, max_length=12)
        mine = greedy_decode(ours, ours.encode_image(px), max_length=12)
        assert torch.equal(mine, theirs)
        assert len({tuple(r) for r in mine.tolist()}) > 1  # the images lead to different captions



def padded_after_sep(ids: torch.Tensor, sep: int) -> torch.Tensor:
    """Tokens after the first [SEP] set to 0: transformers' beam search fills them with [SEP] instead."""
    after = (ids == sep).long().cumsum(1) - (ids == sep).long() > 0
    return ids.masked_fill(after, 0)


def test_beam_search_matches_transformers():
    from transformers import BlipForConditionalGeneration

    cfg = hf_config()
    torch.manual_seed(0)
    hf = randomize(BlipForConditionalGeneration(cfg))
    with torch.no_grad():  # make [SEP] likely enough that captions end at different lengths
        hf.text_decoder.cls.predictions.bias[V_HF - 3] += 0.5
    ours = from_hf_blip_captioner(hf.state_dict(), cfg)
    px = torch.randn(6, 3, 30, 30, generator=torch.Generator().manual_seed(2))
    lengths = set()
    with torch.no_grad():
        for max_length in (6, 12):  # same scores, length normalisation, ending and stopping rules
            theirs = hf.generate(pixel_values=px, max_length=max_length, num_beams=3)
            mine = beam_search(ours, ours.encode_image(px), max_length=max_length, num_beams=3)
            assert torch.equal(mine, padded_after_sep(theirs, V_HF - 3))
            lengths |= set(mine.ne(0).sum(1).tolist())
    assert len(lengths) >= 3  # finished early, at max_length 6 and at 12


def test_nucleus_filter_matches_transformers_top_p():
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.randn(64, 30, generator=torch.Generator().manual_seed(0)) * 3
    for top_p in (0.1, 0.5, 0.9, 0.99):
        theirs = torch.isfinite(TopPLogitsWarper(top_p)(None, logits.clone()))
        assert torch.equal(torch.isfinite(nucleus_filter(logits, top_p)), theirs)


def test_loader_rejects_a_state_dict_that_does_not_fit():
    from transformers import BlipForImageTextRetrieval

    cfg = hf_config()
    sd = BlipForImageTextRetrieval(cfg).state_dict()
    with pytest.raises(ValueError, match="unexpected key 'extra.weight'"):
        from_hf_blip_itm({**sd, "extra.weight": torch.zeros(1)}, cfg)
    with pytest.raises(ValueError, match="special token ids must be distinct"):
        from_hf_blip_itm(sd, cfg, enc_token_id=V_HF - 1)  # the config's bos ([DEC]) id
    assert from_hf_blip_itm(sd, cfg, cls_token_id=5, enc_token_id=6).cfg.text.enc_token_id == 6
    sd.pop("itm_head.bias")
    with pytest.raises(ValueError, match=r"missing \['itm_head.bias'\]"):
        from_hf_blip_itm(sd, cfg)


# ------------------------------------------------------------------------------ attention masks
def test_masks_are_causal_for_the_decoder_only():
    tokens = torch.tensor([[5, 1, 2, 3, 0, 0]])
    enc, dec = attention_mask(tokens, 0, causal=False)[0, 0], attention_mask(tokens, 0, causal=True)[0, 0]
    assert enc[:, :4].all() and not enc[:, 4:].any()           # every token sees every word, no padding
    assert torch.equal(dec, enc & torch.ones(6, 6, dtype=torch.bool).tril())


def test_decoder_logits_never_depend_on_later_tokens_and_encoder_does():
    model = tiny_model()
    images = torch.rand(2, 3, 16, 16)
    tok = BlipTokenizer(context_length=12)
    a = tok(["there is a red circle at the top", "a blue square"])
    with torch.no_grad():
        img = model.encode_image(images)
        for t in range(1, 8):
            b = a.clone()
            b[:, t] = (b[:, t] % 30) + 1  # another word at position t
            la, lb = model.lm_logits(img, a), model.lm_logits(img, b)
            assert torch.equal(la[:, :t], lb[:, :t]), f"decoder logits before {t} changed"
            assert (la[:, t:] - lb[:, t:]).abs().max() > 1e-3
            ea, eb = model.text_encoder(a, img), model.text_encoder(b, img)  # image-grounded encoder
            assert (ea[:, :t] - eb[:, :t]).abs().max() > 1e-3, f"encoder did not see token {t}"


def test_cross_attention_reads_every_image_token():
    model = tiny_model()
    tokens = BlipTokenizer(context_length=12)(["a red circle", "there is a small green cross"])
    img = model.encode_image(torch.rand(2, 3, 16, 16)).detach().requires_grad_(True)  # (2, 17, 32)
    (model.itm_logits(img, tokens)[:, 1].sum() + model.lm_logits(img, tokens).logsumexp(-1).sum()).backward()
    per_token = img.grad.abs().sum(-1)  # (B, T)
    assert per_token.shape == (2, 17) and (per_token > 1e-6).all()
    # the unimodal (ITC) mode ignores the image entirely
    with torch.no_grad():
        assert torch.equal(model.text_encoder(tokens), model.text_encoder(tokens, image_tokens=None))


# -------------------------------------------------------------------------------------- sharing
def test_decoder_shares_everything_but_self_attention():
    model = BLIP(tiny_cfg())
    enc, dec = model.text_encoder, model.text_decoder
    assert dec.embeddings is enc.embeddings
    for le, ld in zip(enc.layers, dec.layers):
        assert all(getattr(le, n) is getattr(ld, n) for n in SHARED)
        assert le.self_attn is not ld.self_attn and le.norm1 is not ld.norm1
    assert model.lm_head.decoder.weight is enc.embeddings.word_embeddings.weight
    counts = sharing_counts(tiny_cfg())
    assert counts["shared"] == count_parameters(model)
    unshared = BLIP(tiny_cfg(share=False))
    assert counts["unshared"] == count_parameters(unshared)
    text = count_parameters(unshared.text_decoder)
    assert counts["saved"] == text - counts["decoder_own"] and counts["decoder_own"] < text / 2


def test_checkpoint_round_trip_without_shared_tensors(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model()
    tied = model.tied_keys()
    assert tied["lm_head.decoder.weight"] == "text_encoder.embeddings.word_embeddings.weight"
    assert "text_decoder.layers.0.mlp.fc1.weight" in tied and "text_decoder.layers.0.self_attn.q_proj.weight" not in tied
    save_file(model.unique_state_dict(), str(tmp_path / "blip.safetensors"))
    fresh = BLIP(tiny_cfg()).load_unique_state_dict(load_file(str(tmp_path / "blip.safetensors")))
    tokens = BlipTokenizer(context_length=12)(["a red circle"])
    img = model.encode_image(torch.rand(1, 3, 16, 16))
    with torch.no_grad():
        assert torch.equal(fresh.lm_logits(img, tokens), model.lm_logits(img, tokens))
        assert torch.equal(fresh.itm_logits(img, tokens), model.itm_logits(img, tokens))
    with pytest.raises(ValueError, match="missing"):
        BLIP(tiny_cfg()).load_unique_state_dict({k: v for k, v in model.unique_state_dict().items() if "itm" not in k})


def test_every_parameter_learns_from_the_three_losses():
    model = tiny_model().train()
    tok = BlipTokenizer(context_length=12)
    captions = ["a red circle", "a blue square", "a red circle", "there is a small green cross"]
    losses = model(torch.rand(4, 3, 16, 16), tok(captions), caption_ids(captions), torch.Generator().manual_seed(0))
    assert set(losses) == {"itc", "itm", "lm"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def itm_overfit_loss(bert_init: bool, seed: int = 0, steps: int = 120) -> float:
    """ITM loss after ``steps`` AdamW steps on 8 fixed ShapesWorld pairs and 8 mismatched ones."""
    import torch.nn.functional as F

    from mmcourse.clip.tasks import sample_pairs

    torch.manual_seed(seed)
    model = BLIP(tiny_cfg(vocab_size=BlipTokenizer().vocab_size))
    if bert_init:  # BERT's N(0, 0.02) for the text encoder's linear layers
        for m in model.text_encoder.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.02)
                torch.nn.init.zeros_(m.bias)
    pairs = sample_pairs(8, seed=0, data="classes")                  # "a red circle", ...
    images = torch.nn.functional.interpolate(pairs.images, size=16, mode="area")
    tokens = BlipTokenizer(context_length=12)(pairs.captions)
    wrong = torch.roll(torch.arange(8), 1)
    labels = torch.cat([torch.ones(8), torch.zeros(8)]).long()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):
        img = model.encode_image(images)
        loss = F.cross_entropy(model.itm_logits(torch.cat([img, img[wrong]]), torch.cat([tokens, tokens])), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.slow
def test_default_init_lets_itm_learn_where_bert_init_collapses():
    assert itm_overfit_loss(bert_init=False) < 0.3
    assert itm_overfit_loss(bert_init=True) > 0.69  # stuck at ln 2: a constant 50/50 answer


# ---------------------------------------------------------------------------------------- losses
def test_itc_is_clip_loss_with_blip_temperature_clamped():
    model = BLIP(tiny_cfg())
    f_i, f_t = torch.randn(5, 16), torch.randn(5, 16)
    torch.testing.assert_close(itc_loss(f_i, f_t, 0.05), clip_loss(f_i, f_t, 20.0))
    tok = BlipTokenizer(context_length=12)
    for value, expected in ((10.0, 0.5), (1e-5, 0.001)):
        with torch.no_grad():
            model.temp.fill_(value)
        model(torch.rand(2, 3, 16, 16), tok(["a red circle", "a blue square"]))
        assert model.temp.item() == pytest.approx(expected)


def test_lm_loss_smooths_labels_and_ignores_padding():
    g = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[35, 4, 7, 33, 0, 0]])
    logits = torch.randn(1, 6, 36, generator=g)
    logp = logits.log_softmax(-1)[0, :3]                              # positions 0..2 predict 4, 7, 33
    nll = -logp[torch.arange(3), torch.tensor([4, 7, 33])]
    expected = (0.9 * nll - 0.1 * logp.mean(-1)).mean()               # (1 - eps) NLL + eps * uniform CE
    torch.testing.assert_close(lm_loss(logits, tokens, 0, 0.1), expected)
    other = logits.clone()
    other[0, 3:] = torch.randn(3, 36, generator=g)                    # scores at [SEP] and padding: unused
    torch.testing.assert_close(lm_loss(other, tokens, 0, 0.1), expected)


# -------------------------------------------------------------------------------- hard negatives
def test_hard_negatives_never_same_content():
    g = torch.Generator().manual_seed(0)
    for trial in range(300):
        B = int(torch.randint(2, 12, (1,), generator=g))
        content = torch.randint(0, max(1, B // 2), (B,), generator=g)  # many duplicates, sometimes all equal
        sim = torch.randn(B, B, generator=g) * 5
        sim = sim + 10 * same_content_mask(content)                   # duplicates look most similar
        neg_img, neg_txt = sample_hard_negatives(sim, content, g)
        same = same_content_mask(content)
        for j in range(B):
            possible = bool((~same[j]).any())
            assert (neg_img[j] >= 0) == possible and (neg_txt[j] >= 0) == possible
            if possible:
                assert not same[neg_img[j], j] and not same[j, neg_txt[j]]


def test_hard_negatives_follow_the_similarity():
    sim = torch.tensor([[9.0, 3.0, 0.0], [3.0, 9.0, 0.0], [0.0, 0.0, 9.0]])
    g = torch.Generator().manual_seed(0)
    picks = torch.stack([sample_hard_negatives(sim, None, g)[0] for _ in range(400)])
    share = (picks[:, 0] == 1).float().mean()                        # text 0: image 1 (sim 3) vs image 2 (sim 0)
    assert abs(share - torch.tensor([3.0, 0.0]).softmax(0)[0]) < 0.05


def test_mask_failure_demo_shows_false_negatives_without_the_mask():
    captions = ["a red circle", "a red circle", "a blue square", "a green cross", "a blue square", "a red circle"]
    ids = caption_ids(captions)
    sim = 10 * same_content_mask(ids).float()                        # a trained model: duplicates score high
    demo = mask_failure_demo(sim, ids, draws=50)
    assert demo["false_negative_rate_diagonal_only"] > 0.5 and demo["false_negative_rate_masked"] == 0.0
    assert "invalid multinomial distribution" in demo["error_without_fallback"]


# -------------------------------------------------------------------------------------- decoding
def test_beam_search_finds_the_best_caption_when_wide_enough():
    model = tiny_model(vocab_size=8)                                 # 3 words + 5 special tokens
    t = model.cfg.text
    img = model.encode_image(torch.rand(1, 3, 16, 16)).detach()
    best, best_seq = float("-inf"), None
    with torch.no_grad():
        for n in (1, 2, 3):                                          # brute force: every caption of <= 3 tokens
            for rest in itertools.product(range(8), repeat=n):
                if t.sep_token_id in rest[:-1]:
                    continue
                seq = torch.tensor([[t.dec_token_id, *rest]])
                if n < 3 and rest[-1] != t.sep_token_id:
                    continue                                         # shorter captions must end with [SEP]
                logp = model.lm_logits(img, seq[:, :-1]).log_softmax(-1)[0]
                score = float(logp[torch.arange(n), seq[0, 1:]].sum())
                if score > best:
                    best, best_seq = score, seq[0]
        found = beam_search(model, img, max_length=4, num_beams=64, length_penalty=0.0)[0]
    assert torch.equal(found[: len(best_seq)], best_seq)


def test_greedy_beam_and_nucleus_agree_where_they_must():
    model = tiny_model()
    img = model.encode_image(torch.rand(3, 3, 16, 16)).detach()
    greedy = greedy_decode(model, img, max_length=10)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(nucleus_sample(model, img, max_length=10, top_p=1e-6, generator=g), greedy)
    sampled = nucleus_sample(model, img, max_length=10, top_p=0.9, generator=g)
    assert sampled[:, 0].eq(model.cfg.text.dec_token_id).all() and sampled.shape[1] <= 10
    beam = beam_search(model, img, max_length=10, num_beams=3)
    assert beam[:, 0].eq(model.cfg.text.dec_token_id).all() and beam.shape[1] <= 10
    sep = model.cfg.text.sep_token_id
    for row in greedy.tolist():  # after [SEP] only padding
        if sep in row:
            assert all(x == 0 for x in row[row.index(sep) + 1:])


def test_nucleus_filter_keeps_the_smallest_set_reaching_top_p():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(nucleus_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(nucleus_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(nucleus_filter(logits, 0.9)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(nucleus_filter(logits[:, [3, 1, 0, 2]], 0.7)).tolist() == [[False, True, True, False]]


def test_caption_and_filter_return_one_result_per_image():
    model = tiny_model(vocab_size=BlipTokenizer().vocab_size)
    tok = BlipTokenizer(context_length=12)
    images = torch.rand(3, 3, 16, 16)
    for method in ("greedy", "beam", "nucleus"):
        texts = caption(model, images, tok, method=method, max_length=8, generator=torch.Generator().manual_seed(0))
        assert len(texts) == 3 and all(isinstance(s, str) and len(s.split()) <= 7 for s in texts)
    keep, probs = filter(model, images, ["a red circle", "a blue square", "a small green cross"], 0.5, tok)
    assert keep.shape == probs.shape == (3,) and torch.equal(keep, probs >= 0.5)
    assert ((probs > 0) & (probs < 1)).all()

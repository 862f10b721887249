# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · BLIP: one model that retrieves, matches and captions
#
# CLIP (notebook 04) can tell which caption goes with an image, but it cannot *write* one, and
# it compares an image and a caption only through two vectors made separately. BLIP (Li et al.,
# 2022, "Bootstrapping Language-Image Pre-training") trains **one** text transformer for three
# jobs at once, a **multimodal mixture of encoder–decoder** (MED, 编码器–解码器混合模型):
#
# | job | text transformer mode | reads the image? | head | loss |
# |---|---|---|---|---|
# | retrieve | unimodal encoder: bidirectional self-attention, `[CLS]` first | no (CLIP-style, two towers) | `text_proj` on `[CLS]` | **ITC**, image–text contrastive (对比) |
# | match | image-grounded encoder: bidirectional + **cross-attention** (交叉注意力) to every image token, `[ENC]` first | yes, in every layer | 2-way `itm_head` on `[ENC]` | **ITM**, image–text matching (匹配) |
# | caption | image-grounded decoder: **causal** self-attention + the same cross-attention, `[DEC]` first | yes, in every layer | `lm_head` on every token | **LM**, language modelling (语言建模), label smoothing 0.1 |
#
# Then BLIP cleans its own noisy training data (**CapFilt**): a captioner writes new captions and
# a filter drops the pairs that do not match. We measure why each part exists on ShapesWorld.
#
# ```mermaid
# flowchart LR
#     img["image 3 × 32 × 32"] --> vit["ViT (notebook 03)<br/>17 tokens"]
#     vit -- "class token" --> vp["vision_proj"] --> itc(("ITC"))
#     cap["caption"] --> uni
#     cap --> grd
#     subgraph te["text encoder: one set of weights, two modes"]
#         uni["unimodal: [CLS] · bidirectional<br/>cross-attention skipped"]
#         grd["image-grounded: [ENC] · bidirectional<br/>+ cross-attention"]
#     end
#     uni --> tp["text_proj"] --> itc
#     vit -- "all tokens" --> grd --> itm(("ITM<br/>match / no match"))
#     cap --> gd["image-grounded decoder<br/>[DEC] · causal self-attn + cross-attn"]
#     vit -- "all tokens" --> gd --> lm(("LM<br/>next word"))
#     te -. "shares all but self-attention" .- gd
# ```
#
# The same encoder weights read the caption alone (`[CLS]`) or with the image (`[ENC]`).
#
# Each section ends with a measured target; section 8 collects them.

# %%
import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.blip import expect
from mmcourse.protocol import load_results
from mmcourse.viz import markdown_table, setup_matplotlib, show_images, show_source

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. The three objectives side by side
#
# ### One tokenizer, three first tokens
#
# BLIP reads every caption with one tokenizer, and tells the text transformer which job it is
# doing by the first token. Ours is notebook 04's word tokenizer with BERT's special tokens
# added; the model itself swaps `[CLS]` for `[ENC]` or `[DEC]`.

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.blip import BLIP, BlipTokenizer
from mmcourse.blip.captions import CONTEXT_LENGTH, sample_scenes
from mmcourse.blip.train import shapes_blip_config

tok = BlipTokenizer(context_length=CONTEXT_LENGTH)
print(tok, "| special ids:", tok.token_ids())
ids = tok(["a small red circle on the left"])[0]
print("ids:", ids[:10].tolist(), "...")
for first in ("cls", "enc", "dec"):
    row = ids.clone()
    row[0] = getattr(tok, f"{first}_token_id")
    print(f"{first.upper():>4} mode reads:", " ".join(tok.itos[i] for i in row[:9].tolist()))
try:
    tok(["a small red circel"], argument="captions")
except ValueError as err:
    print("error:", err)

# %% [markdown]
# ### Three attention masks
#
# Which keys may each text token read? The text keys come first (self-attention), then the ViT's
# 17 image tokens (cross-attention). The unimodal encoder reads no image; the image-grounded
# encoder reads every word and image token; the decoder reads the image but only the words
# *before* it, so it can be trained to predict the next one.
#
# ### Exercise 1: `decoder_mask`
#
# Write the decoder's mask for token ids `tokens` (B, L) and `num_image_tokens` T: a (B, L, L + T)
# bool tensor, True where query token t may read key s. The first L columns are the text keys: a
# key is readable if it is not `[PAD]` (`pad_token_id`) and comes at or before the query (s ≤ t).
# The last T columns are the image tokens, all readable.

# %%
import torch

from mmcourse.checks.blip import check_decoder_mask


def decoder_mask(tokens: torch.Tensor, num_image_tokens: int, pad_token_id: int) -> torch.Tensor:
    ### BEGIN SOLUTION
    B, L = tokens.shape
    keys = (tokens != pad_token_id)[:, None, :]                      # (B, 1, L)
    causal = torch.ones(L, L, dtype=torch.bool).tril()[None]         # (1, L, L)
    image = torch.ones(B, L, num_image_tokens, dtype=torch.bool)
    return torch.cat([keys & causal, image], dim=2)
    ### END SOLUTION


check_decoder_mask(decoder_mask)

# %% [markdown]
# Compare with the course's `mode_mask`, all three modes. The three `[PAD]` tokens' key columns
# are never read (white); their own rows are computed but never used.

# %%
from mmcourse.blip import mode_mask

show_source(mode_mask)
example = tok(["a small red circle on the left"])[:, :12]   # 9 tokens and 3 [PAD]
T_IMG = 17
fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
words = [tok.itos[i] for i in example[0].tolist()]
for ax, mode, first in zip(axes, ("text", "encoder", "decoder"), ("[CLS]", "[ENC]", "[DEC]")):
    m = mode_mask(example, T_IMG, tok.pad_token_id, mode)[0].int().numpy()
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1.3, aspect="auto")
    ax.axvline(len(words) - 0.5, color="k", lw=1)
    ax.set_yticks(range(len(words)), [first] + words[1:], fontsize=9)
    ax.set_xticks([4, 10, len(words) + T_IMG // 2], ["text keys", "[PAD]", "17 image tokens"], fontsize=9)
    ax.set(xlabel="key token (what is read)", ylabel="query token (who reads)")
    ax.set_title({"text": "ITC: bidirectional, no image", "encoder": "ITM: bidirectional + cross",
                  "decoder": "LM: causal + cross"}[mode], fontsize=10)
fig.suptitle("dark = the query may read this key; white = masked", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### What each head reads, and the three losses of one step
#
# `BLIP.forward` runs all three on one batch. ITC is CLIP's loss (with BLIP's learned
# temperature, clamped to [0.001, 0.5]; BLIP's momentum distillation and queue: section 8); ITM classifies B true pairs and up to 2B hard negatives
# (section 5); LM is next-word cross-entropy with label smoothing 0.1.

# %%
show_source(BLIP.forward)

# %% [markdown]
# **Predict, then run:** an untrained model guesses. What should each loss be? (Batch of 16;
# vocabulary of 36 tokens: 31 words and 5 special tokens; ITM sees one true pair for every two
# false ones.)

# %%
from mmcourse.blip.captions import content_ids

torch.manual_seed(0)
fresh = BLIP(shapes_blip_config())
batch = sample_scenes(16, seed=0)
with torch.no_grad():
    losses = fresh(batch.images, tok(batch.captions), content_ids(batch.captions), torch.Generator().manual_seed(0))
prior = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
print(f"ITC {losses['itc']:.2f} (ln 16 = {math.log(16):.2f}) | ITM {losses['itm']:.2f} (a fixed 1/3 guess: {prior:.2f}, "
      f"ln 2 = {math.log(2):.2f}) | LM {losses['lm']:.2f} (ln 36 = {math.log(36):.2f})")

# %% [markdown]
# **Answer.** ITC and LM sit near a uniform guess, ln 16 and ln 36. ITM's 0.70 is ln 2: the
# untrained head splits "match" and "no match" evenly. Learning the base rate (one pair in three
# is true) would bring it to 0.64, and section 2 shows the model doing that first.

# %% [markdown]
# ### Sharing
#
# BLIP's encoder and decoder share everything except self-attention (embeddings, cross-attention,
# MLPs, their LayerNorms): causal and bidirectional reading want different attention weights;
# what the words and the image *mean* can be shared.

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.blip import sharing_counts

counts = sharing_counts(shapes_blip_config())
print(f"with sharing {counts['shared']:,} parameters, without {counts['unshared']:,}: "
      f"{counts['saved']:,} saved ({counts['saved'] / counts['unshared']:.0%}); the decoder's own: "
      f"{counts['decoder_own']:,} (self-attention and its LayerNorm per layer), plus its LM head")

# %% [markdown]
# ## 2. Training on ShapesWorld
#
# `train_blip` draws fresh scenes (one to three objects) at every step and adds the three losses.
# Two departures, for a laptop budget: BLIP starts its ViT from ImageNet (ViT-B: DeiT) and its text
# transformer from BERT-base; ours starts its ViT from notebook 04's CLIP image tower, already
# trained on this caption world, and its small text transformer from scratch.
#
# **Predict, then run:** which of the three losses will fall first, and which will barely move
# in 40 steps?

# %%
from mmcourse.blip.train import train_blip
from mmcourse.protocol import difference, mean

live, live_curves = train_blip(steps=40, batch_size=32, seed=0, desc="live BLIP run")


def smooth(x, w=10):
    x = np.asarray(x, dtype=float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(i - w, 0)
    return (c[i] - c[lo]) / (i - lo)


fig, ax = plt.subplots(figsize=(6, 3))
for k in ("itc", "itm", "lm"):
    ax.plot(smooth(live_curves[k]), label=k.upper())
ax.axhline(prior, color="grey", ls=":", lw=1, label="ITM's 1/3 guess")
ax.set(xlabel="step", ylabel="loss (mean of 10 steps)", title="live run: 40 steps of 32 scenes")
ax.legend(fontsize=9)
plt.show()
drop = {k: difference(mean(v[:10]), mean(v[-10:])) for k, v in live_curves.items()}   # ± over the 10 steps
print(f"ITC at step 1: {live_curves['itc'][0]:.2f} (ln 32 = {math.log(32):.2f}); ITM, mean of the first 10 steps "
      f"{np.mean(live_curves['itm'][:10]):.2f}, of the last 10 {np.mean(live_curves['itm'][-10:]):.2f}")
expect("ITC, first 10 steps minus last 10", drop["itc"], "> 0.5")
expect("LM, first 10 steps minus last 10", drop["lm"], "> 0.5")

# %% [markdown]
# **Answer.** ITC and LM fall at once; ITM sits at the loss of a fixed answer ("match" one time
# in three). ITC compares two vectors each tower makes alone, and its image tower arrives trained
# (in the shipped curve below its loss collapses within a hundred-odd steps); LM can guess the
# next word from the words before it. ITM must compare the *words* with the *image*, and a fresh
# cross-attention reads a near-uniform average of the image tokens, so the head learns only the
# base rate. Our reading (not tested): ITM leaves that plateau once the cross-attention it shares
# with LM has learned to look words up in the image.
#
# ITC starts above ln 32, section 1's untrained level; our reading (not measured): the trained
# image tower makes confident guesses before the text side can make right ones.
#
# The shipped model trained 2,000 steps with two changes: half of each batch holds one object
# (`single_share=0.5`), because the targets are on single objects; and ITM's loss counts twice
# (BLIP weighs the three equally), to widen ITM's lead over ITC (section 4). Validation draws
# chose 2,000 steps over 1,500 (one run each), though 1,500 had looked better on the draw that
# picked the recipe: a number used to choose is optimistic, and one draw of 500 can be off by 2
# points (section 8).

# %%
from mmcourse.blip.checkpoints import load_blip
from mmcourse.protocol import Estimate, binomial
from mmcourse.weights import entry

blip_entry = entry("blip_shapes")
recipe_runs = load_results("blip_recipe")["variants"]   # python -m bench.blip recipe: one draw of 500 test scenes each
choices = load_results("blip_choices")["arms"]          # python -m bench.blip choices: the recipe on the validation draws
val = {name: {k: Estimate(**v) for k, v in arm["metrics"].items()} for name, arm in choices.items()}
picked = binomial(recipe_runs["single_share 0.5, ITM x2"]["metrics"]["caption_single_all_right"], 500)
print("greedy captions of one object, every word right (target ≥ 0.95):")
print(f"  1,500 steps, on the draw the recipe was picked on: {picked.describe()}")
for name in ("1,500 steps", "2,000 steps (shipped)"):
    print(f"  {name}, validation draws: {val[name]['caption_single_all_right'].describe()}")

# %% [markdown]
# The shipped model's curves (each loss as measured, before ITM's weight of 2):

# %%
stored = load_results("blip_training")["blip_shapes"]
fig, ax = plt.subplots(figsize=(6, 3))
for k in ("itc", "itm", "lm"):
    ax.plot(stored["step"], stored[k], label=k.upper())
ax.axhline(prior, color="grey", ls=":", lw=1, label="ITM's 1/3 guess")
ax.set(xlabel="step", ylabel="loss (mean of 50 steps)",
       title=f"shipped model: {stored['recipe']['steps']:,} steps of {stored['recipe']['batch_size']} scenes")
ax.legend(fontsize=9)
plt.show()
model = load_blip()
half = int(np.searchsorted(stored["step"], stored["step"][-1] // 2))
print(f"trained in {stored['train_cpu_seconds'] / 60:.1f} min of CPU time on one thread")
print(f"from step {stored['step'][half]} to {stored['step'][-1]}: " +
      " | ".join(f"{k.upper()} {stored[k][half]:.3f} → {stored[k][-1]:.3f}" for k in ("itc", "itm", "lm")))

# %% [markdown]
# ### Is the LM loss done?
#
# **Predict, then run:** over the second half of training the LM loss barely moves. Has the
# decoder learned all it can?
#
# The LM loss cannot reach 0. Label smoothing (ε = 0.1) asks for probability 1 − ε + ε/V on the
# right token and ε/V on each of the other 35; no prediction beats that target's entropy, about
# 0.66 nats per token. And where the template is still open (the first words), the next token is
# a coin toss. `lm_loss_parts` computes the exact floor for single-object scenes and the loss on
# the shape word, which the image fixes:

# %%
from mmcourse.blip.evaluate import lm_loss_parts

parts = lm_loss_parts(model, sample_scenes(500, seed=5, split="test", min_objects=1, max_objects=1))
print(f"LM loss (label-smoothed) {parts['lm']:.3f} nats per token; floor {parts['floor']:.3f} = label smoothing "
      f"{parts['floor_smoothing']:.3f} + the templates' open choices {parts['floor'] - parts['floor_smoothing']:.3f}")
print(f"above the floor: {parts['lm'] - parts['floor']:.3f} nats per token")
print(f"the shape word alone: cross-entropy {parts['shape_ce']:.3f} nats, against {-math.log(0.9 + 0.1 / 36):.3f} for a "
      f"decoder sure and right under label smoothing; its share of the label-smoothed loss above the floor: "
      f"{parts['shape_excess']:.3f} nats per token; the most likely shape word is wrong for {parts['shape_wrong']:.1%} of the scenes")

# %% [markdown]
# **Answer.** No. The loss sits only 0.032 nats per token above its floor of 0.798, but that
# remainder is what matters: the shape word costs 0.286 nats where a sure and right decoder pays
# 0.102, and in the label-smoothed loss it alone makes 0.016 of the 0.032 per token, half. A flat
# total hides it. (The training curve also holds 2–3-object scenes, so it sits higher.) Longer
# training helped (section 2).

# %% [markdown]
# ## 3. Captioning
#
# The decoder writes one word at a time, from `[DEC]` to `[SEP]`. Three ways to pick the next:
#
# - **greedy**: always the most likely word;
# - **beam search** (束搜索): keep the 3 most likely beginnings and extend each, so one early
#   mistake is not final;
# - **nucleus (top-p) sampling** (核采样): draw from the smallest set of words whose
#   probabilities add up to at least p; the captions vary, which CapFilt needs (section 6).
#
# ### Exercise 2: `nucleus`
#
# Given next-word logits (B, V) and `top_p`, return a (B, V) bool tensor, True for the words in
# the nucleus: sort each row's probabilities in decreasing order; keep a word if the words *more*
# likely than it add up to less than `top_p` (so the most likely word is always kept).

# %%
import torch

from mmcourse.checks.blip import check_nucleus_mask


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)
    before = probs.cumsum(dim=-1) - probs
    keep_sorted = before < top_p
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    ### END SOLUTION


check_nucleus_mask(nucleus)

# %% [markdown]
# Compare with the course's version, `nucleus_mask`. `nucleus_sample` calls it at every step
# through `nucleus_filter`, a one-line wrapper that sets the logits outside the nucleus to −∞:

# %%
from mmcourse.blip import nucleus_mask, nucleus_sample

from mmcourse.blip.decode import nucleus_filter

show_source(nucleus_mask)
show_source(nucleus_filter)
show_source(nucleus_sample)

# %% [markdown]
# A colour, shape or size word is right when the object at the position its clause names has it.
# **Predict, then run:** which method will be most often right, and which makes the most mistakes?

# %%
# NBVAL_CHECK_OUTPUT
from collections import Counter

from mmcourse.blip.captions import parse_caption, scene_objects
from mmcourse.blip.evaluate import caption_accuracy, generate_captions

rows = []
for method, n1, n3 in (("greedy", 500, 200), ("beam", 50, 50), ("nucleus", 50, 50)):  # beam search is the slow one
    single = caption_accuracy(model, n1, method=method)
    multi = caption_accuracy(model, n3, min_objects=2, max_objects=3, method=method)
    e1, e3 = binomial(single["all_right"], n1), binomial(multi["all_right"], n3)   # a share of n scenes, ± its SE
    rows.append([method, f"{e1.value:.1%} ± {e1.se:.1%} (n = {n1})", f"{e3.value:.1%} ± {e3.se:.1%} (n = {n3})",
                 *(f"{multi[a]:.1%}" for a in ("shape", "colour", "size", "position"))])
display(Markdown(markdown_table(["method", "1 object: all words right (± standard error)", "2–3 objects: all words right",
                                 "per object, 2–3 objects: shape right", "colour right", "size right",
                                 "position right"], rows)))
scenes_1 = sample_scenes(500, seed=1, split="test", min_objects=1, max_objects=1)
said = [parse_caption(c)[0]["shape"] for c in generate_captions(model, scenes_1.images)]
mistakes = Counter((scene_objects(scenes_1, i)[0]["shape"], s) for i, s in enumerate(said)
                   if s != scene_objects(scenes_1, i)[0]["shape"])
print("greedy, 1 object: shape words got wrong (true → said):",
      ", ".join(f"{t} → {s} ×{k}" for (t, s), k in mistakes.most_common(4)))
scenes_3 = sample_scenes(3, seed=1, split="test", min_objects=2, max_objects=3)
for true3, said3 in zip(scenes_3.captions, generate_captions(model, scenes_3.images)):
    print(f"2–3 objects, true: {true3}\n             said: {said3}")
expect("greedy captions of single-object scenes, every word right (test draws)",
       blip_entry.estimate("caption_single_all_right"), "≥ 0.95", k_se=2)

# %% [markdown]
# **Answer.** Greedy and beam cannot be told apart here (98.2% of 500 scenes against 96.0% of 50,
# ±2.8 points). Nucleus sampling makes the most mistakes (76.0%): it draws less
# likely words on purpose, which is why CapFilt (section 6) needs a filter. Greedy's mistakes are
# shape words, mostly diamond and cross.
#
# With two or three objects greedy captions are all right for only 5.5% of the scenes; shape is
# the weakest word (32.5% per object, chance 1 in 5). Not because most training scenes hold one
# object: a stored run with a third of them, not two thirds, did no better (section 8's last
# table). Two remain, untested: the ViT sees 8-pixel patches, so a small object covers few
# tokens; and its weights start from 04's CLIP, trained on one-object scenes.
# ITM too is weakest on shape with 2–3 objects (section 4), which points at the image side. Beam's
# 12.0% is within the noise of 50 scenes.

# %% [markdown]
# Try it: pick a scene and the number of objects; the **sample** slider draws another nucleus
# sample. Green words are right, red ones wrong.

# %%
from mmcourse.blip.widgets import caption_explorer

caption_explorer(model)

# %% [markdown]
# ## 4. Matching: why ITM exists
#
# ITC squeezes the image and the caption into one vector each, made separately: a one-word change
# moves the caption's vector only a little, and which object the word belonged to is easily lost.
# ITM reads the caption *with* the image in every layer, so it can check each word. Edit one word
# of a caption and watch both scores:

# %%
from mmcourse.blip.widgets import matching_explorer

matching_explorer(model)

# %% [markdown]
# The measurement: on 500 single-object and 300 two-to-three-object test scenes, each caption
# against its one-word-changed copies (colour, shape, size, position); a score wins when it ranks
# the true caption higher.
#
# **Predict, then run:** on which scenes will ITC lose most against ITM?

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.blip.captions import ATTRIBUTES
from mmcourse.blip.evaluate import matching_accuracy

m1 = matching_accuracy(model, 500, min_objects=1, max_objects=1)
m3 = matching_accuracy(model, 300, min_objects=2, max_objects=3)
rows = [[f"{name} ({scenes})", f"{m[name]:.1%}", *(f"{m[f'{name}_{a}']:.1%}" for a in ATTRIBUTES)]
        for scenes, m in (("1 object", m1), ("2–3 objects", m3)) for name in ("itm", "itc")]
display(Markdown(markdown_table(["score", "all changes", *ATTRIBUTES], rows)))
print("test draws, 1 object: ITC", blip_entry.describe("itc_one_word_single"))
print("test draws, 2–3 objects: ITM", blip_entry.estimate("itm_one_word_multi").describe(0.95), "| ITC",
      blip_entry.describe("itc_one_word_multi"))
print(f"ITM says “no match” (p < 0.5) to {blip_entry.estimate('itm_reject_single')} of the changed single-object "
      f"captions and “match” to {blip_entry.estimate('itm_accept_single')} of the true ones (test draws)")
print(f"live, 2–3 objects: “no match” to {m3['itm_reject']:.1%} of the changed captions, “match” to "
      f"{m3['itm_accept']:.1%} of the true ones")
expect("ITM, true caption over one-word-changed, single objects (test draws)",
       blip_entry.estimate("itm_one_word_single"), "≥ 0.95", k_se=2)
expect("ITM minus ITC, 2–3 objects, paired (test draws)", blip_entry.estimate("itm_minus_itc_one_word_multi"), "> 0")

# %% [markdown]
# **Answer.** With two or three objects, on the shape word (ITC 80.3%, ITM 83.7%) and on size
# (91.0% against 93.3%): words that must be bound to the right object. Elsewhere the two are
# within a point. The ≥ 95% target cannot tell the two apart: on single objects ITC scores 0.9985
# too; with 2–3 objects, where binding matters, ITM itself falls short of 0.95 (printed above).
# And the shipped recipe counts ITM's loss twice, so part of ITM's 1.4 ± 0.3-point lead is our
# recipe's (with equal weights: +0.6 on one draw at 1,500 steps, section 8).
#
# ITC's cosine was trained only to rank, so it has no threshold; ITM's 0.5 gives a yes or no:
# "no match" to 99.6% of the changed single-object captions, "match" to 99.8% of the true ones.
# But ranking well is not a reliable threshold: with 2–3 objects ITM ranks the true caption first
# 94.0% of the time, yet rejects only 61.5% of the changed ones. A filter needs the yes or no
# (section 6).

# %% [markdown]
# ITC is retrieval's workhorse all the same: a dot product ranks 1,000 captions at once, where ITM
# runs the transformer once per pair. So BLIP retrieves in two stages (`train_retrieval.py`): ITC
# shortlists each image's top k captions (k = 256 on COCO), ITM re-scores them (its match logit
# plus the ITC similarity). Here k = 8, on notebook 04's retrieval test (1,000 scenes).
#
# **Predict, then run:** how much can re-ranking gain, when ITC alone already finds the right
# caption first for about 98% of the images?

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.blip.evaluate import RERANK_K, rerank_retrieval

live_r = rerank_retrieval(model, 1000, seed=2, k=RERANK_K)
print(f"live, 1,000 scenes: image→text R@1 ITC {live_r['i2t_itc'].float().mean():.3f}, ITC top-{RERANK_K} "
      f"+ ITM {live_r['i2t_rerank'].float().mean():.3f}; text→image {live_r['t2i_itc'].float().mean():.3f} → "
      f"{live_r['t2i_rerank'].float().mean():.3f}")
print(f"test draws: image→text re-ranked {blip_entry.describe('i2t_rerank_r1')}; text→image ITC "
      f"{blip_entry.describe('t2i_attribute_r1')} → re-ranked {blip_entry.describe('t2i_rerank_r1')}")
expect("image→text recall@1 by ITC, attribute level (test draws)", blip_entry.estimate("i2t_attribute_r1"), "≥ 0.95", k_se=2)
clip_r1 = entry("clip_shapes_named").metrics["i2t_attribute_r1"]
print(f"(notebook 04's CLIP, clip_shapes_named: {clip_r1:.3f} on one draw of the same test)")

# %% [markdown]
# **Answer.** Little here: image→text R@1 moves from 0.984 to 0.986 on the test draws, text→image
# from 0.998 to 0.999: only ITC's few mistakes can be fixed. On COCO, where ITC errs far more,
# re-ranking matters more. BLIP's ITC trails 04's CLIP (0.984 over five draws, 0.995 on one);
# why is not tested.

# %% [markdown]
# ## 5. Hard negatives
#
# Random wrong pairs are easy ("a red circle" against a blue square). BLIP, after ALBEF (Li et
# al., 2021), picks ITM's negatives *hard*: for each caption, an image drawn from the softmax of ITC's similarities in the batch
# (for each image, a caption likewise). Four captions of a batch of 32 and their negatives:

# %%
from mmcourse.blip import hard_negative_weights, sample_hard_negatives

scenes = sample_scenes(32, seed=11, split="test", min_objects=1, max_objects=1)
with torch.no_grad():
    it = model.encode_image(scenes.images)
    sim = model.image_features(it) @ model.text_features(tok(scenes.captions)).T / model.temp
w_t2i, _ = hard_negative_weights(sim, content_ids(scenes.captions))
picked, _ = sample_hard_negatives(sim, content_ids(scenes.captions), torch.Generator().manual_seed(0))
show = [0, 1, 2, 3]
imgs = torch.cat([scenes.images[show], scenes.images[picked[show]]])
titles = [f"caption {j}: {scenes.captions[j]}" for j in show] + \
         [f"its negative (p = {w_t2i[j, picked[j]]:.2f})" for j in show]
fig = show_images(imgs, titles=titles, ncols=4, scale=2.2, title_width=26)
plt.show()
top2 = w_t2i.topk(2, dim=1).values
print(f"learned temperature {model.temp.item():.3f}: on average a caption's likeliest negative gets "
      f"p = {top2[:, 0].mean():.2f}, the next one {top2[:, 1].mean():.2f}")

# %% [markdown]
# Each mined negative differs from its caption in one word: the shape, the colour, the shape, the
# size. These four were near-certain draws (p = 1.00); over the batch, the trained temperature
# (0.006) gives on average 95% of a caption's probability to the most similar other image, 4% to
# the next: the softmax is nearly one-hot.
#
# ### Exercise 3: `negative_weights`
#
# Write the probabilities the sampler draws from. Input: similarities `sim_i2t` (B, B) (row =
# image, column = caption) and `content_ids` (B,), equal for pairs whose content is the same.
# Return `(w_t2i, w_i2t)`: row j of `w_t2i` is caption j's distribution over the images, row i of
# `w_i2t` image i's over the captions. Each is a softmax of the similarities with every pair of
# the *same content* left out (the true pair, and any duplicate of it); a row with nothing left
# is all zeros (no NaN).

# %%
import torch

from mmcourse.checks.blip import check_hard_negative_weights


def negative_weights(sim_i2t: torch.Tensor, content_ids: torch.Tensor):
    ### BEGIN SOLUTION
    same = content_ids[:, None] == content_ids[None, :]
    s = sim_i2t.float().masked_fill(same, float("-inf"))
    return s.T.softmax(dim=1).nan_to_num(0.0), s.softmax(dim=1).nan_to_num(0.0)
    ### END SOLUTION


check_hard_negative_weights(negative_weights)

# %% [markdown]
# Compare with the course's version. Which pairs to leave out matters:
#
# - BLIP's *pre-training* (`blip_pretrain.py`) masks **only the diagonal** (and adds 1e-4 to every
#   weight): in a batch with duplicates a "negative" is sometimes a true match, teaching ITM to
#   reject correct pairs. Its *retrieval fine-tuning* (`blip_retrieval.py`) counts pairs of the
#   same image id as extra ITC positives and never draws them as ITM negatives. We copy the ITM
#   half, by content; in ITC we leave duplicates out of the softmax instead of counting them as
#   positives (simpler; either way a duplicate is never pushed away).
# - The same-content mask brings its own failure: if every pair of a batch shares one content, a
#   row has no candidate and `torch.multinomial` fails on all-zero weights. `sample_hard_negatives`
#   returns −1 for such a row and `itm_loss` drops it, so ITM sees B true pairs and *up to* 2B
#   negatives per step.

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.blip import mask_failure_demo

show_source(hard_negative_weights)
dup = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3])          # pairs 8-11 repeat pairs 0-3
sim_dup = torch.randn(12, 12, generator=torch.Generator().manual_seed(0))
sim_dup[8:, :] = sim_dup[:4, :]
sim_dup[:, 8:] = sim_dup[:, :4]
demo = mask_failure_demo(sim_dup, dup, draws=200)
print(f"negatives that are really positives: diagonal mask only {demo['false_negative_rate_diagonal_only']:.1%}, "
      f"same-content mask {demo['false_negative_rate_masked']:.1%}")
print("a batch of one content without the fallback:", demo["error_without_fallback"])
expect("false negatives with the same-content mask", demo["false_negative_rate_masked"], "= 0")

# %% [markdown]
# Do hard negatives help? Two stored runs on the live run's mix (shorter than the shipped model's,
# ITM's loss counted once), ITM's negatives drawn at random or mined, measured as in section 4:

# %%
neg = load_results("blip_negatives")    # python -m bench.blip negatives
# each share is over the same 500 test scenes (seed 1); its ± counts a scene's changed captions as one
# item, an upper bound on the standard error
neg_est = {kind: {part: {key: binomial(neg[kind][part][key], 500) for key in ("itm", "itm_reject", "itm_accept")}
                  for part in ("single", "multi")} for kind in ("random", "hard")}
pct = lambda e: f"{e.value:.1%} ± {e.se:.1%}"
print(f"{neg['recipe']['steps']} steps of {neg['recipe']['batch_size']} scenes each, one seed per arm; final ITM loss: "
      f"random {neg['random']['final_itm_loss']:.2f}, mined {neg['hard']['final_itm_loss']:.2f}")
rows = [[kind, *(pct(neg_est[kind][part][key]) for key in ("itm", "itm_reject", "itm_accept") for part in ("single", "multi"))]
        for kind in ("random", "hard")]
display(Markdown(markdown_table(["ITM's negatives (n = 500 scenes)", "ranks true first, 1 obj.", "2–3 obj.",
                                 "rejects changed, 1 obj.", "2–3 obj.", "accepts true, 1 obj.", "2–3 obj."], rows)))
gap = difference(neg_est["random"]["multi"]["itm"], neg_est["hard"]["multi"]["itm"])
print(f"ranks true first, 2–3 objects, random minus mined: {100 * gap.value:+.1f} ± {100 * gap.se:.1f} points")

# %% [markdown]
# "Ranks true first": ITM scores the true caption above its one-word-changed copy. "Rejects
# changed" / "accepts true": it says "no match" to the changed caption / "match" to the true one.
#
# Trained on random negatives, ITM rarely met an *almost* right caption, so it calls a
# one-word-changed caption a match about as often as not. Mined negatives teach it to say no, at
# a price: it also rejects true captions (accepts 91.4% against 99.6% on one object, 75.8%
# against 100% on 2–3), gaps of many standard errors. Its ranking on 2–3 objects (80.8% against
# 83.5%) is within noise, one seed per arm. The shipped model, mined for 2,000 steps, accepts
# 99.8% and rejects 99.6% (section 4), but it differs in more than length (ITM counts twice, half
# of each batch holds one object, test draws), so whether the cost fades with training is not
# tested. The final ITM losses do not compare the arms: mined pairs are harder by design.

# %% [markdown]
# ## 6. CapFilt: a model that cleans its own data
#
# Web alt-text often says something the image does not show. BLIP's answer:
#
# 1. pretrain on the noisy pairs;
# 2. fine-tune two copies on a small clean set: a **captioner** (LM) and a **filter** (ITC + ITM);
# 3. the captioner writes a synthetic caption for every image (nucleus sampling, for variety);
#    the filter keeps an original or a synthetic caption only if ITM says it matches;
# 4. pretrain a new model on what is left, plus the clean set.
#
# A stored run: single-object scenes stand in for the web, some captions with one wrong colour or
# shape word; a few correctly captioned images are the clean set (BLIP used COCO). The pretrained
# models are measured on the test draws:

# %%
from mmcourse.protocol import share_of_gap

cf = load_results("blip_capfilt")    # python -m bench.blip capfilt
r = cf["recipe"]
at_threshold = cf["filter_by_threshold"][str(r["threshold"])]   # unrounded, so counts and tables agree
filt = {k: Estimate(**{**v, "value": at_threshold[k]}) for k, v in cf["filter"].items()}
models = {name: {k: Estimate(**v) for k, v in m.items()} for name, m in cf["models"].items()}
print(f"{r['n_images']:,} images, {r['noise']:.0%} corrupted, clean set {r['clean_share']:.0%}; pretraining "
      f"{r['steps']} steps of {r['batch_size']}, fine-tuning {r['finetune_steps']} steps; "
      f"{cf['seconds'] / 60:.0f} min on {cf['threads']} thread{'s' if cf['threads'] > 1 else ''}")
print(f"filter on its own run's web captions (not test draws): precision {filt['precision'].describe(0.9)} over the {filt['precision'].n:,} it "
      f"dropped; recall {filt['recall'].describe(0.9)} over the {filt['recall'].n:,} corrupted; kept {filt['kept'].value:.1%}")
print(f"synthetic captions right {cf['synthetic']['right']:.1%}; kept by the filter {cf['synthetic']['kept']:.1%}, "
      f"of which right {cf['synthetic']['right_among_kept']:.1%}")
n_clean = max(r["batch_size"], round(r["clean_share"] * r["n_images"]))
n_web, n_syn = round(filt["kept"].value * r["n_images"]), round(cf["synthetic"]["kept"] * r["n_images"])
print(f"captions right: noisy set {cf['noisy_set_right']:.1%}, bootstrapped set {cf['bootstrapped_set']['right']:.1%} "
      f"({cf['bootstrapped_set']['pairs']:,} pairs = {n_web:,} kept web + {n_syn:,} kept synthetic + {n_clean:,} clean, "
      f"the set the captioner and the filter were fine-tuned on)")
columns = {"zero_shot": "zero-shot (30 classes)", "i2t_attribute_r1": "image→text R@1",
           "caption_all_right": "greedy captions all right", "itm_one_word": "ITM one-word"}
rows = [[name, *(str(m[k]) for k in columns)] for name, m in models.items()]
noisy_m, boot_m, clean_m = (models[name] for name in ("noisy", "bootstrapped", "clean"))
points = lambda d: f"{100 * d.value:+.1f} ± {100 * d.se:.1f}"
rows += [["bootstrapped − noisy (points)", *(points(difference(boot_m[k], noisy_m[k])) for k in columns)],
         ["clean − noisy (points)", *(points(difference(clean_m[k], noisy_m[k])) for k in columns)],
         ["share of that gap bootstrapping recovers", *(f"{g.value:.0%} ± {g.se:.0%}" for g in
                                                        (share_of_gap(noisy_m[k], boot_m[k], clean_m[k]) for k in columns))]]
# the three models share the test scenes; the ± treat them as independent (share_of_gap: the delta method)
display(Markdown(markdown_table(["pretrained on (test draws, ± standard error)", *columns.values()], rows)))
zs = {k: models[k]["zero_shot"] for k in ("noisy", "bootstrapped", "clean")}
# of the web captions the filter keeps, how many are right? (the corrupted ones it misses are (1 - recall) of them)
corrupted_share = 1 - cf["noisy_set_right"]
kept_right = 1 - (1 - filt["recall"].value) * corrupted_share / filt["kept"].value
print(f"web captions right among those the filter keeps: {kept_right:.1%}")

# %% [markdown]
# "Clean" is an oracle: the same images, every caption right. The filter's precision and recall
# are measured on its run's own web captions, not on test draws, and that run's scale was raised
# until the filter passed: read them as optimistic. Our noise also suits the filter: web
# alt-text can miss the image in any way, ours changes one word, the very error ITM's mined
# negatives train it to reject. The threshold, 0.5, was fixed before the run.
#
# Pretrained on the bootstrapped set, a model recovers 81 ± 14% of the noisy–clean gap in
# zero-shot, 84 ± 11% in captions and 99 ± 1% in ITM; in image→text R@1 it is within noise of
# the noisy model (+0.5 ± 0.4 points).

# %% [markdown]
# Live: the shipped model (trained on clean captions) plays filter and captioner for 300
# single-object test scenes, 40% of their captions corrupted the same way, and for 300
# scenes of two or three objects. **Predict, then run:** on which will the filter miss more
# corrupted captions?

# %%
from mmcourse.blip import caption as write_captions
from mmcourse.blip import filter as itm_filter
from mmcourse.blip.bootstrap import corrupt_captions, filter_estimates
from mmcourse.blip.captions import content_key, parse_caption

multi_scenes = sample_scenes(300, seed=21, split="test", min_objects=2, max_objects=3)
noisy_multi, corrupted_multi = corrupt_captions(list(multi_scenes.captions), 0.4, seed=0)
quality_multi = filter_estimates(itm_filter(model, multi_scenes.images, noisy_multi, 0.5, tok)[0], corrupted_multi)
live_scenes = sample_scenes(300, seed=21, split="test", min_objects=1, max_objects=1)
noisy, corrupted = corrupt_captions(list(live_scenes.captions), 0.4, seed=0)
keep, probs = itm_filter(model, live_scenes.images, noisy, 0.5, tok)
quality = filter_estimates(keep, corrupted)
synthetic = write_captions(model, live_scenes.images, tok, method="nucleus", top_p=0.9,
                           generator=torch.Generator().manual_seed(0))
right = torch.tensor([content_key(parse_caption(s)) == content_key(parse_caption(t))
                      for s, t in zip(synthetic, live_scenes.captions)])
keep_syn, _ = itm_filter(model, live_scenes.images, synthetic, 0.5, tok)
print(f"2–3 objects: precision {quality_multi['precision']} over the {quality_multi['precision'].n} captions it dropped, "
      f"recall {quality_multi['recall']} over the {quality_multi['recall'].n} corrupted")
print(f"nucleus captions right {right.float().mean():.1%}; the filter keeps {keep_syn.float().mean():.1%} of them, "
      f"{right[keep_syn].float().mean():.1%} of those right")
for i in range(4):
    print(f"  web: {noisy[i]!r} {'(corrupted)' if corrupted[i] else ''} → p(match) {probs[i]:.2f}, "
          f"{'kept' if keep[i] else 'dropped'}\n  synthetic: {synthetic[i]!r}")
expect(f"1 object: filter precision over the {quality['precision'].n} captions it dropped", quality["precision"], "≥ 0.9")
expect(f"1 object: filter recall over the {quality['recall'].n} corrupted", quality["recall"], "≥ 0.9")

# %% [markdown]
# **Answer.** The two-to-three-object scenes. On single objects the shipped model finds every
# corrupted caption and drops almost nothing else; with two or three it stays precise but misses
# more than half (recall 0.45 ± 0.04): section 4's hard case, where ranking well did not make 0.5
# a reliable threshold.
#
# ## 7. Optional: real BLIP weights
#
# `from_hf_blip_captioner` loads transformers' BLIP captioner into `mmcourse.blip`, checking every
# key's name and shape. With its files (`MMCOURSE_BLIP_WEIGHTS`) the cell captions three photos.

# %%
from mmcourse.blip import from_hf_blip_captioner, greedy_decode

weights_dir = os.environ.get("MMCOURSE_BLIP_WEIGHTS", "")
if weights_dir and (Path(weights_dir) / "model.safetensors").exists():
    import skimage.data
    from safetensors.torch import load_file
    from transformers import BertTokenizer

    config = json.loads((Path(weights_dir) / "config.json").read_text())
    # BERT's tokenizer: [CLS] is id 101, BLIP's added [ENC] 30523 (transformers' config records neither)
    real = from_hf_blip_captioner(load_file(str(Path(weights_dir) / "model.safetensors")), config,
                                  cls_token_id=101, enc_token_id=30523)
    bert = BertTokenizer(str(Path(weights_dir) / "vocab.txt"))
    size = real.cfg.vision.img_size
    pixel_mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    pixel_std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    for name, photo in {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(),
                        "cat": skimage.data.chelsea()}.items():
        x = torch.tensor(photo[..., :3]).permute(2, 0, 1).float()[None] / 255
        x = (torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False) - pixel_mean) / pixel_std
        with torch.no_grad():   # greedy from [DEC] alone, to test the mapping (BLIP: prompt "a picture of ", 3 beams)
            ids = greedy_decode(real, real.encode_image(x), max_length=20)[0]
        print(f"{name:>10}: {bert.decode(ids[1:], skip_special_tokens=True)}")
else:
    print("Skipped. With internet: huggingface-cli download Salesforce/blip-image-captioning-base model.safetensors\n"
          "config.json vocab.txt --local-dir blip-base; then restart the kernel with MMCOURSE_BLIP_WEIGHTS=/path/to/blip-base.")

# %% [markdown]
# ## 8. What we measured
#
# Each target is measured with its standard error on *test draws*, fresh scenes from five seeds
# that no choice looked at (section 2 says why), and must hold by two standard errors. The last
# table gathers every target and claim.
#
# **ITM rejects wrong words on held-out pairs; the decoder cannot write the pair.** Scenes of the
# six held-out colour–shape pairs, which no training caption names, get a right caption only
# 0.20 ± 0.01 of the time, yet ITM tells their one-word changes apart 0.994 of the time. That test
# does not show composition: with one object, rejecting “blue cross” for a purple cross needs only
# the colour, “purple circle” only the shape. The decoder must write both: every wrong held-out
# caption of one draw kept the colour and wrote a shape seen with it (printed below).
#
# **Breadth does not fix it.** With the image encoder of 04's broad CLIP, which lifted CLIP's
# zero-shot on held-out pairs, held-out captions stay at 0.22 ± 0.01 (a stored run).
#
# **Left out.** BLIP's momentum distillation and its queue of 57,600 past features (ITC only):
# soft targets for web captions that fit an image they were not paired with. Sections 1–5 have
# exact captions; section 6's 40% corrupted pretraining is the case it was built for and might
# shrink the gap CapFilt closes (not tested). We leave it out to measure CapFilt alone, without a
# momentum copy of both towers.

# %%
from mmcourse.data.shapes import HELDOUT_COMBOS

est = {k: blip_entry.estimate(k) for k in blip_entry.errors}
# python -m bench.blip breadth: the shipped recipe with the image encoder from clip_shapes_broad
breadth = {k: Estimate(**v) for k, v in load_results("blip_breadth")["vit_init"]["clip_shapes_broad"].items()}
rows = [
    ["greedy captions, 1 object, every word right (target ≥ 0.95 by 2 SE)", blip_entry.describe("caption_single_all_right")],
    ["ITM, true over one-word-changed caption, 1 object (target ≥ 0.95)",
     f"{blip_entry.describe('itm_one_word_single')}; ITC {est['itc_one_word_single']}"],
    ["ITM minus ITC on one-word changes, 2–3 objects (paired)", f"{est['itm_minus_itc_one_word_multi']} "
     f"(ITM {est['itm_one_word_multi']}, ITC {est['itc_one_word_multi']})"],
    ["image→text R@1 (target ≥ 0.95): ITC / ITC top-8 + ITM re-ranking",
     f"{blip_entry.describe('i2t_attribute_r1')} / {est['i2t_rerank_r1']}"],
    ["held-out colour–shape pairs, 1 object: greedy captions all right / ITM one-word",
     f"{est['caption_heldout_all_right']} / {est['itm_one_word_heldout']}"],
    ["the same with the image encoder from 04's broad CLIP (stored, test draws)",
     f"{breadth['caption_heldout_all_right']} / {breadth['itm_one_word_heldout']}"],
    ["2–3 objects: greedy captions all right / shape right per object",
     f"{est['caption_multi_all_right']} / {est['caption_multi_shape']}"],
    ["ITM says “no match” to a one-word-changed caption / “match” to the true one, mined against random "
     "negatives (stored, 1 object, 600 equal steps, one seed each)",
     f"{pct(neg_est['hard']['single']['itm_reject'])} against {pct(neg_est['random']['single']['itm_reject'])} / "
     f"{pct(neg_est['hard']['single']['itm_accept'])} against {pct(neg_est['random']['single']['itm_accept'])}"],
    [f"CapFilt filter, precision / recall at threshold {r['threshold']} (its own training run's captions, not test draws)",
     f"{filt['precision'].describe(0.9)} / {filt['recall'].describe(0.9)}"],
    ["CapFilt, captions right in the training set: noisy / bootstrapped (stored)",
     f"{cf['noisy_set_right']:.1%} / {cf['bootstrapped_set']['right']:.1%}"],
    ["CapFilt, zero-shot: noisy / bootstrapped / clean (stored, test draws)",
     " / ".join(str(zs[k]) for k in ("noisy", "bootstrapped", "clean"))],
    ["training the shipped checkpoint, CPU time on one thread", f"{stored['train_cpu_seconds'] / 60:.1f} min"],
]
display(Markdown(markdown_table(["claim or course target", "measured (test draws ± standard error, unless stored)"], rows)))
held = sample_scenes(500, seed=1, split="heldout", min_objects=1, max_objects=1)
wrong = Counter()
for i, said in enumerate(generate_captions(model, held.images)):
    true, obj = scene_objects(held, i)[0], parse_caption(said)[0]
    words = " and ".join(a for a in ATTRIBUTES if obj[a] != true[a])
    if words:
        seen = (obj["colour"], obj["shape"]) not in HELDOUT_COMBOS
        wrong[f"{words} ({'a seen' if seen else 'a held-out'} pair written)"] += 1
print(f"held-out pairs, one draw of 500: greedy captions with a wrong word, by the words wrong: {dict(wrong)}")

# %% [markdown]
# The recipe's history: 1,500-step runs measured once on one draw of 500 test scenes, then the
# chosen recipe on the validation draws (one training run each).

# %%
rows = []
for name in ("plain 1-3 objects, equal weights", "single_share 0.5, equal weights", "single_share 0.5, ITM x2"):
    rm = recipe_runs[name]["metrics"]
    rows.append([f"{name}, 1,500 steps", f"{binomial(rm['caption_single_all_right'], 500)}",
                 f"{binomial(rm['caption_multi_all_right'], 500)}",
                 f"{100 * (rm['itm_one_word_multi'] - rm['itc_one_word_multi']):+.1f} (no ±)", "one draw, n = 500 scenes each"])
for name in ("1,500 steps", "2,000 steps (shipped)"):
    rows.append([f"single_share 0.5, ITM x2, {name}", str(val[name]["caption_single_all_right"]),
                 str(val[name]["caption_multi_all_right"]),
                 points(val[name]["itm_minus_itc_one_word_multi"]),
                 f"validation draws, n = {val[name]['caption_single_all_right'].n:,} / {val[name]['caption_multi_all_right'].n:,} scenes"])
display(Markdown(markdown_table(["recipe", "greedy captions all right, 1 object", "2–3 objects", "ITM − ITC on one-word changes, "
                                 "2–3 objects (points)", "measured on"], rows)))

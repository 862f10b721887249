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
# # 04 · CLIP: learning to match images and captions
#
# A classifier learns from labels: "this image is class 3". CLIP (Radford et al., 2021) learns
# from pairs of an image and the text that came with it, which are much cheaper to collect. It is
# a **two-tower** (双塔) model: an image encoder and a text encoder map their inputs into one
# shared space, and training pulls matching image–caption pairs together and pushes mismatched
# ones apart: **contrastive learning** (对比学习). Nobody labels the mismatches: in a batch of B
# pairs, the B matching pairs are the **positives** (正样本) and every other combination is a
# **negative** (负样本), an **in-batch negative** (批内负样本). After training, CLIP classifies
# images into classes it never saw as labels, **zero-shot** (零样本), by **retrieval** (检索):
# write each class as a sentence and pick the sentence closest to the image.
#
# The study notes make three claims, and this notebook measures each:
#
# 1. **Batch size.** Too few negatives train poorly; with few classes, a large batch fills up
#    with "negatives" that are really positives.
# 2. **Zero-shot is retrieval.** Each class description is a query; the image goes to the most
#    similar one.
# 3. **Breadth.** Zero-shot works because test concepts have close relatives in broad training
#    data.
#
# The course's targets: zero-shot accuracy ≥ 95% on colour–shape pairs seen in training and
# ≥ 80% on held-out pairs (broadly trained model), image→text recall@1 ≥ 90%. The data is
# ShapesWorld (notebook 00): 32×32 scenes with one shape and a caption such as *"a picture of a
# small red circle at the top left"*. Six colour–shape pairs (a red square, a green triangle, ...)
# never appear in training.
#
# ```mermaid
# flowchart LR
#     subgraph image tower
#         img["B images<br/>3 × 32 × 32"] --> vit["ViT of notebook 03<br/>class token"] --> ip["image_projection<br/>normalise"]
#     end
#     subgraph text tower
#         cap["B captions<br/>token ids"] --> tt["causal transformer<br/>end-of-text token"] --> tp["ln_final, text_projection<br/>normalise"]
#     end
#     ip --> sim["B × B cosine similarities<br/>divided by T"]
#     tp --> sim
#     sim --> loss["cross-entropy over rows and columns<br/>targets: the diagonal"]
# ```

# %%
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, Markdown, display

from mmcourse.checks.clip import expect
from mmcourse.clip.widgets import markdown_table
from mmcourse.viz import plot_history, setup_matplotlib, show_images, show_source
from mmcourse.vit.tasks import load_results

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Image–caption pairs
#
# `sample_pairs` draws scenes with their captions. Like real captions, ours sometimes leave out
# details: each drops the size with probability 0.4 and, independently, the position
# (`drop=0.4`, as for the shipped models; section 7 shows why it matters).

# %%
import textwrap

from mmcourse.clip.tasks import sample_pairs

pairs = sample_pairs(8, seed=0, drop=0.4)
fig = show_images(pairs.images, titles=[textwrap.fill(c, 22) for c in pairs.captions], ncols=4, scale=1.9)
plt.show()

# %% [markdown]
# ## 2. Text as tokens
#
# Real CLIP reads byte-pair pieces (49,408 of them). ShapesWorld needs only its own words, so
# `WordTokenizer` gives one token per word plus start, end and padding tokens (the end token has
# the largest id, as in OpenAI's CLIP). An unknown word raises an error naming the closest known
# words.

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.clip import WordTokenizer

tok = WordTokenizer()
print(tok, "| vocabulary:", " ".join(tok.words))
ids = tok(["a small red circle at the top left"])
print("ids:", ids[0].tolist())
print("decoded:", tok.decode(ids[0]))
try:
    tok("a small red cirle")
except ValueError as err:
    print("error:", err)

# %% [markdown]
# ## 3. Two towers
#
# | tower | network | output |
# |---|---|---|
# | image | the ViT of notebook 03, without its head | class token → `image_projection` |
# | text | a transformer with a **causal mask** (each token sees itself and earlier tokens) | end-of-text token, the one that has seen every word → `ln_final` → `text_projection` |
#
# Both outputs are normalised to unit length, so a dot product is a cosine similarity. The
# shared space is 64 wide here (512 in ViT-B/32, OpenAI's base model). The forward passes
# (`TextTransformer.forward??` shows the same in JupyterLab):

# %%
from mmcourse.clip import CLIP, TextTransformer

show_source(TextTransformer.forward)
show_source(CLIP.forward)

# %%
from mmcourse.clip.tasks import load_clip

named = load_clip("clip_shapes_named")  # the shipped model trained on named colours, see section 6
n_img = sum(p.numel() for p in named.visual.parameters()) + named.image_projection.numel()
n_txt = sum(p.numel() for p in named.text.parameters())
print(f"image tower {n_img:,} parameters, text tower {n_txt:,}, shared space of {named.cfg.embed_dim} dims")
with torch.no_grad():
    img, txt, scale = named(pairs.images, tok(pairs.captions))
print("image features", tuple(img.shape), "text features", tuple(txt.shape))
expect("largest |length - 1| of the features", (torch.cat([img, txt]).norm(dim=1) - 1).abs().max(), "≤ 1e-5",
       fmt=".1e")

# %% [markdown]
# ## 4. The similarity matrix of a batch
#
# For B pairs, the B×B matrix of cosine similarities has image i in row i and caption j in
# column j: B positives on the diagonal, B² − B in-batch negatives around them.

# %%
from mmcourse.clip.widgets import batch_matrix_diagram

batch_matrix_diagram(4)
plt.show()

# %% [markdown]
# The loss turns each row into a probability distribution over the captions with a softmax of
# `similarity / T`. The **temperature** T sets how sharp it is. CLIP learns T, stored as
# `logit_scale` = ln(1/T).
#
# **Predict, then run:** cosines lie in [−1, 1]. At T = 1, how much of its row can the right
# caption get?

# %%
from mmcourse.clip.widgets import similarity_explorer, temperature_comparison

learned_T = 1 / named.logit_scale.exp().item()
print(f"learned T = {learned_T:.3g} (logit_scale = {named.logit_scale.item():.2f}; starts at ln(1/0.07) = "
      f"{math.log(1 / 0.07):.2f}, clamped to at most ln 100 = {math.log(100):.2f})")
display(Image(temperature_comparison(named, (1.0, learned_T), seed=0).png, width=900))

# %% [markdown]
# The same cosines, divided by T. At T = 1 the right caption gets less than half of its row; at
# the learned T it gets everything. Explore: the **batch** slider draws other batches, the
# **temperature** slider (logarithmic, 0.01 to 1, starting at the learned T) sharpens or
# flattens each row.

# %%
similarity_explorer(named)

# %% [markdown]
# ## 5. The contrastive loss
#
# Each row of the scaled similarity matrix asks "which caption is mine?" (answer: the diagonal);
# each column asks the same of the images. The loss is the mean of the two cross-entropies, the
# **InfoNCE** loss:
#
# $$\mathcal{L} = \tfrac12\left[\mathrm{CE}(S, \mathrm{diag}) + \mathrm{CE}(S^\top, \mathrm{diag})\right],\qquad S = e^{s}\,\hat I\,\hat T^\top$$
#
# with $\hat I, \hat T$ the normalised features and $e^{s} = 1/T$, $s$ = `logit_scale`. A model that
# cannot tell pairs apart scores ln B; a perfect one approaches 0.
#
# ### Exercise 1: `contrastive_loss`
#
# Write the loss for features `image_features` (B, E) and `text_features` (B, E) that are *not*
# yet normalised, and the multiplier `scale` = exp(logit_scale) = 1/T (a number or a 0-d tensor,
# e.g. 1/0.07). Use `F.normalize` and `F.cross_entropy`; the targets are `torch.arange(B)`.

# %%
import torch
import torch.nn.functional as F

from mmcourse.checks import check_clip_loss


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, scale) -> torch.Tensor:
    ### BEGIN SOLUTION
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = scale * img @ txt.T
    labels = torch.arange(len(img))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    ### END SOLUTION


check_clip_loss(contrastive_loss)

# %% [markdown]
# Compare with the course's version, `mmcourse.clip.clip_loss`, which can also mask duplicate
# captions (section 9) and agrees with open_clip's `ClipLoss` to 1e-6. Random features score
# about ln B, and swapping the towers leaves the loss unchanged:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.clip import clip_loss

show_source(clip_loss)
g = torch.Generator().manual_seed(0)
a, b = torch.randn(256, 64, generator=g), torch.randn(256, 64, generator=g)
expect("random features, B = 256: |loss - ln B|", abs(clip_loss(a, b, 1.0).item() - math.log(256)), "< 0.1", fmt=".2f")
expect("|loss(a, b) - loss(b, a)|", (clip_loss(a, b, 20.0) - clip_loss(b, a, 20.0)).abs(), "≤ 1e-5", fmt="bound")

# %% [markdown]
# ## 6. Training
#
# `train_clip` draws a fresh batch at every step (`fit` from notebook 00: AdamW, warm-up, cosine
# decay) and clamps `logit_scale` to at most ln 100, as open_clip does. Two details matter at
# this size: the towers start from OpenAI's initialisation (weights of std width^-½), and the
# gradient norm is clipped to 0.1 (`grad_clip`), for a reason the loss curve below shows.
#
# The live run: 120 steps of 64 pairs (its progress bar shows how long it takes on your machine);
# stored runs of 200 steps of 128 follow it. Afterwards we measure zero-shot accuracy over the 30
# colour–shape classes (chance 3.3%; section 7) and image→text **recall@1**, the share of images
# whose most similar caption among 1,000 describes them (chance about 0.3%; section 8).
#
# **Predict, then run:** chance level is ln 64 ≈ 4.16. Where will the loss be after 120 steps,
# and will the model beat chance at zero-shot classification by much?

# %%
from mmcourse.clip.tasks import retrieval_recall, train_clip, zero_shot_accuracy

LIVE = dict(steps=120, batch_size=64, lr=1e-3, drop=0.4, seed=0)  # the stored runs below: 200 steps of 128
live, live_history = train_clip("named", desc="live CLIP run", **LIVE)
live_zs, live_recall = zero_shot_accuracy(live), retrieval_recall(live)
B, chance = LIVE["batch_size"], math.log(LIVE["batch_size"])
print(f"final loss {live_history.final(20):.2f} (chance: ln {B} = {chance:.2f}) | zero-shot, seen combinations "
      f"{live_zs['seen']:.1%} | image→text recall@1 {live_recall['i2t_attribute_r1']:.1%}")
expect(f"ln {B} minus the final loss", chance - live_history.final(20), "> 1", fmt=".2f")
expect("zero-shot accuracy, seen combinations (3 × chance = 0.10)", live_zs["seen"], "> 0.1")

# %% [markdown]
# The loss ends more than one nat below chance (printed above), and zero-shot accuracy is several
# times chance (1 in 30, 3.3%) yet still low: 120 steps of 64 teach the towers only the coarsest
# attributes, and image→text recall@1 among 1,000 captions is barely started.
#
# Beside it, two stored runs with twice the batch for 200 steps (over three times the live run's
# pairs; otherwise the same recipe): one with the gradient clip, one without:

# %%
from mmcourse.clip.tasks import GRAD_CLIP
from mmcourse.train import History

stored_runs = {r["grad_clip"]: r for r in load_results("clip_batch_sweep")["grad_clip"]}
fig, (ax_live, ax) = plt.subplots(1, 2, figsize=(9, 3.2))
plot_history(live_history, title=f"live run, batch {B} (lines: mean of 20 steps)", ax=ax_live,
             label=f"grad_clip = {GRAD_CLIP}")
ax_live.axhline(chance, color="grey", ls="--", lw=1, label=f"ln {B}: chance")
ax_live.legend(fontsize=8)
title = "stored runs, batch 128"
for clip, label in ((GRAD_CLIP, f"grad_clip = {GRAD_CLIP}"), (None, "no clipping")):
    plot_history(History(loss=stored_runs[clip]["loss"]), title=title, ax=ax, label=label)
ax.axhline(math.log(128), color="grey", ls="--", lw=1, label="ln 128: chance")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
full = stored_runs[GRAD_CLIP]
print(f"stored run, {full['steps']} steps with the clip: final loss {full['final_loss']:.2f} | zero-shot, seen "
      f"combinations {full['zero_shot_seen']:.1%} | image→text recall@1 {full['i2t_attribute_r1']:.1%}")

# %%
# NBVAL_CHECK_OUTPUT
plateau = np.abs(np.array(stored_runs[None]["loss"][20:60]) - math.log(128)).max()
expect("unclipped run, steps 20-60: largest |loss - ln 128|", plateau, "< 0.1", fmt=".2f")

# %% [markdown]
# Every run starts above its chance level: at the initial scale 1/0.07 ≈ 14, random features are
# confidently wrong. Without the clip, the stored run then sits at exactly ln 128 (all features
# alike, tiny gradients, and Adam's step sizes still scaled by the large gradients of the first
# steps) until about step 70; with it, the loss never stops falling, and the clipped run's larger
# batches and longer training take it beyond the live run in zero-shot accuracy and recall.
#
# The shipped checkpoints were trained the same way for 2,000 steps of 256 pairs (20 times the
# stored runs' pairs): `clip_shapes_named` on named colours, `clip_shapes_broad` on the broad data of
# section 10.

# %%
curves = load_results("clip_training_curves")
fig, ax = plt.subplots(figsize=(5, 3))
for name, c in curves.items():
    ax.plot(c["step"], c["loss"], label=f"{name} ({c['train_seconds'] / 60:.1f} min)")
ax.axhline(math.log(256), color="grey", ls="--", lw=1, label="ln 256: chance")
ax.set_xlabel("step")
ax.set_ylabel("loss (mean of 50 steps)")
ax.set_title("shipped checkpoints, batch 256")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 7. Zero-shot classification is retrieval
#
# To classify without class labels, write each of the 30 colour × shape classes as text ("a red
# circle"), embed it, and give the image the most similar class: the class descriptions are the
# queries of a tiny search engine. One wording per class is fragile, so CLIP embeds each class in
# many **templates** ("a picture of {}", "{} at the top left", ...) and averages them: **prompt
# ensembling**. Normalise each template's embedding first (one vote per wording), average,
# normalise again.
#
# ### Exercise 2: `zero_shot_weights`
#
# Given `encode_text` (a list of N strings → an (N, D) tensor of unnormalised features), class
# names and templates with one `{}`, return the (D, C) matrix whose column c is class c's
# ensembled embedding, so that `image_features @ weights` scores every class.

# %%
import torch
import torch.nn.functional as F

from mmcourse.checks import check_build_zero_shot_weights


def zero_shot_weights(encode_text, classnames, templates) -> torch.Tensor:
    ### BEGIN SOLUTION
    texts = [t.format(c) for c in classnames for t in templates]
    feats = F.normalize(encode_text(texts), dim=-1).reshape(len(classnames), len(templates), -1)
    return F.normalize(feats.mean(dim=1), dim=-1).T
    ### END SOLUTION


check_build_zero_shot_weights(zero_shot_weights)

# %% [markdown]
# Four template sets, from the bare class name to 49 prompts that mention every position (so
# that their average forgets the position).
#
# **Predict, then run:** will 49 prompts beat the bare class name by much?

# %%
from mmcourse.clip import shapes_classnames, shapes_templates, zero_shot_classifier
from mmcourse.clip.tasks import zero_shot_accuracies

classes = shapes_classnames()
kinds = ("bare", "one template", "scene", "ensemble")
template_table = zero_shot_accuracies(named, kinds)  # zero_shot_accuracy for each set, the images encoded once
display(Markdown(markdown_table(
    ["templates", "count", "example", "zero-shot, seen pairs", "held-out pairs"],
    [[k, len(shapes_templates(k)), f"`{shapes_templates(k)[len(shapes_templates(k)) // 2]}`",
      f"{a['seen']:.1%}", f"{a['heldout']:.1%}"] for k, a in template_table.items()])))

# %% [markdown]
# Takeaway: every set scores about the same here. Real class names are ambiguous ("crane",
# "boxer") and real captions come in countless styles, which is why ensembling gained several
# points on ImageNet; ShapesWorld's names are never ambiguous and its captions come in five
# wordings.
#
# Some test images with the model's top three classes; the held-out pairs (bottom row) never
# occurred in training, neither in an image nor in a caption.

# %%
from mmcourse.clip import short_name, zero_shot_probs

weights = zero_shot_classifier(named, classes, shapes_templates("ensemble"))
demo = {"seen pairs": sample_pairs(6, seed=11, split="test"),
        "held-out pairs": sample_pairs(6, seed=11, split="heldout")}
fig, axes = plt.subplots(2, 6, figsize=(10, 5))
for row, (kind, p) in zip(axes, demo.items()):
    probs = zero_shot_probs(named, p.images, weights)  # (6, 30): softmax of exp(logit_scale) x cosine
    for ax, im, pr in zip(row, p.images, probs):
        top = pr.topk(3)
        ax.imshow(im.permute(1, 2, 0))
        ax.set_title("\n".join(f"{short_name(classes[i])} {v:.2f}" for v, i in zip(top.values.tolist(), top.indices.tolist())),
                     fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(kind, fontsize=10, labelpad=8)
fig.tight_layout(h_pad=2.5)
fig.subplots_adjust(left=0.05)  # room for the row labels
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
zs_named = template_table["ensemble"]
expect("named model, 49-prompt ensemble: zero-shot accuracy on seen pairs", zs_named["seen"], "≥ 0.95", fmt=".2f")

# %% [markdown]
# **Why captions with missing details matter.** The prompt "a red circle" names neither size nor
# position. A model trained only on complete captions never reads such a sentence, and matches a
# caption to an image only when all four attributes agree. Two stored runs of 600 steps of 256,
# with complete captions and with details left out (p = 0.4):

# %%
sweep = load_results("clip_batch_sweep")
display(Markdown(markdown_table(
    ["captions", "zero-shot seen, prompt '{}'", "49-prompt ensemble", "image→text R@1"],
    [["complete" if r["drop"] == 0 else f"details left out, p = {r['drop']}", f"{r['zero_shot_seen_bare']:.1%}",
      f"{r['zero_shot_seen_ensemble']:.1%}", f"{r['i2t_attribute_r1']:.1%}"] for r in sweep["detail"]])))

# %% [markdown]
# Takeaway: partial captions raise zero-shot accuracy from about 40% to about 70% at a small cost
# in retrieval; they teach the text tower what "a red circle" means on its own, as real web
# captions, which leave out most of a picture, do.
#
# ## 8. Retrieval, measured with care
#
# For each of 1,000 test images, rank the 1,000 test captions (complete ones); recall@k is the
# share of images with a correct caption among their k best. Many captions say the same thing in
# different words ("there is a small red circle at the top", "a picture of a small red circle at
# the top"), so two recalls: **strict** (only the image's own caption counts) and **attribute**
# (any caption with the same shape, colour, size and position counts).

# %%
# NBVAL_CHECK_OUTPUT
recall = retrieval_recall(named, n=1000)
display(Markdown(markdown_table(
    ["counts as correct", "image→text R@1", "R@5", "text→image R@1", "R@5"],
    [[kind] + [f"{recall[f'{d}_{kind}_r{k}']:.1%}" for d in ("i2t", "t2i") for k in (1, 5)]
     for kind in ("strict", "attribute")])))
expect("image→text recall@1, attribute level", recall["i2t_attribute_r1"], "≥ 0.90", fmt=".2f")

# %% [markdown]
# Is 39% strict recall@1 a failure? No model can know which wording an image's own caption
# used. If m captions share image i's content (its own included), a perfect model ranks those m
# first in an order unrelated to the wording, and its own caption comes first with probability
# 1/m. The ceiling is the **mean of 1/m over the images**. That is not 1/mean(m): 1/m is convex,
# so by Jensen's inequality the mean of 1/m is larger, and images with few look-alikes (m = 1
# or 2) pull it up. The next cell computes both from the content counts of the test captions:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.clip.tasks import strict_recall_ceiling

show_source(strict_recall_ceiling)
ceiling = strict_recall_ceiling(n=1000)
print(f"captions sharing an image's content: mean m = {ceiling['mean_m']:.2f}, so 1 / mean(m) = "
      f"{ceiling['one_over_mean_m']:.1%}")
print(f"ceiling of strict recall@1 = mean of 1/m = {ceiling['r1']:.1%}; "
      f"of strict recall@5 = mean of min(1, 5/m) = {ceiling['r5']:.1%}")

# %%
expect("strict image→text recall@1 as a share of its ceiling", recall["i2t_strict_r1"] / ceiling["r1"], "≥ 0.9",
       fmt=".2f")
expect("strict image→text recall@5 as a share of its ceiling", recall["i2t_strict_r5"] / ceiling["r5"], "≥ 0.9",
       fmt=".2f")

# %% [markdown]
# Takeaway: the model sits at the ceiling; the strict number measures the captions, not the model.
#
# ### Search it yourself
#
# Type a query (ShapesWorld's words only; a typo shows the nearest known words) to see the
# closest of 1,000 test images, or pick an image to see its closest captions.

# %%
from mmcourse.clip.widgets import build_bank, retrieval_explorer

bank = build_bank(named, n=1000)
retrieval_explorer(named, bank)

# %% [markdown]
# ## 9. The batch-size claims
#
# ### (a) Too few negatives
#
# With B pairs per batch, each image meets B − 1 wrong captions. In a batch of 4 they almost
# always differ in several attributes, so crude features suffice; only a big batch regularly
# holds a caption that differs in the shape alone. To change *only* the number of negatives, the
# loss can be computed within groups of the batch (`negatives_group`): the same pairs, the same
# steps, the same gradient count, but each pair meets group − 1 negatives.
#
# The stored sweep (`python -m bench clip`) does exactly that: batches of 256 for 512 steps, the
# loss computed within groups of 4 to 256, so each pair meets 3 to 255 negatives. A second sweep
# trains one batch size from 4 to 256 at an equal number of pairs seen (65,536: 16,384 steps of
# 4 ... 256 steps of 256). One seed per row.
#
# **Predict, then look:** same data and steps, only the negatives change. How much does
# image→text recall@1 gain from 3 to 255 negatives per pair, and does zero-shot accuracy gain as
# much?

# %%
neg, grp = sweep["negatives"], sweep["groups"]
display(Markdown(markdown_table(
    ["negatives per pair (stored, 512 steps of 256)", "zero-shot, seen pairs", "held-out pairs", "image→text R@1"],
    [[r["negatives"], f"{r['zero_shot_seen']:.1%}", f"{r['zero_shot_heldout']:.1%}", f"{r['i2t_attribute_r1']:.1%}"]
     for r in grp])))
display(Markdown(markdown_table(
    ["batch (equal pairs seen)", "steps", "zero-shot, seen pairs", "held-out pairs", "image→text R@1"],
    [[r["batch_size"], f"{r['steps']:,}", f"{r['zero_shot_seen']:.1%}", f"{r['zero_shot_heldout']:.1%}",
      f"{r['i2t_attribute_r1']:.1%}"] for r in neg])))
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, rows, key in ((axes[0], grp, "negatives"), (axes[1], neg, "batch_size")):
    xs = [r[key] for r in rows]
    ax.plot(xs, [r["i2t_attribute_r1"] for r in rows], "o-", label="image→text recall@1")
    ax.plot(xs, [r["zero_shot_seen"] for r in rows], "s-", label="zero-shot top-1, seen pairs")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
axes[0].set_xlabel("negatives per pair (same data and steps)")
axes[1].set_xlabel("batch size (equal pairs seen)")
axes[0].set_title("only the negatives change", fontsize=9)
axes[1].set_title("batch size at equal pairs seen", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Takeaways:
#
# - **Only the negatives change:** recall@1 roughly doubles from 3 to 63 negatives and then
#   levels off; zero-shot accuracy gains less. Telling 30 classes apart needs fewer hard
#   negatives than matching the full caption with its size and position.
# - **Equal pairs seen:** batches of 4 and 8 retrieve badly although they took many more steps;
#   256 is undertrained after its 256 steps. At a fixed budget, batch size trades negatives
#   against updates. (Zero-shot at batch 8 is a one-seed outlier.)
#
# The same comparison at section 6's recipe (200 steps of 128, one seed each): the clipped stored
# run (127 negatives) against one trained with groups of 4 (3 negatives). To retrain the
# 3-negatives run here, set `RETRAIN_FEW = True` (over three times as long as the live run of
# section 6); the ratio is then checked against its target, otherwise it is the stored runs'
# value.

# %%
RETRAIN_FEW = False  # True: retrain the 3-negatives run instead of reading the stored one
few = sweep["few_negatives"][0]  # stored: as the clipped run of section 6 (200 steps of 128), loss within groups of 4
if RETRAIN_FEW:
    few_model, few_history = train_clip("named", steps=few["steps"], batch_size=few["batch_size"], lr=LIVE["lr"],
                                        drop=LIVE["drop"], seed=few["seed"], negatives_group=few["group"],
                                        desc="CLIP run, 3 negatives per pair")
    few = {**few, **{f"zero_shot_{k}": v for k, v in zero_shot_accuracy(few_model).items()},
           "i2t_attribute_r1": retrieval_recall(few_model)["i2t_attribute_r1"], "final_loss": few_history.final(20)}
    plot_history(few_history, title=f"3 negatives per pair (chance: ln {few['group']})")
    plt.show()
display(Markdown(markdown_table(
    [f"negatives per pair ({full['steps']} steps of {full['batch_size']})", "run", "zero-shot, seen pairs",
     "held-out pairs", "image→text R@1"],
    [[n, run, f"{r['zero_shot_seen']:.1%}", f"{r['zero_shot_heldout']:.1%}", f"{r['i2t_attribute_r1']:.1%}"]
     for n, run, r in ((few["negatives"], "live" if RETRAIN_FEW else "stored", few),
                       (full["batch_size"] - 1, "stored", full))])))
ratio = full["i2t_attribute_r1"] / few["i2t_attribute_r1"]
if RETRAIN_FEW:
    expect("recall@1 with 127 negatives divided by recall@1 with 3 (live)", ratio, "> 1.5", fmt=".1f")
else:
    print(f"recall@1 with 127 negatives divided by recall@1 with 3: {ratio:.1f} (stored runs)")

# %% [markdown]
# At this short recipe recall@1 doubles as well, but zero-shot accuracy comes out about the same
# with 3 negatives as with 127, on the seen and the held-out pairs alike. Each number is one run
# on 600 test images, so a point or two is within noise (a standard error of about 1.8 points at
# these accuracies); after 200 steps both runs are far from trained. The 512-step sweep above,
# not this one pair, carries the claim.
#
# ### (b) Negatives that are not negative
#
# With few classes, copies of the same caption meet in one batch. With the 24 captions "a red
# circle", "an orange cross", ..., another pair has the positive's caption with probability
# about 1/24, so an image meets about (B − 1)/24 false negatives. An image whose caption occurs m
# times cannot give the right copy more than 1/m of its softmax: its loss is at least ln m.
# `clip_loss(..., caption_ids=...)` masks the copies. Counting them needs no training:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.clip.tasks import duplicate_shares

live_dups = {B: duplicate_shares(B, batches=20, seed=100) for B in (4, 16, 64, 256)}  # 20 random batches each
display(Markdown(markdown_table(
    ["batch", "share of negatives that are copies", "copies per image", "images with a copy"],
    [[B, f"{v['share']:.3f}", f"{v['per_row']:.2f}", f"{v['rows_hit']:.0%}"] for B, v in live_dups.items()])))
expect("largest |share - 1/24| for batches of 16 to 256",
       max(abs(v["share"] - 1 / 24) for B, v in live_dups.items() if B >= 16), "< 0.02", fmt=".3f")

# %% [markdown]
# What the copies do to training, and what masking them changes (stored: 512 steps per run,
# three seeds, zero-shot with the training captions as prompts):

# %%
dup = sweep["duplicates"]
display(Markdown(markdown_table(
    ["batch", "copies per image", "loss floor", "final loss, plain", "masked", "zero-shot, plain", "masked"],
    [[r["batch_size"], f"{r['dup_per_row']:.2f}", f"{r['dup_loss_floor']:.2f}", f"{r['plain_final_loss']:.2f}",
      f"{r['masked_final_loss']:.2f}", f"{r['plain_seen']:.1%}", f"{r['masked_seen']:.1%}"] for r in dup])))
fig, ax = plt.subplots(figsize=(4.8, 3))
bd = [r["batch_size"] for r in dup]
ax.plot(bd, [r["dup_loss_floor"] for r in dup], "k--", label="floor of the unmasked loss")
ax.plot(bd, [r["plain_final_loss"] for r in dup], "o-", label="final loss, plain")
ax.plot(bd, [r["masked_final_loss"] for r in dup], "s-", label="final loss, duplicates masked")
ax.set_xscale("log", base=2)
ax.set_xticks(bd, [str(b) for b in bd])
ax.set_xlabel("batch size")
ax.set_ylabel("contrastive loss")
ax.set_title("24 distinct captions", fontsize=9)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Takeaways:
#
# - The copies put a floor under the plain loss that rises with the batch, and at batch 256 the
#   plain loss ends just above it: almost all it still "complains" about is copies of the right
#   answer. Masking removes the floor.
# - Accuracy hardly moves (within the spread between seeds), except at batch 4, where masking
#   takes away part of the only three negatives. Here the copies are *identical* captions, so
#   the push from the copy and the pull to the own caption act on the same text vector and
#   cancel. Real false negatives are paraphrases ("a dog", "a puppy") with different embeddings,
#   which the loss really does push apart.
#
# ## 10. Breadth: why zero-shot works
#
# Every colour and every shape occurs in training, only not in the held-out combinations. With
# the six named colours alone, each shape comes in four or five fixed colours, and "the red
# thing" is probably a circle. The second checkpoint, `clip_shapes_broad`, saw as many pairs, half
# of them in random colours (captioned with the nearest colour name or with none), so a shape
# must be recognised by its outline. Both are tested on the same images in the exact colours.
#
# **Predict, then run:** how many points does broad training add on the held-out pairs?

# %%
broad = load_clip("clip_shapes_broad")
zs_broad = zero_shot_accuracy(broad, "ensemble")
shipped = {"named": zs_named, "broad": zs_broad}
seeds = {d: {split: [shipped[d][split]] + [r[f"zero_shot_{split}"] for r in sweep["breadth"] if r["data"] == d]
             for split in ("seen", "heldout")} for d in shipped}  # seed 0 = the shipped model, seeds 1-3 stored
runs = {d: v["heldout"] for d, v in seeds.items()}
display(Markdown(markdown_table(
    ["training data", "shipped: seen pairs", "shipped: held-out", f"held-out, seeds 0-{len(runs['named']) - 1}", "mean", "lowest"],
    [[d, f"{shipped[d]['seen']:.1%}", f"{shipped[d]['heldout']:.1%}", "  ".join(f"{h:.0%}" for h in held),
      f"{np.mean(held):.1%}", f"{min(held):.1%}"] for d, held in runs.items()])))

fig, ax = plt.subplots(figsize=(5, 3))
for k, (d, label) in enumerate((("named", "named colours only"), ("broad", "broad colour variety"))):
    for x, split in enumerate(("seen", "heldout")):
        values = seeds[d][split]
        pos = x + (k - 0.5) * 0.4
        ax.bar(pos, np.mean(values), 0.36, color=f"C{k}", alpha=0.6, label=label if x == 0 else None)
        ax.plot([pos] * len(values), values, "o", color=f"C{k}", ms=3.5)
        ax.text(pos, np.mean(values) + 0.03, f"{np.mean(values):.2f}", ha="center", fontsize=8)
ax.axhline(1 / 30, color="grey", ls="--", lw=1, label="chance (1/30)")
ax.set_xticks([0, 1], ["seen pairs", "held-out pairs"])
ax.set_ylabel("zero-shot top-1")
ax.set_ylim(0, 1.2)
ax.set_title(f"bars: mean of {len(runs['named'])} seeds; dots: single seeds", fontsize=8)
ax.legend(fontsize=8, loc="upper right", ncols=3)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
expect("shipped broad model, zero-shot accuracy on held-out pairs", zs_broad["heldout"], "≥ 0.80", fmt=".2f")
expect("mean over seeds, held-out pairs: broad minus named", np.mean(runs["broad"]) - np.mean(runs["named"]), "> 0",
       fmt=".2f")
# The shipped pair on the test protocol (1,000 scenes from seeds no choice looked at), as stored in
# the checkpoint registry; the table above is one evaluation draw of 600.
from mmcourse.weights import entry

for name in ("clip_shapes_named", "clip_shapes_broad"):
    print(f"{name:17s} zero-shot, seen pairs {entry(name).describe('zero_shot_seen')}"
          f" | held-out pairs {entry(name).describe('zero_shot_heldout')}"
          f" | image→text R@1 {entry(name).describe('i2t_attribute_r1')}")

# %% [markdown]
# Takeaways:
#
# - Broad colour variety helps CLIP too, and makes it dependable: its worst seed stays close to
#   the mean, while named-only seeds spread widely. One pair of runs would have told a shakier
#   story.
# - The gain is much smaller than for notebook 03's shape classifier (75% → 96.5% on the same
#   held-out pairs). A likely reason: captions name colour and shape as separate words, and the
#   loss must rank "a red circle" above "a red cross" and "a blue circle" for the same image, so
#   both towers must encode colour and shape separately. The classifier is only asked for the
#   shape, and nothing stops it from using colour as a shortcut. Every caption names several
#   attributes at once: language supervision is itself a kind of breadth. The held-out "red
#   square" has close relatives in training (every red object, every square), and the model
#   reaches it by combining them.

# %% [markdown]
# ## 11. Optional: real CLIP weights
#
# `from_hf_clip` maps the weights of transformers' `CLIPModel` onto `mmcourse.clip` (fused q, k,
# v; transposed projections; QuickGELU; the image tower's pre-LayerNorm), renaming, counting and
# shape-checking every key, or failing loudly. With the real ViT-B/32 weights on disk, the cell
# classifies scikit-image's sample photos zero-shot with OpenAI's byte-pair tokenizer; without
# them it explains how to get them.

# %%
from mmcourse.clip import zero_shot_classifier, zero_shot_probs
from mmcourse.clip.convert import load_hf_clip_file, openai_preprocess, openai_tokenizer

weights_file = os.environ.get("MMCOURSE_CLIP_WEIGHTS", "")
if weights_file and Path(weights_file).exists():
    import skimage.data

    real = load_hf_clip_file(weights_file)
    photos = {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(),
              "cat": skimage.data.chelsea(), "rocket": skimage.data.rocket()}
    labels = ["an astronaut", "a cup of coffee", "a cat", "a rocket", "a dog", "a horse", "a bicycle", "a car"]
    bpe = openai_tokenizer()
    with torch.no_grad():
        w = zero_shot_classifier(real, labels, ["a photo of {}.", "a picture of {}."], tokenizer=bpe)
        probs = zero_shot_probs(real, torch.stack([openai_preprocess(p) for p in photos.values()]), w)
    for name, pr in zip(photos, probs):
        print(f"{name:>10}: " + ", ".join(f"{labels[i]} {v:.2f}" for v, i in zip(*pr.topk(3))))
else:
    print("Skipped: set MMCOURSE_CLIP_WEIGHTS to a transformers CLIP model.safetensors to run this cell.\n"
          "On a machine with internet: huggingface-cli download openai/clip-vit-base-patch32 model.safetensors\n"
          "then copy the file here and restart the kernel with MMCOURSE_CLIP_WEIGHTS=/path/to/model.safetensors.")

# %% [markdown]
# ## 12. What we measured
#
# | claim or course target | measured |
# |---|---|
# | zero-shot top-1 over 30 classes, seen pairs (target ≥ 0.95) | 0.990 ± 0.003 named-only model, 0.978 ± 0.005 broad model (test protocol) |
# | zero-shot top-1, held-out pairs (target ≥ 0.80, broad model) | **0.906 ± 0.009** broad, 0.797 ± 0.013 named-only (test protocol); mean of four seeds 90.4% against 78.4% |
# | image→text recall@1 (target ≥ 0.90) | 0.995 ± 0.001 named-only, 0.987 ± 0.002 broad at the attribute level (test protocol); strict 39.2% against a ceiling of 39.4% (mean of 1/m, 1,000 test captions) |
# | too few negatives train poorly | same data and steps: 3 → 255 negatives lift recall@1 from 41% to 80% (512 steps of 256), 3 → 127 double it, 3.8% → 7.6% (200 steps of 128); stored runs |
# | too many duplicates with few classes | copies per image 0.1 → 10.6 from batch 4 to 256; loss floor 2.41 at 256; accuracy barely moved by masking |
# | zero-shot is retrieval | 30 class descriptions as queries; four template sets score alike |
# | breadth makes zero-shot work | held-out accuracy 78.4% (named colours) → 90.4% (broad), four seeds; smaller than the classifier's 75% → 96.5%, since captions already name colour and shape separately |
#
# Two things made training in minutes possible: OpenAI's initialisation with a gradient clip of
# 0.1 (section 6), and captions that sometimes leave out details (section 7).
#
# Next: **05 · BLIP**, which adds a text *generator* on top of an image–text matcher like this one.

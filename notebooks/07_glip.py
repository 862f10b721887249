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
# # 07 · GLIP: object detection as phrase grounding
#
# A detector finds objects and names each from a fixed list of classes. **Phrase grounding**
# (短语定位) finds, for each phrase of a sentence, the region it talks about. GLIP (Li et al.,
# 2022, "Grounded Language-Image Pre-training") makes the first a special case of the second:
# write the class list as a sentence, "circle. square. triangle. diamond. cross.", and detecting
# a circle means grounding the word *circle*. The classifier's fixed weights become the features
# of the prompt's words, so one model can be asked for classes, attributes ("red circle") or the
# phrases of a free caption.
#
# Four claims, each measured on ShapesWorld scenes (64 × 64 pixels, 1–4 objects):
#
# 1. **Detection cast as grounding.** A region–word alignment score replaces the classifier; the
#    targets come from the character spans of the prompt's phrases. Shape names reach AP50 at the
#    ceiling; whether grounding costs anything against a fixed-class head is not measured here.
# 2. **Deep fusion.** Image and text attend to each other *before* they are compared, so the
#    words can change what the image side looks for (here it helped in two of three runs).
# 3. **Zero-shot needs phrase features that compose.** Used as they are, CLIP's phrase features
#    (notebook 04) find colour–shape pairs never seen in training (AP50 0.99); through GLIP's
#    learned projection they do not (0.40); a random, frozen causal token transformer barely
#    does (0.50; chance 0.38).
# 4. **Grounding data teach what detection data cannot.** Trained on class names alone, a
#    detector does not learn attribute words; captions teach them.
#
# Stored numbers come from the test draws (five seeds of 100 scenes, used after every choice was
# made), ± one standard error over draws (over phrases for caption accuracy); a checkpoint is one
# training run.
#
# ```mermaid
# flowchart LR
#     img["image<br/>3 × 64 × 64"] --> cnn["small CNN<br/>16 × 16 grid, stride 4"]
#     txt["prompt<br/>red circle. square."] --> tt["CLIP text tower of 04, frozen<br/>one embedding per phrase"]
#     cnn --> fuse["deep fusion ×2<br/>image ⇄ text cross-attention"]
#     tt --> fuse
#     fuse --> head["dense head per location<br/>box l, t, r, b · centerness · region feature O"]
#     tt --> P["phrase embeddings P<br/>one row per token"]
#     head --> S["alignment S = O Pᵀ / τ + b<br/>N locations × M tokens"]
#     P --> S
# ```

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.glip import expect
from mmcourse.viz import plot_history, setup_matplotlib, show_source

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. From classification to grounding
#
# A dense detector predicts at every location of a feature grid a box, a **centerness** (how
# central the location is) and a class score. FCOS (Tian et al., 2019) predicts the box as the
# distances to its four sides; GLIP's ATSS head (Zhang et al., 2020, Adaptive Training Sample
# Selection) as offsets from one square anchor per location. The course uses FCOS's form on one
# feature level (no anchor sizes to tune at 64 px), where GLIP-T has a Swin-T with a five-level
# FPN. The class scores are an N × C matrix, region features O (N × D) times a weight matrix
# W (D × C). GLIP keeps everything but W; its C columns become the M token features P of the
# prompt, and detection becomes retrieval: each region looks up the words it matches:
#
# ```mermaid
# flowchart LR
#     subgraph detector["fixed classes"]
#         O1["region features O<br/>N × D"] --> W["weights W<br/>D × 5, learned, fixed"] --> L1["N × 5 class logits"]
#     end
#     subgraph glip["grounding (GLIP)"]
#         O2["region features O<br/>N × D"] --> dot["O Pᵀ / τ + b"] --> L2["N × M token logits"]
#         prompt["circle. square. triangle. diamond. cross."] --> enc["text side"] --> P["token features P<br/>M × D"] --> dot
#     end
# ```
#
# The same detector with either head, on one scene (N = 16 × 16 = 256 locations):

# %%
from mmcourse.glip import GLIP, GLIPConfig
from mmcourse.glip.tasks import NAMES_PROMPT, glip_world

world = glip_world()
scenes = world.sample(4, seed=0, split="test")
torch.manual_seed(0)
with_classes = GLIP(GLIPConfig(head="classes"))
grounding = GLIP(GLIPConfig())
tokens = grounding.tokenizer([NAMES_PROMPT])
print("prompt:", NAMES_PROMPT)
print("tokens:", [grounding.tokenizer.itos[i] for i in tokens[0] if i != 0])
with torch.no_grad():
    print("class head logits:", tuple(with_classes(scenes.images[:1], tokens)["logits"].shape), "(batch, locations, classes)")
    print("alignment logits: ", tuple(grounding(scenes.images[:1], tokens)["logits"].shape), "(batch, locations, tokens)")

# %% [markdown]
# The class head has 5 columns forever; the alignment has one per token of whatever prompt it is
# given (M = 56 slots, padding masked out). Its details follow GLIP's `VLDyHead` (vision–language
# dynamic head, which fuses and scores): P is normalised and projected (the shipped model does
# not project: section 6), τ = exp(`log_scale`) starts at 1, and the bias
# b = P̂ · `bias_lang` + `bias0` starts every token at probability 0.01 (`bias0` = −log 99),
# RetinaNet's trick: otherwise the background, nearly all of the 256 locations, swamps the first
# steps.
#
# ### Exercise 1: `alignment_logits`
#
# Write S = O Pᵀ / τ + b for region features `regions` (B, N, D), token features `tokens`
# (B, M, D), a temperature `tau` (a number or 0-d tensor) and a bias per token `bias` (B, M).
# The result is (B, N, M): location n, token m.

# %%
import torch

from mmcourse.checks.glip import check_alignment_logits


def alignment_logits(regions: torch.Tensor, tokens: torch.Tensor, tau, bias: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return regions @ tokens.transpose(-2, -1) / tau + bias[:, None, :]
    ### END SOLUTION


check_alignment_logits(alignment_logits)

# %% [markdown]
# Compare with the course's version, which the alignment head calls:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.head import AlignmentHead, alignment_logits

show_source(alignment_logits)
show_source(AlignmentHead.forward)
with torch.no_grad():
    prob = grounding.align(torch.zeros(1, 256, 64), torch.randn(1, 7, 64)).sigmoid()
expect("untrained alignment with no region evidence: max |p - 0.01|", (prob - 0.01).abs().max(), "≤ 1e-6", fmt="bound")

# %% [markdown]
# ## 2. Training: targets from phrases
#
# Training needs, for every location, a target row over the prompt's tokens. Two steps:
#
# 1. **Which locations belong to which box.** FCOS's *centre sampling*: a location is positive
#    for a box when it lies inside the box and within 1.5 strides of its centre (the smallest box
#    wins a tie). The stride matters for objects this small (widths printed):

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.tasks import positives_per_object

sizes = world.sample(500, seed=0, split="test")
widths = (sizes.boxes[..., 2] - sizes.boxes[..., 0])[sizes.valid]
print(f"object widths: {widths.min():.0f} to {widths.max():.0f} pixels")
for stride in (4, 8):
    r = positives_per_object(stride)
    print(f"stride {stride}: {r['mean']:.1f} positive locations per object on average, "
          f"{r['share_le2']:.0%} of objects with at most 2")

# %% [markdown]
# At stride 8 (a ViT with 8 × 8 patches) a third of the objects get at most two positive
# locations, so the image side is a small CNN with stride 4 (`mmcourse.glip.backbone`). Centre
# sampling replaces ATSS's assignment (per box, the k anchors nearest its centre on each level,
# kept if their IoU exceeds the mean plus standard deviation of those IoUs).
#
# 2. **Which tokens belong to which box.** ShapesWorld gives every object its phrase's
#    character span in the caption (`spans`); the span becomes the tokens whose words overlap
#    it: a binary K × M matrix, one row per object (GLIP's `create_positive_map`, binarised). A
#    positive location's target is its box's row; background locations get all zeros.
#
# The loss on these targets is a sigmoid **focal loss** (Lin et al., 2017, RetinaNet) over every
# (location, word token) pair of probability p:
#
# $$\mathrm{FL}(p) = \begin{cases} -\alpha\,(1-p)^{\gamma} \log p & \text{positive pair} \\ -(1-\alpha)\,p^{\gamma} \log(1-p) & \text{negative pair} \end{cases}$$
#
# γ = 2 mutes pairs that are already nearly right. α = 0.25 weighs the positives, 1 − α the
# negatives: once γ mutes the easy negatives, RetinaNet found, the rare positives need less
# weight, not more. Two more terms: a GIoU loss on the boxes (IoU minus the share of the
# enclosing box the two leave empty) and a binary cross-entropy on the centerness.
#
# The focal loss gives each word its own sigmoid, so "circle" and "square" can rise together.
# The course adds MDETR's *soft-token* loss (Kamath et al., 2021) at the positive locations: a
# softmax over the prompt's words, so "circle" rises only if "square" falls (`soft_token_loss`);
# GLIP's code has it as an option, off in GLIP-T (`USE_TOKEN_LOSS`). One stored run without it
# (one run per arm); the shape-name gap, 0.012, exceeds the spread of section 5's six retrains
# (0.996–0.999), so it may be real:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.evaluate import stored_result
from mmcourse.weights import entry

focal_only = stored_result("soft_token")["metrics"]  # python -m bench glip, part soft_token: weight 0, seed 0
for key, label in (("names_AP50", "shape names AP50"), ("attributes_seen_AP50", "seen pairs AP50"),
                   ("attributes_heldout_AP50", "held-out pairs AP50"), ("caption_accuracy", "caption grounding")):
    e = entry("glip_shapes").estimate(key)
    print(f"{label:20s} focal alone {focal_only[key]['value']:.3f} ± {focal_only[key]['se']:.3f}; "
          f"with the soft-token loss (shipped) {e.value:.3f} ± {e.se:.3f}")

# %% [markdown]
# ### Exercise 2: `positive_map`
#
# Given a prompt `text`, a list of character spans `(start, end)` (or `None` for an object the
# prompt does not name) and the token row `length`, return a bool tensor (K, length) marking the
# tokens of each span. Tokens are the words of `text` after punctuation becomes spaces (that is
# how `WordTokenizer.split` reads it), shifted by one for the `<start>` token at position 0.

# %%
import re

import torch

from mmcourse.checks.glip import check_positive_map


def positive_map(text: str, spans: list, length: int) -> torch.Tensor:
    ### BEGIN SOLUTION
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", re.sub(r"[^\w\s]", " ", text.lower()))]
    out = torch.zeros(len(spans), length, dtype=torch.bool)
    for k, span in enumerate(spans):
        if span is None:
            continue
        for i, (s, e) in enumerate(words):
            if s < span[1] and e > span[0]:
                out[k, i + 1] = True
    return out
    ### END SOLUTION


check_positive_map(positive_map)

# %% [markdown]
# Compare with the course's version, and the targets of one training caption:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.targets import positive_map, span_to_tokens

show_source(span_to_tokens)
scene = world.sample(1, seed=3, split="train")[0]
ids = grounding.tokenizer([scene.caption])[0]
print("caption:", scene.caption)
for phrase, span, row in zip(scene.phrases, scene.spans, positive_map(scene.caption, scene.spans, len(ids))):
    print(f"  {phrase!r:<22} span {span} -> tokens {row.nonzero().flatten().tolist()} = "
          f"{[grounding.tokenizer.itos[i] for i in ids[row].tolist()]}")

# %% [markdown]
# Like GLIP, the course trains on detection and grounding data at once; each scene gets one of
# three prompts: the shape names in a random order (sometimes only some), a list of colour–shape
# phrases with some absent ones ("orange cross. blue diamond."), or its own caption.
#
# The live run's text side is the **random token tower** (it needs no CLIP checkpoint): notebook
# 04's transformer, causal unlike GLIP's BERT, with random word embeddings, frozen: every token
# gets its own feature, distinct from the first step but meaning nothing.
# **Predict, then run:** of the four terms (focal, soft-token, GIoU, centerness), which falls
# first?

# %%
from mmcourse.glip.tasks import train_glip

from mmcourse.train import History

_, live = train_glip(steps=30, batch_size=16, lr=3e-3, desc="live GLIP run")
terms = {"cls": "focal (every word)", "token": "soft-token (which word)", "box": "GIoU (box)", "ctr": "centerness"}
fig, ax = plt.subplots(figsize=(5.6, 3.2))
plot_history(live, title="30 steps of 16 scenes (lines: mean of 5 steps)", window=5, ax=ax, label="total", color="0.3")
for (k, name), colour in zip(terms.items(), ("C0", "C1", "C2", "C3")):
    ax.plot(History(loss=live.metrics[k]).smoothed(5), lw=1.5, color=colour, label=name)
ax.legend(fontsize=8, ncol=2)
plt.show()
for k, name in terms.items():
    first, last = np.mean(live.metrics[k][:3]), np.mean(live.metrics[k][-3:])
    print(f"{name:24s} {first:.2f} -> {last:.2f} ({last / first - 1:+.0%})")
recipe = entry("glip_shapes").config["training"]
print(f"the shipped models: {recipe['steps']} steps of {recipe['batch_size']} scenes")

# %% [markdown]
# The box loss falls from the first steps; the focal loss only in the second half, after a noisy
# start, once the model tells objects from background; the soft-token loss, which word, barely
# moves; the centerness too, though its minimum is not 0 (a cross-entropy on soft targets bottoms
# out at their entropy).

# %% [markdown]
# ## 3. Grounding a free caption
#
# The trained checkpoints from here on:
#
# | checkpoint | text side, frozen | projected | sections |
# |---|---|---|---|
# | `glip_shapes` (shipped) | CLIP phrases | no | 3, 4, 6–8 |
# | `glip_shapes_tokens` | random token tower | yes | 5, 6 |
# | `glip_shapes_tokens_nofusion` | the same, no fusion | yes | 5 |
#
# The shipped text side differs from GLIP's: each phrase is encoded on its own by notebook 04's
# frozen CLIP, so its vector cannot see the words around it, and that one embedding serves all
# the phrase's tokens; a word outside every phrase is embedded alone (`mmcourse.glip.text`; why:
# section 6).
#
# The prompt can be any sentence; its noun phrases (runs of size, colour and shape words) are
# the "classes". A phrase's score at a location is √(p̄ · c): p̄ the mean probability over the
# phrase's tokens, c the location's centerness (GLIP and ATSS rank by this geometric mean), so a
# border location ranks below the object's centre. A scene drawn to order, the caption's two
# objects and two others:

# %%
from mmcourse.glip import grounding_predict
from mmcourse.glip.tasks import load_glip

model = load_glip("glip_shapes")
shipped = entry("glip_shapes")
from mmcourse.glip.predict import top_per_phrase
from mmcourse.glip.widgets import draw_detections, phrase_heatmap

demo = world.render([
    dict(shape="circle", colour="red", size="small", position="top left"),
    dict(shape="square", colour="blue", size="large", position="bottom right"),
    dict(shape="triangle", colour="yellow", size="small", position="top right"),
    dict(shape="diamond", colour="green", size="large", position="bottom left"),
], seed=1)
caption = "a small red circle at the top left and a large blue square"
result = grounding_predict(model, demo.image, caption)
top = top_per_phrase(result)  # each phrase's best box
heat = phrase_heatmap(model, demo.image, caption, 0)
fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.6))
draw_detections(axes[0], demo.image, top, threshold=0.0, fontsize=9,
                title="a small red circle at the top left\nand a large blue square")
im = axes[1].imshow(heat, cmap="magma", vmin=0, vmax=1, extent=(-0.5, 63.5, 63.5, -0.5))
axes[1].set_title(f"$\\bar{{p}}$('{result['phrases'][0]}')\nat each of the 16 × 16 locations", fontsize=9)
axes[1].set_xticks([])
axes[1].set_yticks([])
fig.colorbar(im, ax=axes[1], fraction=0.046)
plt.show()
for p, s, b in zip(top["phrase"], top["scores"].tolist(), top["boxes"].tolist()):
    print(f"{p!r}: score {s:.2f}, box {[round(v) for v in b]}")

# %% [markdown]
# Each phrase finds its object. Over the test draws' captions (1–4 objects each), GLIP's
# Flickr30K Recall@1 in miniature:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.evaluate import caption_ceiling

ceiling = caption_ceiling("test")  # the same draws' captions
print("caption phrases whose top box has IoU ≥ 0.5 with their object:", shipped.describe("caption_accuracy"),
      f"(± over the {ceiling['phrases']} phrases)")
misses = round((1 - shipped.metrics["caption_accuracy"]) * ceiling["phrases"])
print(f"phrases that repeat an earlier phrase of their caption: {ceiling['repeats']}; a model blind to "
      f"position words reaches at most {ceiling['ceiling']:.3f}; the shipped model misses {misses} phrases")

# %% [markdown]
# A repeat is a phrase shared by two objects ("a large red diamond … and a large red diamond"):
# only the position words can tell the two copies apart.
# **Predict, then run:** a scene holds *two* small red circles, one at the top left and one at
# the bottom right. Asked for "a small red circle at the bottom right", which circle gets the
# phrase's top box?

# %%
from mmcourse.boxes import box_iou

twin = world.render([dict(shape="circle", colour="red", size="small", position="top left"),
                     dict(shape="circle", colour="red", size="small", position="bottom right"),
                     dict(shape="square", colour="blue", size="large", position="top right")], seed=1)
circles = {"top left": twin.boxes[0], "bottom right": twin.boxes[1]}
fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.6))
for ax, where in zip(axes, circles):
    asked = f"a small red circle at the {where}"
    found = grounding_predict(model, twin.image, asked)
    best = {name: max((float(sc) for bx, sc in zip(found["boxes"], found["scores"]) if float(box_iou(bx[None], b[None])) >= 0.5),
                      default=0.0) for name, b in circles.items()}
    chosen = max(best, key=best.get)
    draw_detections(ax, twin.image, top_per_phrase(found), threshold=0.0, fontsize=9, title=f"'{asked}'")
    print(f"asked for the circle at the {where}: top box on the {chosen} circle; best score per circle: "
          + ", ".join(f"{name} {v:.3f}" for name, v in best.items()))
plt.show()

# %% [markdown]
# **Answer.** The top-left one, both times (0.757 against 0.709, then 0.761 against 0.712). The
# position words move the scores only by thousandths. A phrase encoded on its own cannot carry
# "bottom right", as GLIP's BERT could in principle. The loose words reach the image side only
# through fusion, which training never rewarded for it (our reading: two objects rarely share a
# phrase). So 24 of the 25 caption misses are forced: the score is at its ceiling.

# %% [markdown]
# ### Exercise 3: `nms`
#
# A dense detector fires at several neighbouring locations for one object. **Non-maximum
# suppression** walks down the scores, keeps a box and drops every later box that overlaps a
# kept one by more than `iou_threshold`. Write it for boxes (n, 4) xyxy and scores (n,): return
# the kept indices (int64), best first. `box_iou(a, b)` (`mmcourse.boxes`) gives the (n, m) IoU
# matrix.

# %%
import torch

from mmcourse.checks.glip import check_nms
from mmcourse.boxes import box_iou


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    order = scores.argsort(descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    keep, dropped = [], torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if not dropped[i]:
            keep.append(i)
            dropped |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]
    ### END SOLUTION


check_nms(nms)

# %% [markdown]
# Compare with the course's toolkit (checked against torchvision); class-aware NMS
# (`batched_nms`) runs it per phrase, so a circle never suppresses an overlapping square.
# **Predict, then run:** on a scene of four objects, how many of the boxes above 0.3 survive?

# %%
from mmcourse.boxes import batched_nms, nms
from mmcourse.glip.predict import predict_batch

show_source(nms)
raw = predict_batch(model, demo.image[None], [NAMES_PROMPT], threshold=0.3, nms_iou=1.0)[0]  # 1.0: keep all
kept = predict_batch(model, demo.image[None], [NAMES_PROMPT], threshold=0.3)[0]
from mmcourse.glip.widgets import PHRASE_COLOURS

fig, axes = plt.subplots(1, 2, figsize=(7.6, 4.1))
draw_detections(axes[0], demo.image, raw, 0.3, title=f"before NMS: {len(raw['scores'])} boxes ≥ 0.3", labels=False)
draw_detections(axes[1], demo.image, kept, 0.3, fontsize=9, title=f"after NMS (IoU 0.6): {len(kept['scores'])} boxes")
per_phrase = [int((raw["labels"] == i).sum()) for i in range(len(raw["phrases"]))]  # boxes before NMS
fig.legend([plt.Line2D([], [], color=PHRASE_COLOURS[i], lw=2) for i in range(len(raw["phrases"]))],
           [f"{p} ({n} before NMS)" for p, n in zip(raw["phrases"], per_phrase)], loc="lower center",
           ncol=3, fontsize=9, frameon=False, title="box colour = phrase (the left panel's boxes nearly coincide)",
           title_fontsize=9)
fig.subplots_adjust(bottom=0.2, top=0.92)
plt.show()
for box, score, label in sorted(zip(kept["boxes"].tolist(), kept["scores"].tolist(), kept["labels"].tolist()), key=lambda r: -r[1]):
    print(f"kept: {kept['phrases'][label]:8s} {score:.2f}  box {[round(v) for v in box]}")

# %% [markdown]
# Of 28 boxes above 0.3, 6 survive: one per object, and two weaker ones for the wrong phrase (a
# "square" at 0.33 on the circle, a "cross" at 0.31 on the diamond), which class-aware NMS never
# compares with the right ones. They rank below every right box, so they cost little in AP
# (next section).

# %% [markdown]
# ## 4. How good is a detector? Precision, recall, AP
#
# Rank all the boxes a detector gives for one class, say *circle*, over 100 test scenes, and
# walk down the ranking: a box is a true positive when its IoU with a not yet claimed circle
# reaches a threshold, 0.5 say. After each box, **precision** is the share of boxes so far that
# were right, **recall** the share of all circles found so far. The **envelope** is the best
# precision at this or any higher recall. The shipped model with the shape-name prompt, at IoU
# 0.5 and 0.9:

# %%
from mmcourse.glip.evaluate import precision_recall

pr_scenes = world.sample(100, seed=1, split="test")
dets = predict_batch(model, pr_scenes.images, [NAMES_PROMPT] * len(pr_scenes))
truth = [{"boxes": pr_scenes.boxes[i][pr_scenes.valid[i]], "labels": pr_scenes.shape[i][pr_scenes.valid[i]]}
         for i in range(len(pr_scenes))]
at = np.linspace(0, 1, 101)  # COCO reads the envelope at these recall points
fig, ax = plt.subplots(figsize=(5.6, 3.4))
for iou, colour in ((0.5, "C0"), (0.9, "C3")):
    curve = precision_recall(dets, truth, label=0, iou_threshold=iou)  # class 0: circle
    env = curve["envelope"]
    idx = np.searchsorted(curve["recall"], at, side="left")
    ap = np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0).mean()
    ax.plot(curve["recall"], curve["precision"], lw=0.8, color=colour, alpha=0.5)
    ax.plot(curve["recall"], env, lw=2, color=colour, label=f"IoU ≥ {iou}: envelope, area {ap:.3f}")
    after = len(curve["recall"]) - 1 - int(np.argmax(curve["recall"]))  # boxes ranked after the last circle found
    print(f"IoU ≥ {iou}: {len(curve['scores'])} circle boxes, {after} of them after the last circle found; "
          f"recall reaches {curve['recall'][-1]:.2f}, area under the envelope (101 points) {ap:.3f}")
ax.set_xlabel("recall", fontsize=9)
ax.set_ylabel("precision", fontsize=9)
ax.set_ylim(0, 1.05)
ax.set_title("'circle' on 100 test scenes (thin: precision after each box)", fontsize=9)
ax.legend(fontsize=8, loc="lower left")
plt.show()
print("circles in these scenes:", int((pr_scenes.shape[pr_scenes.valid] == 0).sum()))

# %% [markdown]
# At IoU ≥ 0.5 every circle is found before any wrong box: precision stays at 1 up to recall 1,
# area 1.000. At IoU ≥ 0.9 some circles get no box that tight (recall stops at 0.84) and loose
# boxes count as wrong on the way: area 0.753. Each envelope drops at the end, where ~700
# low-score boxes follow the last circle found; AP reads no recall beyond it.
#
# **AP50** is the area under the envelope, read at 101 recall points, averaged over the classes
# (COCO's rule); COCO's **AP** averages it again over IoU thresholds 0.50, 0.55, …, 0.95, so
# loose boxes cost. The shipped checkpoint, on the test draws:

# %%
# NBVAL_CHECK_OUTPUT
print("shape-name prompt, AP50:", shipped.describe("names_AP50"))
print("shape-name prompt, COCO AP:", shipped.describe("names_AP"))

# %% [markdown]
# ## 5. Deep fusion, measured
#
# Without fusion only the final dot product sees the words. With fusion, two rounds of
# bidirectional cross-attention (`BiMultiHeadAttention`, GLIP's X-MHA) let every location read
# the words and every word read the image. GLIP's block adds the attention's output to the
# *normalised* features:
#
# $$A = \frac{(W_v \hat O)(W_l \hat P)^\top}{\sqrt{d}},\quad O \leftarrow \hat O + \gamma_v\, W_{o}\,\mathrm{softmax}_{\text{tokens}}(A)\,W_{l}' \hat P,\quad P \leftarrow \hat P + \gamma_l\, W_{p}\,\mathrm{softmax}_{\text{locations}}(A^\top)\,W_{v}' \hat O$$
#
# with Ô = LayerNorm(O), P̂ = LayerNorm(P) and residual scales γ started at 0.1. GLIP-T stacks six
# such blocks, each followed by a new BERT layer on the text and a dynamic convolution on the
# image (γ started at 1/6); the course runs two, with plain convolutions and no text layer, to
# train in minutes on a CPU.
#
# The test: scenes of 3–4 objects of *one* shape in different colours, and the prompt "red
# circle." (one of their colours). Fusion on against off, with section 2's random token tower,
# at three training seeds. **Predict, then run:** which wins, and by how much?

# %%
from mmcourse.glip.fusion import BiMultiHeadAttention

show_source(BiMultiHeadAttention.forward)

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.glip.evaluate import attribute_object_scores
from mmcourse.glip.tasks import attribute_scenes, evaluate_attributes

from mmcourse.glip.evaluate import attribute_chance
from mmcourse.protocol import mean

fused, unfused = load_glip("glip_shapes_tokens"), load_glip("glip_shapes_tokens_nofusion")
on, off = entry("glip_shapes_tokens"), entry("glip_shapes_tokens_nofusion")
runs = stored_result("fusion_seeds")["runs"]  # python -m bench glip, part fusion_seeds
value = lambda arm, i, key: runs[f"fusion={arm} seed={i}"]["metrics"][key]["value"]
paired = [i for i in sorted({int(k.rsplit("=", 1)[1]) for k in runs})          # seeds with both arms trained
          if all(f"fusion={arm} seed={i}" in runs for arm in ("on", "off"))]
fmt = lambda d: f"{d['value']:.3f} ± {d['se']:.3f}" if isinstance(d, dict) else f"{d.value:.3f} ± {d.se:.3f}"  # 3 decimals
over = lambda f: (lambda e: f"{e.value:.3f} ± {e.se:.3f}")(mean([f(i) for i in paired])) if len(paired) > 1 else "–"
rows = [("attribute prompts, seen pairs: AP50", "attributes_seen_AP50"),
        ("attribute prompts, held-out pairs: AP50", "attributes_heldout_AP50"), ("shape-name prompt: AP50", "names_AP50"),
        ("caption grounding accuracy", "caption_accuracy")]
display(Markdown(
    f"| test draws, {len(paired)} training seeds (± over seeds) | fusion on | fusion off | on − off, paired by seed |"
    "\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {label} | {over(lambda i: value('on', i, key))} | {over(lambda i: value('off', i, key))} | "
        f"{over(lambda i: value('on', i, key) - value('off', i, key))} |" for label, key in rows)))
for key, label in (("attributes_seen_AP50", "seen-pair"), ("attributes_heldout_AP50", "held-out-pair")):
    per_run = [(f"seed {i}", value("on", i, key), value("off", i, key)) for i in paired]
    per_run.append(("shipped pair (earlier code)", on.metrics[key], off.metrics[key]))
    print(f"{label} AP50, fusion on / off (gain):", "; ".join(f"{run}: {a:.3f} / {b:.3f} ({a - b:+.3f})" for run, a, b in per_run))
print(f"shape-name AP50, lowest of the {2 * len(paired)} retrains: {min(value(a, i, 'names_AP50') for a in ('on', 'off') for i in paired):.3f}")
chance = {"seen": attribute_chance("test"), "heldout": attribute_chance("heldout")}  # true boxes, random ranking
print(f"chance level, attribute AP50 (every box exact, ranked at random): seen pairs {chance['seen']}, "
      f"held-out pairs {chance['heldout']}")

# %% [markdown]
# Why? Each object's best score for the prompt (over its centre-sampled locations) on 100 of
# these scenes, for the targets (the named colour) and the distractors (same shape, another
# colour):

# %%
attr = attribute_scenes(100, seed=2)
fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, m, title in ((axes[0], unfused, "fusion off"), (axes[1], fused, "fusion on")):
    s = attribute_object_scores(m, attr)
    bins = np.linspace(0, 1, 41)
    ax.hist(s["distractor"].numpy(), bins, alpha=0.6, density=True, label=f"distractors (mean {s['distractor'].mean():.2f})")
    ax.hist(s["target"].numpy(), bins, alpha=0.6, density=True, label=f"targets (mean {s['target'].mean():.2f})")
    ax.set_title(f"{title}: score of 'red circle.'-style prompts", fontsize=9)
    ax.set_xlabel("object's best score √(p̄·c)", fontsize=9)
    ax.set_xlim(0.15, 0.75)
    ax.legend(fontsize=8, loc="upper right")
    print(f"{title}: targets {s['target'].mean():.2f} on average, distractors {s['distractor'].mean():.2f}; "
          f"distractors above 0.5: {(s['distractor'] > 0.5).float().mean():.0%}")
axes[0].set_ylabel("density", fontsize=9)
axes[0].set_ylim(top=1.35 * axes[0].get_ylim()[1])  # room for the legends above the bars
plt.show()
from mmcourse.glip.evaluate import attribute_word_probabilities

for m, title in ((unfused, "fusion off"), (fused, "fusion on")):
    w = attribute_word_probabilities(m, attr)  # at each object's most central location
    print(f"{title}: p(colour word) targets {w['target'][:, 0].mean():.2f}, distractors {w['distractor'][:, 0].mean():.2f}; "
          f"p(shape word) targets {w['target'][:, 1].mean():.2f}, distractors {w['distractor'][:, 1].mean():.2f}")

# %% [markdown]
# **Answer.** Usually, not always. Over three training seeds fusion added +0.105 ± 0.074 seen-pair
# AP50 (± over seeds): it won at two seeds and lost at the third (0.848 against 0.890; chance is
# 0.44 ± 0.02). On held-out pairs it gained at all three seeds (+0.159, +0.252, +0.174; mean
# +0.195 ± 0.029); unfused, they rank below chance (0.300 against 0.384). GLIP's ablation
# (Table 2, GLIP-T A against B, trained on Objects365) finds about 2 AP zero-shot on COCO. Shape
# names do not need it (lowest run 0.996); captions show no clear gain (+0.014 ± 0.010), both
# arms below section 3's ceiling of 0.981 (0.959 and 0.945).
#
# The histograms use the shipped pair, trained with seed 0 by an earlier version of the code
# (the loss functions have since moved into `mmcourse.boxes`, with a different ε): not a fourth
# seed; the three retrains are the seed figures. Unfused, the colour word is weak (0.33 on
# targets, 0.22 on distractors), so distractors score 0.47 against the targets' 0.52. With
# fusion the colour word falls to 0.12 on distractors, their scores to 0.40.

# %% [markdown]
# ## 6. Zero-shot: phrase features that compose
#
# Six colour–shape pairs (a red square, a green triangle, a blue circle, ...) never appear in
# training, in an image or a prompt; each word was seen with other partners. The attribute test
# again, with the held-out pair as the target among seen-pair distractors of the same shape.
# First with the random token tower of sections 2 and 5:

# %%
# NBVAL_CHECK_OUTPUT
tokens_side = entry("glip_shapes_tokens")
print("random token tower, held-out pairs AP50:", tokens_side.describe("attributes_heldout_AP50"))
print("random token tower, seen pairs AP50:    ", fmt(tokens_side.estimate("attributes_seen_AP50")))

# %% [markdown]
# This run (section 5's shipped pair, earlier code) is at chance on held-out pairs (0.362
# against 0.384 ± 0.010); the three retrains, above chance (0.495 ± 0.030), were not probed. Its
# scores and word probabilities on 100 held-out scenes:

# %%
held = attribute_scenes(100, seed=3, split="heldout")  # a held-out pair, seen-pair distractors of its shape
s, w = attribute_object_scores(fused, held), attribute_word_probabilities(fused, held)
print(f"random token tower, held-out pairs: targets {s['target'].mean():.2f} on average, distractors "
      f"{s['distractor'].mean():.2f}; p(colour word) targets {w['target'][:, 0].mean():.2f}, distractors "
      f"{w['distractor'][:, 0].mean():.2f}; p(shape word) targets {w['target'][:, 1].mean():.2f}, "
      f"distractors {w['distractor'][:, 1].mean():.2f}")

# %% [markdown]
# Held-out targets score no higher than their distractors (0.35 against 0.37). Our reading, for
# this run only (untested against a bidirectional tower): the tower is causal. In "red square."
# the colour token reads only `<start> red`, as in every red pair trained on, so it transfers: it
# fires more on held-out targets (0.12 against 0.04). The shape token has read the colour, so
# "square" after "red" is a feature training never produced: it fires less (0.21 against 0.33).
#
# GLIP uses a pre-trained BERT, bidirectional: each word's feature knows its phrase. The course
# has notebook 04's broad CLIP, which classifies held-out pairs zero-shot, but its tower is causal
# too: "red" is identical in "a red circle" and "a red square"; only `<end>`, the **pooled**
# embedding CLIP's loss trained, has read the phrase (both printed).

# %%
from mmcourse.clip.tasks import load_clip
from mmcourse.clip.tokenizer import WordTokenizer

clip = load_clip("clip_shapes_broad")
with torch.no_grad():
    red = clip.text.forward_features(WordTokenizer(context_length=16)(["a red circle", "a red square"]))[:, 2]
print(f"'red' in 'a red circle' and in 'a red square': largest difference {float((red[0] - red[1]).abs().max()):.1e}; "
      f"clip_shapes_broad, zero-shot accuracy on held-out pairs: {entry('clip_shapes_broad').metrics['zero_shot_heldout']:.2f}")

# %% [markdown]
# So the shipped model takes each phrase's pooled embedding (section 3), averaged over CLIP's
# caption templates; Grounding DINO (Liu et al., 2023) keeps names apart too, masking attention
# between the category names of one prompt. The alignment reads these embeddings **as they
# are**, unprojected, as in OWL-ViT (Minderer et al., 2022); fusion updates only the image side
# (we did not measure the shipped model without it). GLIP projects and fuses per-token features
# of a BERT it fine-tunes; the course departs because CLIP's tower is causal and GLIP's
# projection failed here (table below).

# %%
# NBVAL_CHECK_OUTPUT
table = [("shape-name prompt: AP50", "names_AP50"), ("attribute prompts, seen pairs: AP50", "attributes_seen_AP50"),
         ("attribute prompts, held-out pairs: AP50", "attributes_heldout_AP50"), ("caption grounding accuracy", "caption_accuracy")]
projected_fused = stored_result("alignment")["metrics"]   # GLIP's way: projected, and updated by fusion
projected = stored_result("projection")["metrics"]        # one factor: projected, not updated
display(Markdown(
    "| test draws | random token tower | CLIP phrases, projected and fused (GLIP's head) | CLIP phrases, projected only | "
    "CLIP phrases as they are (shipped) | chance |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(
        f"| {label} | {fmt(tokens_side.estimate(key))} | {fmt(projected_fused[key])} | {fmt(projected[key])} | {fmt(shipped.estimate(key))} | "
        f"{ {'attributes_seen_AP50': fmt(chance['seen']), 'attributes_heldout_AP50': fmt(chance['heldout'])}.get(key, '')} |"
        for label, key in table)))
print("held-out pairs:", shipped.describe("attributes_heldout_AP50"))

# %% [markdown]
# Held-out pairs now reach AP50 0.990 ± 0.003: "red square" is found although the detector never
# saw one. GLIP's head on these vectors stays near chance on colour, and so does the learned
# projection alone (seen pairs 0.490), while the random token tower, through the same
# projection, reaches 0.80: what fails is the projection *of CLIP's phrase vectors*. One run per
# column (section 5: reruns move a lot).
#
# Why the shipped version transfers: CLIP's phrase embeddings compose. Fit each of the 24 seen
# pairs' embeddings as a colour vector plus a shape vector (least squares), and predict the six
# held-out pairs from their parts:

# %%
from mmcourse.data.shapes import COLOUR_NAMES, HELDOUT_COMBOS, SHAPES

pairs = [(c, sh) for c in COLOUR_NAMES for sh in SHAPES]
E = model.text.embed([f"{c} {sh}" for c, sh in pairs])                       # (30, 64), unit length
X = torch.zeros(len(pairs), len(COLOUR_NAMES) + len(SHAPES))                 # one-hot colour and shape
for i, (c, sh) in enumerate(pairs):
    X[i, COLOUR_NAMES.index(c)] = X[i, len(COLOUR_NAMES) + SHAPES.index(sh)] = 1
seen = torch.tensor([p not in HELDOUT_COMBOS for p in pairs])
W = torch.linalg.lstsq(X[seen], E[seen]).solution                           # colour and shape vectors
guess = torch.nn.functional.normalize(X[~seen] @ W, dim=-1)
cos = guess @ E.T                                                           # (6, 30)
nearest = cos.argmax(1)
print(f"held-out pairs: cosine of the guess with the true embedding {(guess * E[~seen]).sum(1).mean():.3f}, "
      f"with the second-nearest pair {cos.topk(2, dim=1).values[:, 1].mean():.3f}; "
      f"nearest of the 30 pair embeddings is the right one for {int((nearest == seen.logical_not().nonzero()[:, 0]).sum())} of 6")
between = (E @ E.T)[~torch.eye(len(pairs), dtype=torch.bool)]
print(f"cosine between two different pairs' embeddings: {between.mean():.3f} on average")
colour_part, shape_part = W[:len(COLOUR_NAMES)], W[len(COLOUR_NAMES):]
spread = lambda V: float((V - V.mean(0)).norm(dim=1).mean())  # how far the vectors differ from each other
print(f"mean distance from their mean: colour vectors {spread(colour_part):.2f}, shape vectors {spread(shape_part):.2f}")

# %% [markdown]
# The held-out embeddings are almost exactly colour plus shape, and colour weighs about as much
# as shape, so the projected runs received colour at full strength and lost it in training (why:
# not tested). Our reading (no probe of the region features): region features trained to land on
# the seen pairs' embeddings carry "red" as the red circles' do and "square" as the blue squares'
# do, so a red square's land on "a red square" too:

# %%
live_held = evaluate_attributes(model, held)
live_held_tokens = evaluate_attributes(fused, held)
print(f"held-out pairs, AP50 on these 100 scenes: {live_held['AP50']:.2f} (random token tower: {live_held_tokens['AP50']:.2f}); "
      f"on the test draws {shipped.metrics['attributes_heldout_AP50']:.2f} ({tokens_side.metrics['attributes_heldout_AP50']:.2f})")

# %% [markdown]
# ### Detection data against grounding data
#
# GLIP's paper argues that grounding data (captions with their phrases) teach what detection data
# (class names) cannot: attributes, relations, a richer vocabulary. The shipped recipe trained on
# shape-name prompts only, and on shape names plus captions (no colour–shape phrase lists; one
# run each), both asked the attribute prompts.
# **Predict, then run:** does a detector trained only on shape names find "red circle"?

# %%
# NBVAL_CHECK_OUTPUT
arms = stored_result("ablation")["arms"]
keys = [("names_AP50", "shape names AP50"), ("attributes_seen_AP50", "seen pairs AP50"),
        ("attributes_heldout_AP50", "held-out pairs AP50"), ("caption_accuracy", "caption grounding")]
display(Markdown("| trained on | " + " | ".join(k[1] for k in keys) + " |\n|---|" + "---:|" * len(keys) + "\n" + "\n".join(
    f"| {arm} | " + " | ".join(fmt(r["metrics"][k]) for k, _ in keys) + " |" for arm, r in arms.items())
    + "\n| names, colour–shape phrases, captions (shipped) | " + " | ".join(fmt(shipped.estimate(k)) for k, _ in keys) + " |"
    + f"\n| chance (exact boxes, random ranking) | | {fmt(chance['seen'])} | {fmt(chance['heldout'])} | |"))

# %% [markdown]
# No. Trained on shape names only, it finds shapes perfectly (AP50 1.000) but "red circle" only
# at chance (seen pairs 0.454 ± 0.014 against 0.44 ± 0.02): nothing in a shape-name prompt asks
# the region features to tell colours apart. Add the captions, and the same recipe finds
# colour–shape pairs it was never asked for as a list (seen pairs 0.892 ± 0.009, held-out
# 0.736 ± 0.013); the shipped recipe's phrase lists add the rest: grounding data teach the words
# that detection data leave out.
#
# GLIP scales this up: a teacher GLIP boxes the phrases of 24M web image–caption pairs for a
# student. ShapesWorld gives exact boxes: no teacher here.

# %% [markdown]
# ## 7. Ask it yourself
#
# Type a prompt (phrases separated by ". ", or a caption) and press Enter; the slider sets the
# score threshold. A misspelt word gives the nearest known words. The controls need a live
# kernel; the still picture below them is their first view.

# %%
from IPython.display import Image

from mmcourse.glip.widgets import FIGSIZE, prompt_explorer, prompt_view
from mmcourse.viz import widget_width

explorer_scenes = world.sample(20, seed=7, split="test")
display(prompt_explorer(model, explorer_scenes, prompt=NAMES_PROMPT, threshold=0.3, scene=3))
first_view = prompt_view(model, explorer_scenes.images[3], NAMES_PROMPT, 0.3)  # what the controls show first
display(Image(first_view.png, width=int(widget_width(FIGSIZE[0]).removesuffix("px"))))
print("\n".join(first_view.lines))

# %% [markdown]
# ## 8. The link to the other topics
#
# With this text side the detector is CLIP's zero-shot classifier (notebook 04) moved from whole
# images to regions: every location's region feature meets the embeddings of class descriptions.
#
# With SAM (notebook 06) it makes a text-to-mask pipeline: **detect with words, segment with
# boxes**, as Grounded-SAM (Ren et al., 2024) does with Grounding DINO and SAM: each of GLIP's
# boxes becomes a SAM box prompt (when SAM's checkpoint is installed):

# %%
from matplotlib.collections import LineCollection

from mmcourse import weights
from mmcourse.viz import mask_outline_segments

query = "red circle. blue square."
found = top_per_phrase(grounding_predict(model, demo.image, query))
if "sam_shapes" in weights.available():
    from mmcourse.sam.tasks import load_sam

    sam = load_sam("sam_shapes", text=False)
    sam.set_image(demo.image)
    masks = torch.stack([sam.predict(box=b, multimask_output=False).masks[0] for b in found["boxes"]])
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    draw_detections(axes[0], demo.image, found, 0.0, fontsize=9, title=f"GLIP: {query}")
    axes[1].imshow(demo.image.permute(1, 2, 0))
    for mask, label in zip(masks, found["labels"].tolist()):  # each mask outlined in its phrase's box colour
        axes[1].add_collection(LineCollection(mask_outline_segments(mask), colors=[PHRASE_COLOURS[label]], lw=2))
    axes[1].set_title("SAM's masks, prompted with GLIP's boxes", fontsize=9)
    axes[1].axis("off")
    plt.show()
    for p, mask in zip(found["phrase"], masks):
        iou = max(float((mask & m).sum() / (mask | m).sum()) for m in demo.masks[demo.valid])
        print(f"{p}: mask IoU with its object's true mask {iou:.2f}")
else:
    print("The SAM checkpoint (notebook 06) is not installed here; GLIP's boxes would be its box prompts:")
    for p, b in zip(found["phrase"], found["boxes"].tolist()):
        print(f"  {p}: box {[round(v) for v in b]}")

# %% [markdown]
# ## 9. What we measured
#
# All on the test draws (500 scenes per run), ± one standard error over draws (over phrases for
# caption accuracy) unless said:

# %%
# NBVAL_CHECK_OUTPUT
summary = [
    ("detection cast as grounding: shape-name prompt AP50 (no fixed-class head trained)", shipped.describe("names_AP50")),
    ("  the same, COCO AP (IoU 0.50–0.95)", shipped.describe("names_AP")),
    ("caption grounding: each phrase's top box at IoU ≥ 0.5",
     f"{shipped.describe('caption_accuracy')}; ceiling for a position-blind model {ceiling['ceiling']:.3f}"),
    (f"deep fusion (random token tower), seen-pair AP50, {len(paired)} training seeds (± over seeds): on / off / paired difference",
     f"{over(lambda i: value('on', i, 'attributes_seen_AP50'))} / {over(lambda i: value('off', i, 'attributes_seen_AP50'))} / "
     f"{over(lambda i: value('on', i, 'attributes_seen_AP50') - value('off', i, 'attributes_seen_AP50'))}"),
    ("  the same, the pair of section 5's histograms (earlier code, seed 0): on / off",
     f"{fmt(on.estimate('attributes_seen_AP50'))} / {fmt(off.estimate('attributes_seen_AP50'))}"),
    ("zero-shot, held-out pairs AP50: CLIP phrases as they are / random token tower with fusion",
     f"{shipped.describe('attributes_heldout_AP50')} / {over(lambda i: value('on', i, 'attributes_heldout_AP50'))} "
     f"({len(paired)} seeds, ± over seeds; shipped run, earlier code {tokens_side.metrics['attributes_heldout_AP50']:.3f})"),
    ("seen pairs AP50 with CLIP phrases", fmt(shipped.estimate("attributes_seen_AP50"))),
    ("CLIP phrases through GLIP's learned projection (one run): seen / held-out pairs AP50",
     f"{fmt(projected['attributes_seen_AP50'])} / {fmt(projected['attributes_heldout_AP50'])}"),
    (f"detection vs grounding data, seen-pair AP50 (one run each): names only / names + captions (chance {chance['seen']})",
     f"{fmt(arms['names']['metrics']['attributes_seen_AP50'])} / {fmt(arms['names+captions']['metrics']['attributes_seen_AP50'])}"),
]
display(Markdown("| claim | measured |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in summary)))

# %% [markdown]
# Next: **08 · text to image**, which runs the arrow the other way, from words to pixels.

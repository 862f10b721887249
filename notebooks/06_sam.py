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
# # 06 · SAM: promptable segmentation with points, boxes, masks and text
#
# Computer vision's classic route runs **segmentation** (分割: which pixels belong together) →
# **detection** (检测: where is each object, as a box) → **recognition** (识别: what is it) →
# **tracking** (跟踪: where did it go in the next frame). SAM, the *Segment Anything Model*
# (Kirillov et al., 2023), is a foundation model for the first step: trained on 1.1 billion
# masks, it segments objects it never saw, **zero-shot**, from a **prompt** (提示): a click, a
# box, a rough mask, or (sketched in the paper) a piece of text.
#
# Its design is lopsided on purpose:
#
# - a heavy **image encoder** (a ViT) turns the image into an embedding, **once per image**;
# - a light **prompt encoder** turns the user's intent into tokens;
# - a fast **mask decoder** combines the two into masks, **once per prompt**, in milliseconds:
#   that is why SAM feels instant when you click.
#
# This notebook builds each part (the kernels in `mmcourse.sam` load segment-anything's weights
# unchanged and match its outputs to 1e-5), uses a small SAM trained on ShapesWorld with SAM's
# interactive recipe, and measures the claims: one click is ambiguous, text can prompt,
# extra clicks refine, and the model segments shapes it never saw.
#
# ```mermaid
# flowchart LR
#     seg["segmentation<br/>(SAM: prompt → mask)"] --> det["detection<br/>boxes from masks"]
#     det --> rec["recognition<br/>CLIP on each crop"]
#     rec --> trk["tracking<br/>mask of frame t prompts frame t+1"]
# ```
#
# ```mermaid
# flowchart LR
#     img["image 3 × 64 × 64"] --> enc["image encoder<br/>ViT, 4 × 4-pixel patches + neck<br/>once per image"]
#     enc --> emb["image embedding<br/>64 × 16 × 16 (cached)"]
#     pts["points, box"] --> pe["positional encoding<br/>+ type embedding"] --> sparse["sparse tokens"]
#     txt["text"] --> clip["frozen CLIP text tower<br/>→ text_proj"] --> sparse
#     msk["mask (low-res logits)"] --> cnn["mask_downscaling CNN"] --> dense["dense map"]
#     emb --> dec["mask decoder<br/>two-way transformer<br/>per prompt"]
#     sparse --> dec
#     dense --> dec
#     dec --> out["3 masks + predicted IoU"]
# ```

# %%
import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.sam import expect
from mmcourse.clip.widgets import markdown_table
from mmcourse.viz import overlay_masks, plot_curves, setup_matplotlib, show_source
from mmcourse.vit.tasks import load_results

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Three parts, two costs
#
# `load_sam()` loads the shipped checkpoint `sam_shapes` (hash-checked) and attaches the frozen
# text tower of notebook 04's CLIP. The image encoder runs once in `set_image`; every `predict`
# reuses the cached embedding. *Predict:* how many times slower is the encoder than one prompt?

# %%
from mmcourse.sam.tasks import eval_set, load_sam
from mmcourse.vit import count_parameters

sam = load_sam()
parts = {"image_encoder": sam.image_encoder, "prompt_encoder": sam.prompt_encoder, "mask_decoder": sam.mask_decoder}
print(" | ".join(f"{k}: {count_parameters(m):,} parameters" for k, m in parts.items()))

demo = eval_set(8, seed=3)
enc_ms, dec_ms = [], []
for i in range(24):
    t0 = time.perf_counter()
    sam.set_image(demo.images[i % 8])
    enc_ms.append(1000 * (time.perf_counter() - t0))
    x, y = demo.clicks[i % 8].tolist()
    t0 = time.perf_counter()
    sam.predict(points=[[x, y]], labels=[1])
    dec_ms.append(1000 * (time.perf_counter() - t0))
# the fastest run is the one least disturbed by other work on the machine; the median shows the load
print(f"this run, one thread: encoder {min(enc_ms):.1f} ms per image (median {np.median(enc_ms):.1f}), "
      f"prompt encoder + decoder {min(dec_ms):.1f} ms per prompt (median {np.median(dec_ms):.1f})")
stored = load_results("sam_speed")  # measured with 60 prompts when the machine was quieter
expect(f"stored: decoder per prompt, one thread, median (ms; load {stored['load']})", stored["decoder_ms_median"], "≤ 5",
       fmt=".1f")

# %% [markdown]
# At 64 × 64 pixels the encoder is small too, so the gap is modest here. Real SAM's ViT-H reads
# a 1024 × 1024 image as 64 × 64 tokens; its model card gives about 0.15 s per image on an A100
# GPU, and the paper runs prompt encoder and decoder on a CPU in a web browser in about 50 ms:
# the split that makes clicking interactive.

# %% [markdown]
# ## 2. Prompts as positional encodings
#
# A click is a position, and a transformer needs positions as vectors. SAM uses **random
# Fourier features** (Tancik et al., 2020): a fixed Gaussian matrix G (2 × C/2) projects the
# normalised coordinates c ∈ [0, 1]², and sines and cosines of the result form the code:
#
# $$\mathrm{pe}(c) = [\sin(2\pi (2c - 1) G),\ \cos(2\pi (2c - 1) G)]$$
#
# The same function encodes the centre of every cell of the image embedding (the dense
# positional encoding added to the image inside the decoder), so a click and the cells near it
# get similar codes. Write it.

# %%
import math

import torch

from mmcourse.checks.sam import check_random_fourier_pe


def random_fourier_pe(coords: torch.Tensor, gaussian_matrix: torch.Tensor) -> torch.Tensor:
    """coords (..., 2) in [0, 1], gaussian_matrix (2, F) -> (..., 2F): sin features, then cos."""
    ### BEGIN SOLUTION
    proj = 2 * math.pi * ((2 * coords - 1) @ gaussian_matrix)
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
    ### END SOLUTION


check_random_fourier_pe(random_fourier_pe)

# %% [markdown]
# Compare with the course's version, `PositionEmbeddingRandom` (segment-anything's, line for
# line). Points are shifted to the pixel centre (+0.5) and divided by the image size first.

# %%
from mmcourse.sam import PositionEmbeddingRandom

show_source(PositionEmbeddingRandom)

# %% [markdown]
# Four of the shipped model's 32 frequency pairs drawn over the image plane, and the similarity
# between a click's code and the code of every pixel (cosine): nearby pixels are similar, far
# ones are not. *Predict:* how sharp is the peak, relative to an object of about 13 pixels?

# %%
pe = sam.prompt_encoder.pe_layer
grid = pe((64, 64))                                          # (64, 64, 64): C x H x W, every pixel centre
clicks = torch.tensor([[[20.0, 24.0], [46.0, 44.0]]])
codes = pe.forward_with_coords(clicks + 0.5, (64, 64))[0]    # (2, 64)
sims = torch.einsum("nc,chw->nhw", codes, grid) / (codes.norm(dim=1)[:, None, None] * grid.norm(dim=0))
fig, axes = plt.subplots(1, 6, figsize=(12, 2.3))
for j, ax in enumerate(axes[:4]):
    ax.imshow(grid[j * 8].numpy(), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(f"sin feature {j * 8}", fontsize=9)
for j, ax in enumerate(axes[4:]):
    ax.imshow(sims[j].numpy(), cmap="viridis", vmin=-0.3, vmax=1)
    ax.scatter([clicks[0, j, 0]], [clicks[0, j, 1]], c="red", marker="*", s=50)
    ax.set_title(f"similarity to click {j + 1}", fontsize=9)
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
plt.show()
half = (sims[0] > 0.5).sum().item()
print(f"pixels with similarity > 0.5 to click 1: {half} (a {math.sqrt(half):.0f} x {math.sqrt(half):.0f} patch)")

# %% [markdown]
# **Tokens against a map.** A point or a box corner is one position plus what it means, so it
# becomes one token: its code plus a learned type embedding (positive, negative, box top-left,
# box bottom-right). A mask prompt is already a picture aligned with the image; turning it into
# tokens would throw away that alignment. So it stays dense: a small CNN shrinks it 4× to the
# embedding grid and it is *added* to the image embedding. Text, like a point, is one token:
# the frozen CLIP text tower's pooled embedding, projected to the prompt width.

# %%
# NBVAL_CHECK_OUTPUT
sparse, dense = sam.prompt_encoder(points=(torch.tensor([[[20.0, 24.0]]]), torch.tensor([[1]])), boxes=None, masks=None)
print("one point  -> sparse", tuple(sparse.shape), "(the point + SAM's padding 'not a point'), dense", tuple(dense.shape))
sparse, _ = sam.prompt_encoder(points=None, boxes=torch.tensor([[10.0, 12.0, 30.0, 40.0]]), masks=None)
print("one box    -> sparse", tuple(sparse.shape), "(its two corners)")
h, w = sam.prompt_encoder.mask_input_size
_, dense = sam.prompt_encoder(points=None, boxes=None, masks=torch.zeros(1, 1, h, w))
print("one mask   -> dense ", tuple(dense.shape), f"({h} x {w} logits shrunk 4x to the {h // 4} x {w // 4} embedding)")
sparse, _ = sam.prompt_encoder(points=None, boxes=None, masks=None, text=sam.encode_text(["the red triangle"]))
print("one phrase -> sparse", tuple(sparse.shape))

# %% [markdown]
# ## 3. Masks back to the image, then click
#
# The decoder predicts masks at 4× the embedding grid: 64 × 64 logits here, already the image's
# size, but 256 × 256 in SAM, whose encoder sees a 1024 × 1024 input. To show them, SAM upsamples bilinearly to the encoder's input size, crops away the padding (a
# non-square image is resized so its longest side fits, then padded bottom/right), resizes to the
# original image, and thresholds the **logits at 0** (probability 0.5). Write it.

# %%
import torch
import torch.nn.functional as F

from mmcourse.checks.sam import check_postprocess_masks


def postprocess_masks(low_res: torch.Tensor, img_size: int, input_size: tuple[int, int],
                      original_size: tuple[int, int]) -> torch.Tensor:
    """low_res (K, h, w) logits -> (K, H, W) bool masks at original_size."""
    ### BEGIN SOLUTION
    x = F.interpolate(low_res[None], (img_size, img_size), mode="bilinear", align_corners=False)
    x = x[..., : input_size[0], : input_size[1]]
    return F.interpolate(x, original_size, mode="bilinear", align_corners=False)[0] > 0
    ### END SOLUTION


check_postprocess_masks(postprocess_masks)

# %% [markdown]
# Compare with the course's `Sam.postprocess_masks` (it returns the logits; `predict`
# thresholds them).

# %%
from mmcourse.sam import Sam

show_source(Sam.postprocess_masks)

# %% [markdown]
# **Click to segment.** Left click: a positive point; right click (or the *negative click*
# toggle): a negative point; drag: a box. With one point the decoder returns three masks and
# their predicted IoUs (the best is drawn on the image); with more prompts it returns one. The
# encoder ran once per image; each click runs only the decoder (its time is shown).

# %%
from mmcourse.sam.widgets import click_widget

scenes = eval_set(6, seed=7)
click_widget(sam, list(scenes.images))

# %% [markdown]
# ## 4. One click, three answers: ambiguity
#
# A click on a partly hidden shape can mean its **visible part**, the **whole shape** (hidden
# pixels included: ShapesWorld knows them, `full_masks`, an *amodal* mask) or the **group** of
# overlapping objects it belongs to. SAM's answer is to predict three masks for a single click
# and train with the loss of the *best* of the three only, so each output token is free to
# specialise in one reading; a fourth token serves prompts that are not ambiguous (several
# points, a box).
#
# The shipped model was trained this way (SAM's recipe at small scale):
#
# ```mermaid
# flowchart LR
#     scene["scene, 2–4 objects<br/>(no crosses)"] --> tgt["target object + level<br/>part / whole / group"]
#     tgt --> p1["first prompt: a click inside it,<br/>its noisy box, or its phrase"]
#     p1 --> r1["3 masks (1 for box, text)<br/>loss: 20 focal + dice, best mask only<br/>+ MSE on predicted IoU"]
#     r1 --> p2["second round (half the clicks):<br/>a click from the error region<br/>+ previous logits as mask prompt"]
#     p2 --> r2["1 mask, same loss"]
# ```

# %%
train_curve = load_results("sam_training")["sam_shapes"]
ax = plot_curves({"sam_shapes": train_curve["loss"]}, xlabel="step", ylabel="loss (smoothed)")
ax.figure.set_size_inches(5, 2.4)
plt.show()
print(f"{train_curve['recipe']['steps']} steps of {train_curve['recipe']['batch_size']} scenes, one thread, "
      f"{train_curve['train_seconds'] / 60:.1f} min (load average at the end {' '.join(train_curve['loadavg_at_end'])})")

# %% [markdown]
# One ambiguous click from the test scenes: the three outputs against the three readings.
# *Predict:* will each output match a different reading?

# %%
from mmcourse.sam.tasks import LEVELS, mask_iou, predict_batch

amb = eval_set(100, seed=11, target="ambiguous")
amb_emb = sam.embed(amb.images)
masks, iou, _ = predict_batch(sam, amb_emb, amb.clicks[:, None], torch.ones(100, 1, dtype=torch.long))
cover = mask_iou(masks[:, None], amb.levels[:, :, None]).amax(2)   # (100, 3): each reading's best output
i = int(cover.sum(1).argmax())                                        # the click whose readings are best covered
fig, axes = plt.subplots(1, 7, figsize=(14, 2.3))
axes[0].imshow(amb.images[i].permute(1, 2, 0).numpy())
axes[0].scatter(*amb.clicks[i].tolist(), c="lime", marker="*", s=80, edgecolors="black")
axes[0].set_title("image + click", fontsize=9)
for j in range(3):
    axes[1 + j].imshow(amb.levels[i, j].numpy(), cmap="gray")
    axes[1 + j].set_title(f"reading: {LEVELS[j]}", fontsize=9)
    axes[4 + j].imshow(masks[i, j].numpy(), cmap="gray")
    axes[4 + j].set_title(f"output {j + 1}: IoU pred {iou[i, j]:.2f}", fontsize=8)
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
plt.show()

# %% [markdown]
# Measured on 400 ambiguous test clicks (objects partly hidden *and* overlapping, so the three
# readings differ), against a **single-output** model trained with the same recipe and steps but
# one mask for every prompt (stored measurement):

# %%
res = load_results("sam_ambiguity")
rows = [[lvl, f"{r['best_of_3']:.3f}", f"{r['highest_predicted']:.3f}", f"{r['single_output']:.3f}",
         " / ".join(f"{v:.2f}" for v in r["per_output"])] for lvl, r in res["levels"].items()]
display(Markdown(markdown_table(["reading", "3 outputs: best of 3", "3 outputs: highest predicted IoU",
                                 "single-output model", "IoU of output 1 / 2 / 3"], rows)))
print("share of clicks where output 1 / 2 / 3 has the highest predicted IoU:",
      " / ".join(f"{v:.2f}" for v in res["chosen_output_share"]))

# %% [markdown]
# The outputs specialise, though into two readings rather than three: output 1 (first of the
# three numbers in the last column) is the best of the three against the group and the worst
# against part and whole, so it is the group's answer, a rough one; the other two both answer
# the visible part, which the whole shape nearly equals here (a hidden
# corner is a few pixels); one of them leans a little toward the whole shape. The highest
# predicted IoU almost always picks one of those two, so a single click returns the part; the
# group is among the three answers (see best of 3) and a user can pick it, or say it with a
# second click (section 6). The single-output model, trained on the same mixed targets, cannot
# keep both: it answers roughly the part, and its group IoU stays far below the 3-output model's
# best of 3.

# %% [markdown]
# ## 5. Text as a prompt
#
# The paper's text prompt, small: the frozen CLIP text tower of notebook 04 reads "the red
# triangle", its pooled embedding is projected into one sparse token, and the decoder does the
# rest. The target is every object the phrase names. *Predict:* better or worse than a click?

# %%
texts = ["the red triangle", "the blue square", "the small green circle", "the yellow diamond"]
from mmcourse.data.shapes import ShapesWorld

scene = ShapesWorld(image_size=64, max_objects=4).render([
    dict(shape="triangle", colour="red", size="large", position="top left"),
    dict(shape="square", colour="blue", size="large", position="middle"),
    dict(shape="circle", colour="green", size="small", position="bottom right"),
    dict(shape="diamond", colour="yellow", size="large", position="top right")], seed=1)
sam.set_image(scene.image)
fig, axes = plt.subplots(1, 4, figsize=(9, 2.5))
for ax, t in zip(axes, texts):
    pred = sam.predict(text=t, multimask_output=False)
    ax.imshow(overlay_masks(scene.image, pred.masks[:1], alpha=0.6))
    ax.set_title(f'"{t}"\nIoU pred {pred.iou_predictions[0]:.2f}', fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
plt.show()

# %%
from mmcourse.sam.tasks import TextTable, best_of, text_targets

n = 150
es = eval_set(n, seed=5)                      # test scenes, reused in sections 6 and 7
emb = sam.embed(es.images)
b, idx = es.batch, torch.arange(n)
masks, iou, _ = predict_batch(sam, emb, es.clicks[:, None], torch.ones(n, 1, dtype=torch.long))
point_miou = mask_iou(best_of(masks, iou), es.levels[:, 0]).mean().item()
table = TextTable(sam)
with_size = torch.ones(n, dtype=torch.bool)
feats = table(b.shape[idx, es.k], b.colour[idx, es.k], b.size[idx, es.k])
tmasks, _, _ = predict_batch(sam, emb, text=feats, multimask=False)
text_miou = mask_iou(tmasks[:, 0], text_targets(b, es.k, with_size)).mean().item()
print(f"{n} test scenes: one click mIoU {point_miou:.3f}, text ('the small red triangle') mIoU {text_miou:.3f}")
from mmcourse.weights import entry

reg = entry("sam_shapes").metrics
print(f"shipped checkpoint, 500 scenes: text without size {reg['seen_text_miou']:.3f}, with size {reg['seen_text_size_miou']:.3f}")
old_text = load_results("sam_longer_run")
print(f"earlier patch-8 model (section 7): {old_text['patch8_1500_steps']['metrics_500_scenes']['seen_text_miou']:.3f} / "
      f"{old_text['patch8_1500_steps']['metrics_500_scenes']['seen_text_size_miou']:.3f} after 1,500 steps, "
      f"{old_text['metrics_500_scenes']['seen_text_miou']:.3f} / {old_text['metrics_500_scenes']['seen_text_size_miou']:.3f} after 3,000")

# %% [markdown]
# Text barely works here: the masks are nearly empty and the model's own predicted IoU for them
# is close to zero (titles above), far behind a click. The phrase reaches the decoder as one
# token, a 64-number summary from a text tower that learned from captions of 32 × 32 single-object
# scenes; the decoder must turn it into a place through cross-attention alone, and with 4 of 32
# training prompts per step it got little practice. The earlier patch-8 model did a little
# better on text with more steps (last line printed), so practice is likely what text lacks; the
# shipped model's 800 steps give it about 100 steps' worth of phrases. (SAM's paper, too, shows
# text prompts only as a proof of concept.)

# %% [markdown]
# ## 6. Refinement: more clicks
#
# In training, the second round's click comes from the **error region** of the current
# prediction: a pixel the mask missed becomes a positive click, a pixel it wrongly covers a
# negative click. Write the rule, with the random choice made deterministic by a tie-break
# score `u` per pixel (the click is the error pixel with the largest `u`; without error, the
# target pixel with the largest `u`, positive).

# %%
import torch

from mmcourse.checks.sam import check_click_from_error


def click_from_error(pred: torch.Tensor, target: torch.Tensor, u: torch.Tensor):
    """pred, target (B, H, W) bool; u (B, H, W) -> (points (B, 2) xy float, labels (B,) int64)."""
    ### BEGIN SOLUTION
    error = pred ^ target
    region = torch.where(error.flatten(1).any(1)[:, None, None], error, target)
    B, H, W = region.shape
    idx = (u + region.float()).flatten(1).argmax(1)
    x, y = idx % W, idx // W
    labels = target[torch.arange(B), y, x].long()
    return torch.stack([x, y], 1).float(), labels
    ### END SOLUTION


check_click_from_error(click_from_error)

# %% [markdown]
# Compare with the course's version, which training and the measurements below use.

# %%
from mmcourse.sam.tasks import click_from_error as course_click_from_error

show_source(course_click_from_error)

# %% [markdown]
# mIoU against the number of clicks, with the previous mask's logits fed back as the mask
# prompt and without. On plain targets (the visible object) the first click already finds the
# object; on ambiguous targets (the whole shape, the group) the first click often picks another
# reading and the next clicks say which one. *Predict:* which curve climbs?

# %%
from mmcourse.sam.tasks import click_curve

curves = {"plain: visible object": click_curve(sam, es, es.levels[:, 0], 5),
          "ambiguous: whole shape": click_curve(sam, amb, amb.levels[:, 1], 5),
          "ambiguous: group": click_curve(sam, amb, amb.levels[:, 2], 5),
          "ambiguous: group, no mask fed back": click_curve(sam, amb, amb.levels[:, 2], 5, feed_mask=False)}
fig, ax = plt.subplots(figsize=(5.5, 2.8))
for name, c in curves.items():
    ax.plot(range(1, 6), c, marker="o", label=name, ls="--" if "no mask" in name else "-")
ax.set_xlabel("clicks"), ax.set_ylabel("mIoU"), ax.set_xticks(range(1, 6))
ax.legend(fontsize=7)
plt.show()
for name, c in curves.items():
    print(f"{name:38s}", " ".join(f"{v:.3f}" for v in c))
gain = curves["ambiguous: group"][2] - curves["ambiguous: group"][0]
expect("group target: mIoU gain from 1 to 3 clicks", gain, "> 0.05")

# %% [markdown]
# The stored measurement (400 targets of each kind) and what limits plain targets:

# %%
ref = load_results("sam_refinement")
rows = [[k.replace("_", " "), " ".join(f"{v:.3f}" for v in r["mask_fed_back"]), " ".join(f"{v:.3f}" for v in r["points_only"])]
        for k, r in ref.items() if isinstance(r, dict)]
display(Markdown(markdown_table(["targets", "mIoU, 1–5 clicks, mask fed back", "points only"], rows)))
print(f"plain targets: {ref['plain_wrong_pixels_near_boundary']:.0%} of the wrong pixels after one click lie within "
      f"1 pixel of the object's boundary (objects average {ref['plain_mean_object_pixels']:.0f} pixels)")

# %% [markdown]
# Three different stories:
#
# - **Group**: the first click usually returns one object; a click on a missed neighbour says
#   "that one too", and mIoU climbs steeply.
# - **Plain** objects barely move: most wrong pixels sit on the boundary (the share printed
#   above), so a corrective click lands on a boundary pixel and says almost nothing new; without
#   the previous mask fed back, each such click even costs a little. Clicks pay off where the
#   first prompt is ambiguous, not where the mask is merely a pixel off.
# - **Whole shape** stays flat too: a missed pixel of the hidden part lies under *another*
#   object, so the positive click there reads as "include that object" (the group), not "the
#   hidden part of this one". A click cannot point at what is not visible.

# %% [markdown]
# ## 7. Zero-shot: a shape it never saw
#
# No training scene contained a **cross**. The syllabus claims SAM segments objects it never
# saw. At this scale: *predict* the mIoU of one click on a cross, against seen shapes.

# %%
from mmcourse.sam.tasks import mask_box

rows = []
for name, s_, e_ in (("seen", es, emb), ("heldout", eval_set(150, seed=2, target="heldout"), None)):
    e_ = sam.embed(s_.images) if e_ is None else e_
    masks, iou, _ = predict_batch(sam, e_, s_.clicks[:, None], torch.ones(len(s_.clicks), 1, dtype=torch.long))
    bmasks, _, _ = predict_batch(sam, e_, boxes=mask_box(s_.levels[:, 0]), multimask=False)
    rows.append([name, mask_iou(best_of(masks, iou), s_.levels[:, 0]).mean().item(),
                 mask_iou(masks, s_.levels[:, 0:1]).amax(1).mean().item(), mask_iou(bmasks[:, 0], s_.levels[:, 0]).mean().item()])
held = s_, best_of(masks, iou)
display(Markdown(markdown_table(["targets (150 scenes)", "1 click", "best of 3 (oracle)", "box"],
                                [[r[0]] + [f"{v:.3f}" for v in r[1:]] for r in rows])))
fig, axes = plt.subplots(1, 6, figsize=(12, 2.2))
for j, ax in enumerate(axes):
    ax.imshow(overlay_masks(held[0].images[j], held[1][j:j + 1], alpha=0.6))
    ax.scatter(*held[0].clicks[j].tolist(), c="lime", marker="*", s=50, edgecolors="black")
    ax.set_title(f"IoU {mask_iou(held[1][j], held[0].levels[j, 0]).item():.2f}", fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
plt.show()

# %% [markdown]
# The shipped checkpoint on 500 test scenes (from the registry), beside the course's targets;
# the held-out cross above it. How the model got there is a lesson about SAM's design. An
# earlier version cut the 64 × 64 image into 8 × 8-pixel patches, as SAM cuts its 1024 × 1024
# input into 16 × 16-pixel ones, and stopped short of 0.92 on seen shapes (its numbers are printed
# below, from `bench/results/sam_longer_run.json`). Its 32 × 32 masks were not the limit: the
# true masks, taken down to 32 × 32 and back, score far higher. Twice the training closed only
# part of the gap. What was short was *tokens*: an object here is about 13 pixels across, under
# two patches of 8, so the decoder had almost nothing to place an edge with, while SAM's objects
# usually span many of its tokens. With 4 × 4-pixel patches the decoder attends to 16 × 16 image
# tokens (4× as many; a training step costs about 2.5× as much) and paints 64 × 64 masks. Fewer
# steps of it (800) beat twice the steps of the old model, within the course's 10-minute budget
# for a checkpoint, though two minutes more than the old 1,500 steps (times printed below).

# %% [markdown]
# What transfers: finding the edges of a uniformly coloured region around a click, which never
# depended on the shape's name, so the cross is segmented far above chance without ever being
# trained on. What does not, most likely: its thin arms and concave corners, which none of the training
# shapes has, are where the masks go wrong; the gap to seen shapes is a gap in shape *prior*,
# not in locating the object.

# %%
# NBVAL_CHECK_OUTPUT
expect("shipped sam_shapes, 500 scenes: 1-click mIoU, seen shapes", reg["seen_1click_miou"], "≥ 0.92")
expect("shipped sam_shapes, 500 scenes: box mIoU, seen shapes", reg["seen_box_miou"], "≥ 0.92")
expect("shipped sam_shapes, 500 scenes: 1-click mIoU, held-out cross", reg["heldout_1click_miou"], "≥ 0.78")
longer = load_results("sam_longer_run")
old = longer["patch8_1500_steps"]
print(f"shipped (patch 4, {train_curve['recipe']['steps']} steps, {train_curve['train_seconds'] / 60:.1f} min): "
      f"1-click {reg['seen_1click_miou']:.3f}, box {reg['seen_box_miou']:.3f}, held-out {reg['heldout_1click_miou']:.3f}")
print(f"earlier model (patch 8, {old['steps']:,} steps, {old['train_seconds'] / 60:.1f} min): 1-click "
      f"{old['metrics_500_scenes']['seen_1click_miou']:.3f}, box {old['metrics_500_scenes']['seen_box_miou']:.3f}, "
      f"held-out {old['metrics_500_scenes']['heldout_1click_miou']:.3f}")
print(f"  the same at {longer['recipe']['steps']:,} steps ({longer['train_seconds'] / 60:.0f} min at load "
      f"{float(longer['loadavg_at_end'][0]):.0f}, not shipped): 1-click "
      f"{longer['metrics_500_scenes']['seen_1click_miou']:.3f}, box {longer['metrics_500_scenes']['seen_box_miou']:.3f}, "
      f"held-out {longer['metrics_500_scenes']['heldout_1click_miou']:.3f}")
print(f"  its true masks through 32 × 32 and back: mIoU {longer['resolution_bound']['miou']:.3f}")

# %% [markdown]
# ## 8. The route, with SAM as the base
#
# **Segmentation: "everything" mode.** No user: a grid of 8 × 8 point prompts, three masks each
# (192 candidates), kept when the predicted IoU is above 0.8 and the mask is **stable** (the
# masks thresholded at logit −1 and +1 agree, IoU > 0.85), then non-maximum suppression on their
# boxes. **Detection:** each kept mask's box, scored by its predicted IoU. **Recognition:** the
# shipped CLIP of notebook 04 classifies each segment zero-shot among the 30 colour–shape
# descriptions; the segment is shown to it alone on the background, at half size, like the
# 32 × 32 one-object scenes it learned from (a tight crop blown up to fill the frame scored below
# chance: CLIP had never seen objects that big).

# %%
from mmcourse.clip.tasks import load_clip
from mmcourse.clip import zero_shot_classifier, zero_shot_predict
from mmcourse.clip.zero_shot import shapes_classnames, shapes_templates
from mmcourse.sam.tasks import crops, everything, route, world
from mmcourse.viz import draw_boxes

clip = load_clip("clip_shapes_named")
names = shapes_classnames()
zs = zero_shot_classifier(clip, names, shapes_templates("ensemble"))
show = world(train=False).sample(4, seed=31, split="all")
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for ax, img in zip(axes, show.images):
    seg = everything(sam, img)
    found = zero_shot_predict(clip, crops(img, seg["masks"]), zs) if len(seg["boxes"]) else []
    labels = [names[int(c)].split(" ", 1)[1] for c in found]
    ax.imshow(overlay_masks(img, seg["masks"], alpha=0.5))
    draw_boxes(ax, seg["boxes"], [f"{l} {s:.2f}" for l, s in zip(labels, seg["scores"].tolist())], fontsize=6)
    ax.set_title(f"{len(seg['boxes'])} segments", fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
plt.show()

# %%
live = route(sam, n=12, seed=21)
print("this run, 12 scenes:", ", ".join(f"{k} {v:.3f}" for k, v in live.items() if isinstance(v, float)))
stored = load_results("sam_route")
for split, r in stored.items():
    print(f"stored, {r['scenes']} scenes ({split}): AP50 {r['AP50_class_agnostic']:.3f} class-agnostic, "
          f"{r['AP50_shape_classes']:.3f} with CLIP's shape labels; {r['recall_matched']:.0%} of objects found; "
          f"recognition of the found crops: shape {r['recognition_shape_accuracy']:.0%}, "
          f"colour and shape {r['recognition_colour_shape_accuracy']:.0%}")

# %% [markdown]
# **Tracking.** A short clip (`ShapesWorld.draw_objects` draws the same objects at given pixel
# positions per frame): one object moves left to right and passes partly behind another. One
# click in the first frame; from then on, each frame's mask prompts the next: its low-res logits
# as the mask prompt plus a click at the pixel deepest inside it. *Predict:* where will it lose
# the object?

# %%
from mmcourse.sam.tasks import moving_clip, track

clip_frames, k = moving_clip(12, seed=0)
result = track(sam, clip_frames, k)
fig, axes = plt.subplots(2, 6, figsize=(11, 4))
for t, ax in enumerate(axes.flat):
    ax.imshow(overlay_masks(clip_frames.images[t], result["masks"][t:t + 1], alpha=0.6))
    ax.set_title(f"frame {t}: IoU {result['iou_per_frame'][t]:.2f}", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
plt.show()
no_mask = track(sam, clip_frames, k, feed_mask=False)
print(f"tracking mIoU over {len(clip_frames.images)} frames: {result['miou']:.3f} with the mask fed forward, "
      f"{no_mask['miou']:.3f} with the click alone")

# %% [markdown]
# The track holds while the object is in the open and breaks where it slides behind the other
# shape: the mask of the half-hidden frame is partly wrong, its deepest pixel drifts, and once
# the next frame's click lands off the object nothing brings it back. Frame-to-frame prompting
# alone has no memory of what the object looked like; SAM 2 adds exactly that, a memory of past
# frames. In this clip the mask fed forward does no better than the click alone (both printed
# above): neither remembers the object. The stored measurement over 10 such clips is in the table of section 10.

# %% [markdown]
# ## 9. Optional: real SAM weights
#
# `from_segment_anything` loads segment-anything's state dicts into `mmcourse.sam`: the prompt
# encoder, two-way transformer and mask decoder keep their names; the image encoder's
# `pos_embed` is reshaped and its MLP renamed (`lin1/lin2` → `fc1/fc2`). The configuration
# (ViT-B: 12 blocks, 14 × 14 windows, 4 global blocks, relative positions) is read off the
# weights' shapes. With the ViT-B checkpoint on disk, the cell segments scikit-image's astronaut
# from one click (a minute or two on one CPU thread); without it, it explains how to get it.

# %%
weights_file = os.environ.get("MMCOURSE_SAM_WEIGHTS", "")
if weights_file and Path(weights_file).exists():
    import skimage.data

    from mmcourse.sam import from_segment_anything

    if weights_file.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(weights_file)
    else:  # the released .pth: tensors only, no code executed (weights_only)
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    real = from_segment_anything(state)
    photo = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float() / 255
    t0 = time.perf_counter()
    real.set_image(photo)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = real.predict(points=[[270, 100]], labels=[1])
    t_dec = time.perf_counter() - t0
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
    for j, ax in enumerate(axes):
        ax.imshow(overlay_masks(photo, pred.masks[j:j + 1], alpha=0.5))
        ax.scatter([270], [100], c="lime", marker="*", s=80, edgecolors="black")
        ax.set_title(f"mask {j + 1}: IoU pred {pred.iou_predictions[j]:.2f}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    plt.show()
    print(f"ViT-B encoder {t_enc:.1f} s for the image, prompt encoder + decoder {1000 * t_dec:.0f} ms per click")
else:
    print("Skipped: set MMCOURSE_SAM_WEIGHTS to segment-anything's ViT-B checkpoint to run this cell.\n"
          "On a machine with internet: download sam_vit_b_01ec64.pth from the segment-anything README\n"
          "(https://github.com/facebookresearch/segment-anything#model-checkpoints), copy it here and\n"
          "restart the kernel with MMCOURSE_SAM_WEIGHTS=/path/to/sam_vit_b_01ec64.pth.")

# %% [markdown]
# ## 10. What we measured
#
# The shipped checkpoint's numbers (500 test scenes each, from the registry) and the stored
# measurements, beside the course's targets:

# %%
amb_rows = load_results("sam_ambiguity")["levels"]
refine = load_results("sam_refinement")
route_seen = load_results("sam_route")["seen"]
tracking = load_results("sam_tracking")
speed = load_results("sam_speed")
summary = [
    ["1-click mIoU, seen shapes (target ≥ 0.92)", f"{reg['seen_1click_miou']:.3f}"],
    ["box mIoU, seen shapes (target ≥ 0.92)", f"{reg['seen_box_miou']:.3f}"],
    ["1-click mIoU, held-out cross (target ≥ 0.78)", f"{reg['heldout_1click_miou']:.3f}"],
    ["text mIoU ('the red triangle' / 'the small red triangle')", f"{reg['seen_text_miou']:.3f} / {reg['seen_text_size_miou']:.3f}"],
    ["decoder per prompt, one thread (target ≤ 5 ms; median)", f"{speed['decoder_ms_median']:.1f} ms (encoder {speed['encoder_ms_median']:.1f} ms per image)"],
    ["ambiguous clicks, best of 3 against single output: part / whole / group",
     " / ".join(f"{r['best_of_3']:.2f} vs {r['single_output']:.2f}" for r in amb_rows.values())],
    ["refinement, group targets: 1 → 3 → 5 clicks (mask fed back)",
     " → ".join(f"{refine['ambiguous_group']['mask_fed_back'][i]:.3f}" for i in (0, 2, 4))],
    ["refinement, plain targets: 1 → 3 → 5 clicks (mask fed back)",
     " → ".join(f"{refine['plain_part']['mask_fed_back'][i]:.3f}" for i in (0, 2, 4))],
    ["everything mode: AP50 (class-agnostic / CLIP shape labels)",
     f"{route_seen['AP50_class_agnostic']:.3f} / {route_seen['AP50_shape_classes']:.3f}"],
    ["recognition of matched crops by CLIP (shape / colour and shape)",
     f"{route_seen['recognition_shape_accuracy']:.2f} / {route_seen['recognition_colour_shape_accuracy']:.2f}"],
    ["tracking mIoU, 10 clips of 12 frames", f"{tracking['miou_mean']:.3f}"],
]
display(Markdown(markdown_table(["claim or target", "measured"], summary)))

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
# The syllabus lays out a route: **segmentation** (分割: which pixels belong together) → **detection**
# (检测: where is each object, as a box) → **recognition** (识别: what is it) → **tracking** (跟踪: where
# did it go in the next frame). SAM, the *Segment Anything Model* (Kirillov et al., 2023), is a
# promptable segmenter trained on 1.1 billion masks, which segments objects it never saw,
# **zero-shot**, from a **prompt** (提示): a click, a box, a rough mask, or (a proof of concept in the
# paper) a phrase. It fits the route in either order: segment everything first and read boxes off
# the masks, or take a detector's box and turn it into a mask. Recognising the masks (here with
# CLIP) and tracking them from frame to frame (SAM 2's job) lie outside SAM.
#
# Its design is lopsided on purpose:
#
# - a heavy **image encoder** (a ViT) turns the image into an embedding, **once per image**;
# - a light **prompt encoder** turns the user's intent into tokens;
# - a fast **mask decoder** combines the two into masks, **once per prompt**, in milliseconds:
#   that is why SAM feels instant when you click.
#
# This notebook builds each part, uses a small SAM trained on ShapesWorld with SAM's interactive
# recipe, and measures the claims (ambiguity, refinement, unseen shapes, the route), each beside a
# baseline. Text prompting, the paper's proof of concept, fails in the main checkpoint's recipe; a
# second checkpoint trained for it finds objects from a phrase, mostly by its colour word: it scores
# below a colour-only rule, barely reads the shape word, and misses its target at a second training
# seed (section 6).
#
# ```mermaid
# flowchart LR
#     seg["segmentation<br/>(SAM: prompt → mask)"] --> det["detection<br/>boxes from masks"]
#     det --> rec["recognition<br/>CLIP on each crop"]
#     rec --> trk["tracking<br/>frame t's mask prompts frame t+1"]
# ```
#
# ```mermaid
# flowchart LR
#     img["image 3 × 64 × 64"] --> enc["image encoder<br/>ViT, 4 × 4-pixel patches + neck<br/>once per image"]
#     enc --> emb["image embedding<br/>64 × 16 × 16 (cached)"]
#     pts["points, box"] --> pe["positional encoding<br/>+ type embedding"] --> sparse["sparse tokens"]
#     txt["training: crop of the target<br/>inference: a phrase"] --> clip["frozen CLIP<br/>image / text tower<br/>→ text_proj"] --> sparse
#     msk["mask (low-res logits)"] --> cnn["mask_downscaling CNN"] --> dense["dense map"]
#     emb --> dec["mask decoder<br/>two-way transformer<br/>per prompt"]
#     sparse --> dec
#     dense --> dec
#     dec --> out["3 masks + predicted IoU"]
# ```

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.sam import expect
from mmcourse.clip.widgets import markdown_table
from mmcourse.viz import draw_boxes, draw_mask_outlines, setup_matplotlib, show_source
from mmcourse.vit.tasks import load_results
from mmcourse.weights import entry

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)
reg = entry("sam_shapes")


def show_image(ax, image, title="", masks=None, fontsize=9, lw=1.5, halo=None):
    """An image with masks drawn as outlines (a tint would change the objects' colours)."""
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    if masks is not None:
        draw_mask_outlines(ax, masks, lw=lw, halo=halo)
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([]), ax.set_yticks([])


# %% [markdown]
# ## 1. Three parts, two costs
#
# `load_sam()` loads the shipped checkpoint `sam_shapes` (hash-checked) and attaches the frozen
# CLIP of notebook 04. The image encoder runs once in `set_image`; every `predict` reuses the
# cached embedding. *Predict:* how many times slower is the encoder than one prompt?

# %%
from mmcourse.sam.evaluate import eval_set
from mmcourse.sam.train import load_sam
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
stored = load_results("sam_speed")  # bench.sam.speed: 60 timings
expect("stored: decoder per prompt, one thread, median of 60 timings (ms)", stored["decoder_ms_median"], "≤ 5", fmt=".1f")
print(f"  its spread: 90% of the 60 timings took at most {stored['decoder_ms_p90']:.1f} ms")
print(f"stored medians: encoder {stored['encoder_ms_median']:.2f} ms, decoder "
      f"{stored['decoder_ms_median']:.2f} ms: the encoder costs {stored['encoder_ms_median'] / stored['decoder_ms_median']:.1f} prompts")

# %% [markdown]
# The stored ratio is the answer (the live one moves with the machine's load): at 64 × 64 pixels
# the encoder is small too, so the split is barely lopsided here; even the parameters are not (the
# decoder has nearly as many as the encoder). Real SAM's ViT-H encoder has 632
# million parameters against about 4 million in prompt encoder and decoder, and reads a
# 1024 × 1024 image as 64 × 64 tokens; its model card gives
# about 0.15 s per image on an A100 GPU, and the paper runs prompt encoder and decoder on a CPU in
# a web browser in about 50 ms: the split that makes clicking interactive.
#
# **How the shipped model was trained** (a target's three *readings* are section 5's).
# Each mask's loss is **focal** loss (cross-entropy that down-weights confidently classified
# pixels, so hard boundary pixels dominate) plus **dice** loss (one minus 2|A∩B| / (|A| + |B|) on
# soft masks), 20 : 1 as in the paper. SAM's interactive recipe, at small scale:
#
# ```mermaid
# flowchart LR
#     scene["scene, 2–4 objects<br/>(no crosses)"] --> tgt["target object + reading<br/>part / whole / group"]
#     tgt --> p1["first prompt: a click inside it,<br/>its noisy box, or the CLIP<br/>embedding of its crop"]
#     p1 --> r1["3 masks (1 for box, CLIP)<br/>loss: 20 focal + dice, best mask only<br/>+ MSE on predicted IoU"]
#     r1 --> p2["second round (half the clicks):<br/>a click from the error region<br/>+ previous logits as mask prompt"]
#     p2 --> r2["1 mask, same loss"]
# ```
#
# The paper trains 11 rounds per mask: a point or a box, 8 corrective points, and 2 rounds with
# only the previous mask fed back. The course trains 2 rounds (a 10-minute CPU budget) on points,
# boxes, text and tracking prompts, so anything past 2 clicks (section 7) lies outside its training.

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
# positional encoding, which the decoder adds to the image keys at every attention), so a click
# and the cells near it get similar codes. Write it.

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
# *Think before reading on:* what would the similarity between two codes lose if the map
# c → 2c − 1 were replaced by c alone?

# %%
from mmcourse.sam import PositionEmbeddingRandom

show_source(PositionEmbeddingRandom)

# %% [markdown]
# The dot product of two codes is a sum of cos(2π · 2(c − c′) G) terms: it depends only on the
# difference c − c′, so the −1 changes nothing; dropping the 2 halves every frequency and so
# doubles the width of the peak below (G is fixed, never trained).
#
# Four of the shipped model's 32 frequency pairs drawn over the image plane, and the similarity
# between a click's code and the code of every pixel (cosine). *Predict:* how sharp is the
# peak, relative to the size of an object (printed below the figure)?

# %%
pe = sam.prompt_encoder.pe_layer
grid = pe((64, 64))                                          # (64, 64, 64): C x H x W, every pixel centre
clicks = torch.tensor([[[20.0, 24.0], [46.0, 44.0]]])
codes = pe.forward_with_coords(clicks + 0.5, (64, 64))[0]    # (2, 64)
sims = torch.einsum("nc,chw->nhw", codes, grid) / (codes.norm(dim=1)[:, None, None] * grid.norm(dim=0))
fig, axes = plt.subplots(1, 6, figsize=(10, 2.2))
for j, ax in enumerate(axes[:4]):
    ax.imshow(grid[j * 8].numpy(), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(f"sin feature {j * 8}", fontsize=9)
for j, ax in enumerate(axes[4:]):
    ax.imshow(sims[j].numpy(), cmap="viridis", vmin=-0.3, vmax=1)
    ax.scatter([clicks[0, j, 0]], [clicks[0, j, 1]], c="red", marker="*", s=50)
    ax.set_title(f"click {j + 1}: cosine (−0.3 to 1)", fontsize=9)
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
plt.show()
half = (sims[0] > 0.5).sum().item()
side = eval_set(200, seed=4).levels[:, 0].flatten(1).sum(1).float().mean().sqrt().item()
print(f"pixels with similarity > 0.5 to click 1: {half} (a {math.sqrt(half):.0f} x {math.sqrt(half):.0f} patch); "
      f"an object covers about {side:.0f} x {side:.0f} pixels")

# %% [markdown]
# The peak is about one object wide (both sizes printed): a click's code picks out a
# neighbourhood, not a pixel, and the decoder's attention to the image finds the edges.
#
# **Tokens against a map.** A point or a box corner is one position plus what it means, so it
# becomes one token: its code plus a learned type embedding (positive, negative, box top-left,
# box bottom-right). A mask prompt is already a picture aligned with the image; turning it into
# tokens would throw away that alignment. So it stays dense: a small CNN shrinks it 4× to the
# embedding grid and it is *added* to the image embedding. Text is one token (section 6).

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
# size, but 256 × 256 in SAM, whose encoder sees a 1024 × 1024 input. To show them, SAM
# upsamples bilinearly to the encoder's input size, crops away the padding (a non-square image
# is resized so its longest side fits, then padded bottom/right), resizes to the original image,
# and thresholds the **logits at 0** (probability 0.5). Write it.

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
# toggle): a negative point; drag: a box. One point returns three masks and their predicted IoUs
# (the best outlined); more prompts return one. The picture below is a first click on the first
# scene; the widget under it answers your clicks once the kernel runs.
#
# **Measures.**
#
# - **IoU** (intersection over union) of masks A and B: |A∩B| / |A∪B|; 1 for the same mask, 0 for
#   disjoint ones, 0.5 for a mask that covers exactly half the object and nothing else. SAM's
#   **predicted IoU** is its own estimate of this against the mask the user meant.
# - **mIoU**: the mean IoU over the targets of a test set.

# %%
from mmcourse.sam.widgets import ClickSession, click_widget, draw_session

scenes = eval_set(6, seed=7)
first = ClickSession(sam, scenes.images[0])
fig, axes = plt.subplots(1, 4, figsize=(8, 2.3))
draw_session(axes, first, first.click(*scenes.clicks[0].tolist()))
fig.suptitle("a first click on scene 1 (saved picture)", fontsize=9)
plt.show()
click_widget(sam, list(scenes.images))

# %% [markdown]
# ## 4. Inside the mask decoder
#
# The decoder is where a prompt meets the image. `MaskDecoder.predict_masks` concatenates five
# learned **output tokens** (one IoU token, four mask tokens) with the prompt's sparse tokens,
# adds the dense prompt to the image embedding, and runs the **two-way transformer**: in each of
# its two blocks the tokens attend to themselves, then to the image (token → image), go through
# an MLP, and finally the image attends to the tokens (image → token), so both sides are updated;
# a last token → image attention closes it. Then the image is upscaled 4× by two transposed
# convolutions to C/8 = 8 channels, and each mask token is turned by its own small MLP (a
# **hypernetwork**: a network whose output is the weights of another) into 8 weights. A mask is
# the dot product of those weights with the upscaled embedding at every pixel. The shapes, for
# one click, traced with forward hooks:

# %%
# NBVAL_CHECK_OUTPUT
dec = sam.mask_decoder
trace = []
hooks = [mod.register_forward_hook(lambda m, i, o, name=name: trace.append((name, o)))
         for name, mod in [("two-way transformer (tokens, image)", dec.transformer),
                           ("output_upscaling", dec.output_upscaling),
                           ("hypernetwork MLP of mask token 0", dec.output_hypernetworks_mlps[0]),
                           ("iou_prediction_head", dec.iou_prediction_head)]]
with torch.no_grad():
    emb1 = sam.embed(scenes.images[:1])
    sp, de = sam.prompt_encoder(points=(scenes.clicks[:1, None], torch.ones(1, 1, dtype=torch.long)), boxes=None, masks=None)
    masks4, iou4 = dec.predict_masks(emb1, sam.prompt_encoder.get_dense_pe(), sp, de)
for h_ in hooks:
    h_.remove()
print(f"{'image embedding':40s}", tuple(emb1.shape), "  + dense prompt", tuple(de.shape))
print(f"{'tokens: 1 IoU + 4 mask + prompt':40s}", (1, 5 + sp.shape[1], sp.shape[2]))
for name, out in trace:
    print(f"{name:40s}", *(tuple(o.shape) for o in (out if isinstance(out, tuple) else (out,))))
print(f"{'masks (4 tokens), IoUs':40s}", tuple(masks4.shape), tuple(iou4.shape), "(multimask keeps tokens 1-3)")

# %% [markdown]
# The two-way block, as segment-anything writes it:

# %%
from mmcourse.sam.transformer import TwoWayAttentionBlock

show_source(TwoWayAttentionBlock.forward)

# %% [markdown]
# **Exercise: the hypernetwork's dot product.** Given the mask tokens' weights `hyper_in`
# (B, K, C8) and the upscaled embedding `upscaled` (B, C8, H, W), return the mask logits
# (B, K, H, W): for every prompt b, token k and pixel (y, x), the dot product of
# `hyper_in[b, k]` with `upscaled[b, :, y, x]`.

# %%
import torch

from mmcourse.checks.sam import check_hypernetwork_masks


def hypernetwork_masks(hyper_in: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
    """hyper_in (B, K, C8), upscaled (B, C8, H, W) -> mask logits (B, K, H, W)."""
    ### BEGIN SOLUTION
    B, C8, H, W = upscaled.shape
    return (hyper_in @ upscaled.reshape(B, C8, H * W)).reshape(B, -1, H, W)
    ### END SOLUTION


check_hypernetwork_masks(hypernetwork_masks)

# %% [markdown]
# Compare with the last lines of the course's `predict_masks`. Because each mask is a weighted sum
# of the same 8 channels, the decoder's work is to make those channels separate objects, edges
# and backgrounds. The channels are already prompt-conditioned (the image side attended to the
# prompt's tokens in the two-way transformer); each mask token picks the final mix.

# %%
from mmcourse.sam import MaskDecoder

show_source(MaskDecoder.predict_masks)

# %% [markdown]
# ## 5. One click, three answers: ambiguity
#
# A click inside an object can mean several masks. SAM predicts three for one click and trains
# only the *best* of the three, so each output token is free to specialise; the IoU head scores
# each, and the highest predicted IoU is SAM's pick. The paper motivates three by nested masks
# (whole, part, subpart: a shirt, or the person wearing it); in SAM which token answers which level
# is learned, never assigned (the course assigns them, below). A fourth token serves multiple
# prompts; a lone box also gets one mask here, as with segment-anything's `multimask_output=False`.
#
# ShapesWorld's objects have no parts, so the course uses three **readings** of its own:
#
# | reading | the mask | in SAM |
# |---|---|---|
# | **part** | the object's visible pixels | the object (not SAM's *part*, a subpart) |
# | **whole** | its whole shape, hidden pixels included (*amodal*, `full_masks`) | none: SAM's masks are all visible |
# | **group** | the visible pixels of the overlapping objects it belongs to | a larger whole |
#
# To section 1's recipe the course adds a term SAM lacks: each output also learns one reading (1
# part, 2 whole, 3 group) at a tenth of the weight. The reason is a hypothesis: in most training
# scenes all of an object's readings are one mask (printed below), so under the best-of-three
# (*winner-takes-all*) loss the first token to fit could win every target and leave another without
# gradient. An earlier build showed such a **dead** output once; that run was not kept, so nothing
# stored backs it.

# %%
from mmcourse.protocol import proportion
from mmcourse.sam.evaluate import ambiguous_targets
from mmcourse.sam.prompts import level_masks, world

train_curve = load_results("sam_training")["sam_shapes"]
print(f"{train_curve['recipe']['steps']} steps of {train_curve['recipe']['batch_size']} scenes, one thread: "
      f"{train_curve['train_cpu_s'] / 60:.1f} min of CPU time (the course's budget: 10 min)")
train_world = world()
drawn = train_world.sample(1000, seed=0, split="train")
differ = proportion(ambiguous_targets(drawn, level_masks(drawn, train_world)).any(1))
print(f"training scenes (2–4 objects) holding an object whose three readings differ: {differ.value:.0%} "
      f"± {differ.se:.0%} of {differ.n}")

# %% [markdown]
# An **ambiguous** target is an object in a 4-object test scene whose part differs from its whole
# and its whole from its group, by at least one pixel each; many differ by only a few pixels. The
# figure shows one click where the three readings differ more (pairwise IoU below 0.9), the one
# whose readings the outputs cover best among 100 ambiguous test clicks.
# *Predict:* will each output match a different reading?

# %%
from mmcourse.sam.evaluate import best_of, predict_batch
from mmcourse.sam.losses import mask_iou
from mmcourse.sam.prompts import LEVELS

amb = eval_set(100, seed=11, target="ambiguous")
amb_emb = sam.embed(amb.images)
masks, iou, _ = predict_batch(sam, amb_emb, amb.clicks[:, None], torch.ones(100, 1, dtype=torch.long))
amb_iou = mask_iou(masks[:, None], amb.levels[:, :, None])          # (100 clicks, 3 readings, 3 outputs)
lv = amb.levels
distinct = ((mask_iou(lv[:, 0], lv[:, 1]) < 0.9) & (mask_iou(lv[:, 1], lv[:, 2]) < 0.9)
            & (mask_iou(lv[:, 0], lv[:, 2]) < 0.9))
i = int(torch.where(distinct, amb_iou.amax(2).sum(1), torch.tensor(-1.0)).argmax())
fig, axes = plt.subplots(2, 4, figsize=(7.5, 4))
show_image(axes[0, 0], amb.images[i], "image + click")
axes[0, 0].scatter(*amb.clicks[i].tolist(), c="lime", marker="*", s=80, edgecolors="black")
axes[1, 0].axis("off")
axes[1, 0].text(0.5, 0.5, "SAM's outputs\n(predicted IoU)", ha="center", va="center", fontsize=9)
for j in range(3):
    axes[0, 1 + j].imshow(amb.levels[i, j].numpy(), cmap="gray")
    axes[0, 1 + j].set_title(f"reading: {LEVELS[j]}", fontsize=9)
    axes[1, 1 + j].imshow(masks[i, j].numpy(), cmap="gray")
    axes[1, 1 + j].set_title(f"out {j + 1} · pred {iou[i, j]:.2f}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
plt.tight_layout()
plt.show()
print("on all 100 clicks: mean IoU of output 1 / 2 / 3 against each reading")
for k, level in enumerate(LEVELS):
    print(f"  {level:6s}", " / ".join(f"{v:.2f}" for v in amb_iou[:, k].mean(0).tolist()),
          f"   best of 3: {amb_iou[:, k].amax(1).mean():.2f}")
print("mean predicted IoU of output 1 / 2 / 3:", " / ".join(f"{v:.2f}" for v in iou.mean(0).tolist()))
print("share of the image output 1 / 2 / 3 covers:", " / ".join(f"{v:.2f}" for v in masks.float().mean((0, 2, 3)).tolist()))
print("share of clicks where output 1 / 2 / 3 is SAM's pick:",
      " / ".join(f"{v:.2f}" for v in torch.bincount(iou.argmax(1), minlength=3).div(100).tolist()))
print(f"clicks where output 1 matches no reading (IoU < 0.2 with all three): {(amb_iou[:, :, 0].amax(1) < 0.2).float().mean():.2f}")

# %% [markdown]
# Only partly. Outputs 1 and 2 are near copies (same scores on part and whole, same share of the
# image). Output 3 leans only slightly toward the group: even on the click shown it is the square
# plus a few specks. SAM's pick is output 2 on almost every click (printed). The order part / whole
# / group is the one the course's extra term assigns, not a specialisation that emerged.
#
# Is the three-output model worth it? Measured on 400 ambiguous test clicks (stored),
# against a **single-output** model trained with the same recipe and steps but one mask for every
# prompt. The fair comparison is SAM's own pick (the highest predicted IoU), paired on the same
# clicks; the best of 3 is an oracle that knows the answer.

# %%
res = load_results("sam_ambiguity")
pm = lambda r: f"{r['value']:.3f} ± {r['se']:.3f}"  # noqa: E731
rows = [[lvl, pm(r["highest_predicted"]), pm(r["single_output"]), pm(r["pick_minus_single"]), pm(r["best_of_3"]),
         " / ".join(f"{v:.2f}" for v in r["per_output"])] for lvl, r in res["levels"].items()]
display(Markdown(markdown_table(["reading", "SAM's pick", "single-output model", "pick − single (same clicks)",
                                 "best of 3 (oracle)", "output 1 / 2 / 3"], rows)))
print(f"{res['n']} clicks; share where output 1 / 2 / 3 is SAM's pick:",
      " / ".join(f"{v:.2f}" for v in res["chosen_output_share"]))

# %% [markdown]
# By SAM's own pick the three-output model is slightly better than the single-output one on all
# three readings: the paired differences are at most two hundredths, about five standard errors
# from zero for part and whole, two and a half for the group. That rests on one training run of
# each model; the standard error covers clicks, not training runs, and a second run could move a
# gap this small. Output 3's group answer (oracle
# column) beats either model's first choice; a user can pick it, or ask for it with a second click
# (section 7).

# %% [markdown]
# ## 6. Text as a prompt, the paper's way
#
# The released SAM has no text prompt (the `text_proj` slot here is the course's). The paper's
# proof of concept is a separately trained model: each mask larger than 100² pixels is prompted in
# training with the CLIP **image** embedding of a crop around it (its box enlarged 1–2×, the pixels
# outside the mask zeroed on half the crops), followed by corrective clicks; at inference the CLIP
# **text** embedding of a phrase takes its place. The paper relies on CLIP's alignment alone: text
# works zero-shot, without one phrase in training, and it shows the result in pictures, without a
# score. The course does the same with notebook 04's CLIP, which saw only whole one-object scenes,
# so its crop is a scene-sized window centred on the object with the other objects always painted
# over (`object_crops`); no clicks follow a text prompt in training (a simplification, so that text
# is scored alone; not tested), and the paper's 100²-pixel floor has no counterpart (a whole scene
# here is 64² pixels). Which of 04's two CLIPs (`clip_shapes_named`; `clip_shapes_broad`, half its
# scenes in random colours) has image and text towers that agree on such crops, and what a zoomed
# crop or kept neighbours do (validation scenes, stored):

# %%
agree = load_results("sam_text")
rows = []
for model, crops_ in agree["models"].items():
    for crop, r in crops_.items():
        rows.append([model, crop, f"{r['top1_seen_shapes']['value']:.3f}", f"{r['top1_cross']['value']:.3f}",
                     f"{r['cosine_right_phrase']['value']:.2f}"])
display(Markdown(markdown_table(["CLIP", "crop", "right phrase nearest of 30 (seen shapes)", "(crosses)",
                                 "cosine(crop, right phrase)"], rows)))
print(f"{agree['objects']} objects of validation scenes, {agree['crosses']} of them crosses")

# %% [markdown]
# Both CLIPs name almost every object from the scene-sized crop, and `clip_shapes_named`'s text
# embedding lies closer to the crop's, so SAM uses it. Kept neighbours confuse it, and so do zoomed
# crops (which this CLIP never saw) on seen shapes; that zoomed crosses score perfectly suggests it
# reads most zoomed crops as crosses (not tested). *Predict:* better or worse than a click?

# %%
from mmcourse.data.shapes import ShapesWorld

texts = ["the red triangle", "the blue square", "the green circle", "the yellow cross"]
scene = ShapesWorld(image_size=64, max_objects=4).render([
    dict(shape="triangle", colour="red", size="large", position="top left"),
    dict(shape="square", colour="blue", size="large", position="middle"),
    dict(shape="circle", colour="green", size="small", position="bottom right"),
    dict(shape="cross", colour="yellow", size="large", position="top right")], seed=1)
sam.set_image(scene.image)
fig, axes = plt.subplots(1, 4, figsize=(8, 2.4))
for ax, t in zip(axes, texts):
    pred = sam.predict(text=t, multimask_output=False)
    empty = "" if pred.masks[0].any() else " (empty mask)"
    show_image(ax, scene.image, f'"{t}"\nIoU pred {round(float(pred.iou_predictions[0]), 2) + 0.0:.2f}{empty}', pred.masks[:1], fontsize=8)
plt.show()

# %%
from mmcourse.sam.evaluate import per_scene_ious

es = eval_set(150, seed=5)                      # scenes never used for a choice, reused in sections 7 and 8
live = per_scene_ious(sam, es)
print(f"this run, {len(es.images)} scenes: text mIoU {live['text'].mean():.3f}, the trivial 'every object' mask "
      f"{live['every_object'].mean():.3f}, every object of the named colour {live['colour_only'].mean():.3f}, "
      f"one click {live['1click'].mean():.3f}")
from mmcourse.sam.evaluate import TextTable

idx = torch.arange(len(es.images))
feats = TextTable(sam)(es.batch.shape[idx, es.k], es.batch.colour[idx, es.k], torch.full((len(idx),), -1))
text_masks, text_pred, _ = predict_batch(sam, sam.embed(es.images), text=feats, multimask=False)
area = text_masks[:, 0].flatten(1).sum(1).float()
print(f"the text masks: {(area == 0).float().mean():.0%} empty, median area {area.median():.0f} of 4,096 pixels; "
      f"mean predicted IoU {text_pred[:, 0].mean():.3f} against the actual {live['text'].mean():.3f}")


def token_norms(model):
    """The size (norm) of the sparse token a click makes and of the one a phrase makes."""
    one_click = (es.clicks[:1, None], torch.ones(1, 1, dtype=torch.long))
    point_token = model.prompt_encoder(points=one_click, boxes=None, masks=None)[0][0, 0]
    text_token = model.prompt_encoder(points=None, boxes=None, masks=None,
                                      text=model.encode_text(["the red circle"]))[0][0, 0]
    return point_token.norm().item(), text_token.norm().item()


print("token sizes in sam_shapes: a click's token %.1f, a phrase's token %.1f" % token_norms(sam))
for m, what in (("seen_text_miou", "text, 'the red circle' (seen shapes; target ≥ 0.75, not met)"),
                ("seen_every_object_miou", "  baseline: one mask of every object"),
                ("seen_colour_only_miou", "  baseline: every object of the named colour"),
                ("seen_1click_miou", "  one click"),
                ("seen_crop_miou", "  the training prompt: CLIP image embedding of the crop"),
                ("seen_text_size_miou", "text with the size, 'the small red circle'"),
                ("heldout_text_miou", "text naming a cross ('the red cross')"),
                ("heldout_every_object_miou", "  baseline for it")):
    print(f"shipped, held-out test scenes: {what:58s} {reg.describe(m)}")

# %% [markdown]
# Far worse than a click and than the trivial every-object mask, for phrases and for the very
# crops the slot trained on alike: the decoder never learned to follow an embedding; CLIP is not
# the problem (the table above). The decoder answers the text slot with small masks, far smaller
# than an object (printed), and its IoU head, a regression not clamped to [0, 1], knows it. Three suspects,
# never separated: in `sam_shapes`'s recipe text is 8 of 32 prompts a step, its loss is averaged in
# with the rest, and the CLIP embedding enters `text_proj` at unit length, so a phrase's token is
# several times smaller than a click's, whose sines and cosines of its position are of order 1
# (printed).
#
# The paper, too, trained a separate model for text. The course's is `sam_shapes_text`: the same
# model, trained by a second recipe (`TEXT_SLOT_RECIPE`, printed below) that changes three things
# at once, not separated:
#
# - **more text prompts**: two extra on every scene's image embedding (as SAM decodes many masks
#   per image embedding), on top of the ordinary prompts, which are now all points and boxes;
# - **more weight**: the text prompts' mean loss counts as much as all the others';
# - **a larger token**: the CLIP embedding is scaled before `text_proj`.
#
# It trains no tracking scenes, to stay within the 10-minute build. Its target is every object that
# looks like the crop (same shape, colour and size), as a crop cannot tell such objects apart.
#
# It departs from the paper once more. CLIP's image and text embeddings sit in two separate cones
# of its space, large CLIPs' too (Liang et al. 2022, "Mind the Gap"), and the slot learned the
# image crops' cone. So at inference the text embedding is moved by the mean crop embedding minus
# the mean phrase embedding (of training scenes and phrases; stored with the weights) and
# renormalised: the shift Liang et al. apply to study the gap, and one of the fixes CLOSE (Gu et
# al. 2022) compares for training on text alone. *Predict:* which of the four phrases find their
# object now?

# %%
from mmcourse.sam.tasks import TEXT_CHECKPOINT, load_sam

sam_text = load_sam(TEXT_CHECKPOINT)
reg_text = entry(TEXT_CHECKPOINT)
sam_text.set_image(scene.image)
fig, axes = plt.subplots(1, 4, figsize=(8, 2.4))
for ax, t in zip(axes, texts):
    pred = sam_text.predict(text=t, multimask_output=False)
    show_image(ax, scene.image, f'"{t}"\nIoU pred {float(pred.iou_predictions[0]):.2f}', pred.masks[:1], fontsize=8,
               halo="white")
plt.show()
live_text = per_scene_ious(sam_text, es)
print(f"this run, the same {len(es.images)} scenes: text mIoU {live_text['text'].mean():.3f} "
      f"(sam_shapes: {live['text'].mean():.3f}), one click {live_text['1click'].mean():.3f}")

# %%
fmt = lambda r, sign="": f"{r['value']:{sign}.3f} ± {r['se']:.3f}"  # noqa: E731  (sign="+" for a gain)
rows = [[what, *(fmt(reg_text.estimate(f"{part}_{key}").to_dict(), "+" if key.endswith("gain") else "")
                 for part in ("seen", "heldout"))] for what, key in (
    ("text, the CLIP text embedding as it is", "text_plain_miou"),
    ("text, moved across the modality gap (target ≥ 0.75 seen; not met at training seed 1)", "text_miou"),
    ("  the move's gain, paired over the same scenes", "text_shift_gain"),
    ("text with the size word ('the small red circle'), moved", "text_size_miou"),
    ("  the move's gain, paired", "text_size_shift_gain"),
    ("the training prompt: CLIP image embedding of the crop", "crop_miou"),
    ("baseline: one mask of every object", "every_object_miou"),
    ("baseline: every object of the named colour", "colour_only_miou"),
    ("one click (sam_shapes's targets: ≥ 0.92 seen, ≥ 0.78 held out)", "1click_miou"),
    ("box (sam_shapes's target: ≥ 0.92)", "box_miou"))]
display(Markdown(markdown_table(["sam_shapes_text, 1,000 test scenes", "seen shapes", "held-out cross"], rows)))
curves = load_results("sam_training")
text_recipe, ship = curves[TEXT_CHECKPOINT]["recipe"], curves["sam_shapes"]["recipe"]
shipped_text = round(ship["batch_size"] * (1 - ship["point_share"] - ship["box_share"]))
click_token, text_token = token_norms(sam_text)
print(f"its recipe: {text_recipe['batch_size'] * text_recipe['text_per_scene']} text prompts a step, "
      f"{text_recipe['text_per_scene']} extra on each scene (sam_shapes: {shipped_text} of its {ship['batch_size']} prompts); "
      f"the text prompts' mean loss × {text_recipe['text_weight']:g} beside the others' mean; "
      f"text embedding × {sam_text.cfg.text_scale:g} (token sizes now: a click's {click_token:.1f}, "
      f"a phrase's {text_token:.1f}); {text_recipe['track_prompts']} tracking scenes a step "
      f"(sam_shapes: {ship['track_prompts']}); distance moved across the gap {float(sam_text.text_shift.norm()):.2f} "
      f"(unit embeddings); trained in {reg_text.metrics['train_cpu_s']:.0f} CPU s on one thread (limit 600)")
seed1 = load_results("sam_text_seed")["metrics"]
print(f"the same recipe, training seed 1 (stored, the same test scenes): text moved {fmt(seed1['seen_text_miou'])}, "
      f"as it is {fmt(seed1['seen_text_plain_miou'])}, the move's gain {fmt(seed1['seen_text_shift_gain'], '+')}; "
      f"one click {fmt(seed1['seen_1click_miou'])}; "
      f"box {fmt(seed1['seen_box_miou'])}")

# %% [markdown]
# The four phrases now find their objects (the figure; each colour appears once in that scene, so
# the colour word alone would do). Text lies far above the every-object mask and `sam_shapes`'s
# slot, a few hundredths below the training crops it stands in for. The course's target of 0.75 on
# seen phrases (the paper gives no score to match) is not met: the shipped run reaches it on the
# 1,000 test scenes, with or without the move across the gap, by less than two standard errors, and
# the same recipe at a second training seed falls short (both printed; the 150 scenes above are a
# smaller, noisier sample). The move helps or is neutral in every row of the table, and helps at
# seed 1 (the paired gains). Clicks and boxes stay close to `sam_shapes`; at seed 1 one click falls
# just under `sam_shapes`'s target of 0.92. Yet text stays below the colour-only rule, a rule that
# reads the colour word alone. Which word does it read? On scenes where the named object has a twin
# of its colour and another shape, only the shape word can tell them apart; where the twin shares
# its shape, only the colour word can (test scenes, stored):

# %%
twins = load_results("sam_text_twins")
rows = [[name, *(f"{fmt(r[k]['picks_named'])} (IoU {r[k]['iou_named']['value']:.2f} / {r[k]['iou_twin']['value']:.2f})"
                 for k in ("same_colour", "same_shape"))] for name, r in twins["models"].items()]
display(Markdown(markdown_table([f"text prompt, {twins['per_seed'] * 5} scenes each",
                                 "twin of the same colour: covers the named one better (IoU named / twin)",
                                 "twin of the same shape"], rows)))
print(f"chance: {twins['chance']}")
from mmcourse.sam.prompts import twin_objects, world

train_scenes = world(train=True).sample(1000, seed=0)
alone = 1 - twin_objects(train_scenes)[train_scenes.valid].float().mean()
print(f"training scenes (1,000): the colour word alone names what the phrase names for {alone:.0%} of objects")

# %% [markdown]
# The colour word decides: against a twin of another colour the mask is right nearly every time,
# against a twin of the same colour it picks the named object in not many more than half the scenes
# (chance: one half), and its mask covers much of the twin as well (the IoUs). (`sam_shapes`'s
# small masks score about chance either way.) So the colour word decides and the
# shape word is barely read, and we do not claim the held-out cross is found by its name.
# Training has no words, but in its scenes the colour alone picks out the target of most crops
# (printed). Our reading, not tested: matching the colour already lowered most of the loss, so the
# shape, needed for the rest, was learned less; a shortcut, not the paper's result.
# `sam_shapes_text` trains no tracking scenes, so `sam_shapes` keeps its recipe and does everything
# else in this notebook.
#
# ## 7. Refinement: more clicks
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
from mmcourse.sam.prompts import click_from_error as course_click_from_error

show_source(course_click_from_error)

# %% [markdown]
# mIoU against the number of clicks, with the previous mask's logits fed back as the mask
# prompt and without. Each corrective click is drawn at random from the error region (the
# training rule); the dotted curve clicks as the paper's evaluation does, at the error pixel
# farthest from the region's boundary. All first clicks here (and every 1-click mIoU) are random
# interior pixels, as a user's clicks fall, where the paper's evaluation puts the first click at the
# object's farthest-from-boundary pixel too. *Predict:* which curve climbs?

# %%
from mmcourse.sam.evaluate import click_curve

from mmcourse.protocol import mean

group_per_scene = click_curve(sam, amb, amb.levels[:, 2], 5, per_scene=True)
curves = {"plain: visible object": click_curve(sam, es, es.levels[:, 0], 5),
          "ambiguous: whole shape": click_curve(sam, amb, amb.levels[:, 1], 5),
          "ambiguous: group": [v.mean().item() for v in group_per_scene],
          "ambiguous: group, no mask fed back": click_curve(sam, amb, amb.levels[:, 2], 5, feed_mask=False),
          # the paper's evaluation rule: each click at the error pixel farthest from the region's boundary
          "plain, farthest-pixel clicks": click_curve(sam, es, es.levels[:, 0], 5, rule="farthest")}
fig, ax = plt.subplots(figsize=(4.5, 2.8))
for name, c in curves.items():
    ls = "--" if "no mask" in name else ":" if "farthest" in name else "-"
    ax.plot(range(1, 6), c, marker="o", label=name, ls=ls)
ax.set_xlabel("clicks"), ax.set_ylabel("mIoU"), ax.set_xticks(range(1, 6))
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()
for name, c in curves.items():
    print(f"{name:38s}", " ".join(f"{v:.3f}" for v in c))
gain = mean(group_per_scene[2] - group_per_scene[0])        # paired: the same targets after 1 and 3 clicks
print(f"group target: mIoU gain from 1 to 3 clicks {gain} over {gain.n} targets (target > 0.05)")
assert gain.value > 0.05, f"the gain {gain} misses its target > 0.05"

# %% [markdown]
# The stored measurement (400 targets of each kind, held-out test scenes) and what limits plain targets:

# %%
ref = load_results("sam_refinement")
rows = [[k.replace("_", " "), " ".join(f"{v:.3f}" for v in r["mask_fed_back"]), " ".join(f"{v:.3f}" for v in r["points_only"])]
        for k, r in ref.items() if isinstance(r, dict)]
display(Markdown(markdown_table(["targets", "mIoU, 1–5 clicks, mask fed back", "points only"], rows)))
print(f"plain targets: {ref['plain_wrong_pixels_near_boundary']:.0%} of the wrong pixels after one click lie within "
      f"1 pixel of the object's boundary (objects average {ref['plain_mean_object_pixels']:.0f} pixels)")

# %% [markdown]
# The group curve climbs; the others stay flat or slip a little:
#
# - **Group**: the first click usually returns one object; a click on a missed neighbour says "that
#   one too", and mIoU climbs steeply with the second click, then slips slightly (stored
#   table). Without the mask fed back it climbs less: in training every second-round click came
#   with the previous logits.
# - **Plain** objects: most wrong pixels sit on the boundary (the share printed above), so a
#   corrective click says almost nothing new. The paper's farthest-pixel rule does not lift it
#   either (dotted), so the flat curve is not an artefact of the random rule. The small slips
#   (about 0.01) have no standard error here; read them as flat.
# - **Whole shape**: our untested reading is that a click on a hidden pixel lands on *another*
#   object and so asks for the group.

# %% [markdown]
# ## 8. Zero-shot: a shape it never saw
#
# No training scene contained a **cross**. *Predict* the mIoU of one click on a cross, against
# seen shapes.

# %%
from mmcourse.protocol import seeds
from mmcourse.sam.evaluate import boundary_share
from mmcourse.sam.flood_fill import FLOOD_TOLERANCES, flood_fill

# the baseline's one choice, its colour tolerance, made on validation scenes
val = eval_set(150, seed=seeds("sam", "val")[0])
tol = max(FLOOD_TOLERANCES, key=lambda t: mask_iou(flood_fill(val.images, val.clicks, t), val.levels[:, 0]).mean())
heldout = eval_set(150, seed=2, target="heldout")
rows, flood_miou = [], {}
for name, s_ in (("seen", es), ("held-out cross", heldout)):
    r_ = per_scene_ious(sam, s_, text=False)
    flood = mask_iou(flood_fill(s_.images, s_.clicks, tol), s_.levels[:, 0])
    flood_miou[name] = (mean(flood), mean(r_["1click"] - flood))
    rows.append([name, str(mean(r_["1click"])), f"{r_['oracle3'].mean():.3f}", f"{r_['box'].mean():.3f}",
                 str(mean(flood)), str(mean(r_["1click"] - flood)), f"{boundary_share(s_.levels[:, 0]).mean():.2f}"])
display(Markdown(markdown_table(["targets (150 scenes)", "1 click", "best of 3 (oracle)", "box",
                                 "flood fill from the click", "1 click − flood fill (same clicks)",
                                 "boundary pixels per object pixel"], rows)))
print(f"flood fill: the connected pixels within {tol:g} (RGB distance) of the clicked pixel's colour, "
      f"the tolerance chosen among {FLOOD_TOLERANCES} on 150 validation scenes")
m_, i_, _ = predict_batch(sam, sam.embed(heldout.images[:5]), heldout.clicks[:5, None], torch.ones(5, 1, dtype=torch.long))
held_masks, held_flood = best_of(m_, i_), flood_fill(heldout.images[:5], heldout.clicks[:5], tol)
fig, axes = plt.subplots(1, 5, figsize=(10, 2.6))
for j, ax in enumerate(axes):
    show_image(ax, heldout.images[j], f"IoU: SAM {mask_iou(held_masks[j], heldout.levels[j, 0]).item():.2f}\n"
               f"flood fill {mask_iou(held_flood[j], heldout.levels[j, 0]).item():.2f}", held_masks[j:j + 1], halo="white")
    ax.scatter(*heldout.clicks[j].tolist(), c="lime", marker="*", s=90, edgecolors="black", linewidths=0.8, zorder=3)
fig.suptitle("SAM's mask outlined; the click as a star", fontsize=9)
plt.show()

# %% [markdown]
# The model segments the cross without ever training on one, but the baseline sizes that: a
# flood fill from the same click, which learns nothing and knows no shape, does as well on seen
# shapes and better on crosses (paired differences in the table). The cross shows only that the
# model's answer does not hinge on shapes it saw. SAM's zero-shot claim is measured on 23 image datasets
# against RITM, a trained interactive segmenter; flood fill is our baseline because ShapesWorld
# objects are flat-coloured. Why the model loses ground on crosses is not tested: a cross has more
# boundary per pixel of area (table), and section 7 found most errors on boundaries.

# %%
# NBVAL_CHECK_OUTPUT
for m, what in (("seen_1click_miou", "1-click mIoU, seen shapes"), ("seen_box_miou", "box mIoU, seen shapes"),
                ("heldout_1click_miou", "1-click mIoU, held-out cross")):
    print(f"shipped sam_shapes (4-pixel patches), test scenes: {what:30s} {reg.describe(m)}")
    assert reg.metrics[m] >= reg.targets[m]["min"], f"{what} misses its target"

# %% [markdown]
# ## 9. The route, with SAM as the base
#
# **Segmentation: "everything" mode.** No user: a grid of 8 × 8 point prompts, three masks each
# (192 candidates), kept when the predicted IoU is above 0.8 and the mask is **stable** (the
# masks thresholded at logit −1 and +1 agree, IoU > 0.85) and at least 12 pixels, then NMS at
# box IoU 0.5. **Detection:** each kept mask's box, scored by its predicted IoU. **Recognition:**
# notebook 04's CLIP names each segment's crop zero-shot among the 30 colour–shape descriptions.
# **NMS** (non-maximum suppression) keeps the highest-scoring proposal and drops every other whose
# box overlaps it too much; **AP50** is the area under the precision–recall curve of detections
# counted correct at box IoU ≥ 0.5 (notebook 07 defines and draws it).
#
# SAM's generator, the last stage of the paper's data engine, uses a 32 × 32 grid, thresholds 0.88
# and 0.95 and NMS at 0.7; ours is coarser and lower, for 64-pixel images and a less confident
# model. The figure's test scenes may hold crosses.

# %%
from mmcourse.clip import zero_shot_classifier, zero_shot_predict
from mmcourse.clip.tasks import load_clip
from mmcourse.clip.zero_shot import shapes_classnames, shapes_templates
from mmcourse.sam.prompts import object_crops, world
from mmcourse.sam.route import everything, proposal_kinds, route
from mmcourse.sam.track import interior_point

clip = load_clip("clip_shapes_named")
names = shapes_classnames()
zs = zero_shot_classifier(clip, names, shapes_templates("ensemble"))
show = world(train=False).sample(4, seed=31, split="test")
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
listed = []
for i_scene, (ax, img) in enumerate(zip(axes, show.images)):
    seg = everything(sam, img)
    v = show.valid[i_scene]
    kinds = proposal_kinds(seg["boxes"], seg["masks"], show.boxes[i_scene][v], show.masks[i_scene][v])
    found = zero_shot_predict(clip, object_crops(img.expand(len(seg["masks"]), -1, -1, -1), seg["masks"]), zs) \
        if len(seg["boxes"]) else []
    labels = [names[int(c)].split(" ", 1)[1] for c in found]
    show_image(ax, img, f"{len(seg['boxes'])} segments", seg["masks"])
    draw_boxes(ax, seg["boxes"])
    # each number at its mask's deepest pixel, moved down while it would sit on an earlier one
    # (nested and overlapping segments share corners, so labels at the corners collide)
    placed = []
    for n, (x, y) in enumerate(interior_point(seg["masks"]).tolist() if len(seg["masks"]) else []):
        while any(abs(x - px) < 7 and abs(y - py) < 7 for px, py in placed):
            y = y + 7 if y < 56 else y - 14
        placed.append((x, y))
        ax.text(x, y, str(n + 1), fontsize=8, ha="center", va="center", color="black",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    listed.append(", ".join(f"{n + 1} {l} ({s:.2f}, {kd})"
                            for n, (l, s, kd) in enumerate(zip(labels, seg["scores"].tolist(), kinds))))
plt.show()
print("segment number (drawn at the segment's deepest pixel), CLIP's label, predicted IoU and kind of each kept segment:")
for n, line in enumerate(listed):
    print(f"scene {n + 1}: {line}")

# %% [markdown]
# The kinds: "object" is a hit by AP50's rule; the rest are the extra proposals that lower AP50. A
# *duplicate* is an object found again, often with stray pixels that stretch its box past NMS
# (*stretched*: a duplicate ranked above the clean mask of the same object, so it is the false
# positive that comes first); a *group* covers two objects, a *part* less than one.

# %%
live_route = route(sam, n=10, seed=21)
print("this run, 10 scenes (noisy; the stored rows below are the measurement):",
      ", ".join(f"{k} {v:.3f}" for k, v in live_route.items() if isinstance(v, float)))
stored_route = load_results("sam_route")
glip = entry("glip_shapes").metrics["names_AP50"]
rows = []
for split, r in stored_route.items():
    rows.append([split, f"{r['AP50_class_agnostic']['value']:.3f} ± {r['AP50_class_agnostic']['se']:.3f}",
                 f"{r['recall_matched']:.3f}",
                 f"{r['detections_per_scene']['value']:.1f} ± {r['detections_per_scene']['se']:.1f} "
                 f"({r['objects'] / r['scenes']:.1f})",
                 f"{r['AP50_shape_classes']['value']:.3f} ± {r['AP50_shape_classes']['se']:.3f}",
                 f"{r['recognition_shape_accuracy']['value']:.3f} ± {r['recognition_shape_accuracy']['se']:.3f}",
                 f"{r['recognition_true_crops_shape_accuracy']['value']:.3f}", f"{r['recognition_chance']:.1f}"])
display(Markdown(markdown_table(["scenes (held-out test set)", "AP50, class-agnostic", "recall at box IoU 0.5",
                                 "detections per scene (objects)", "AP50, CLIP's shape labels",
                                 "shape of found segments", "shape of true objects' crops", "chance"], rows)))
print(f"{r['scenes']} scenes per row; AP50's standard error over {r['AP50_class_agnostic']['n']} draws of "
      f"{r['scenes'] // r['AP50_class_agnostic']['n']} scenes")
print(f"beside: GLIP (notebook 07), trained on boxes, shape-name prompt: AP50 {glip:.3f} (stored with the checkpoint)")

# %% [markdown]
# Detection from SAM's masks finds the objects with no detection training. GLIP, trained on these
# scenes' boxes, scores higher (a reference point from notebook 07, not a paired comparison):
# everything mode misses almost no object (recall) but pays for extra proposals. Recognition of the
# found segments is far above chance (1 in 5 shapes) and close to CLIP reading the true objects'
# crops, so segmentation costs recognition little. AP50 with CLIP's labels can match the
# class-agnostic one although a wrong label loses a hit: per class, a duplicate that CLIP names as
# another shape is no false positive of this shape. No flood-fill grid baseline is run here; on flat-coloured scenes it would likely
# score near the model, as in section 8.
#
# ## 10. Tracking
#
# A short clip: a small object crosses a large one, behind it or in front, starting from its true
# box in frame 0. Three ways to prompt the next frame:
#
# - **click + mask**: a click at the previous mask's deepest pixel plus its logits as the mask
#   prompt, the pair training used for *refinement*, which assumes the mask is nearly right;
# - **box**: a box of the object's first-frame size where it should be now (last centre plus
#   velocity), enlarged by a margin, wider in frame 1, where no velocity is known yet. While the
#   mask's area strays from frame 0's by more than a tolerance (the object partly hidden, or merged
#   with a neighbour), the box **coasts**: it moves on at the last velocity (the rules:
#   `mmcourse.sam.track`);
# - **oracle click**, **oracle box**: a click inside the true object, or its true box, in every
#   frame: no propagation, the ceiling that segmentation sets for each kind of prompt.
#
# Unlike SAM, whose training never sees a tracker, the course's recipe trains on this situation:
# each step adds 12 scenes where a small object is partly hidden, half prompted as a tracker would
# (the whole object's box, shifted a little, with the previous mask as the dense prompt), half with
# the tight box of its visible part alone.
#
# *Predict:* where does each rule lose the object?

# %%
from mmcourse.sam.track import moving_clip, track

from matplotlib.patches import Rectangle

fig, axes = plt.subplots(2, 4, figsize=(8, 4.6))
for row, behind in enumerate((True, False)):
    frames, k = moving_clip(12, seed=4, behind=behind)
    results = {rule: track(sam, frames, k, rule) for rule in ("click+mask", "box", "oracle box")}
    for col, t in enumerate(range(0, 12, 3)):
        ax = axes[row, col]
        ious = [results[rule]["iou_per_frame"][t] for rule in ("click+mask", "box")]
        show_image(ax, frames.images[t], f"t={t}: c+m {ious[0]:.2f} · box {ious[1]:.2f}",
                   # outline colours follow the stack's order (blue, orange, green); the empty middle
                   # mask skips orange, which the tracked objects are often painted in
                   torch.stack([results["click+mask"]["masks"][t], torch.zeros_like(results["box"]["masks"][t]),
                                results["box"]["masks"][t]]), lw=0.8)
        x0, y0, x1, y1 = frames.boxes[t, k].tolist()
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec="white", ls=":", lw=1))
    axes[row, 0].set_ylabel("passes behind" if behind else "passes in front", fontsize=9)
    print(("behind: " if behind else "in front: ") +
          ", ".join(f"{rule} mIoU {r['miou']:.3f}" for rule, r in results.items()))
    obj, big = frames.masks[:, k], frames.masks[:, 1 - k]
    for name, ref in (("the object", obj), ("object + large neighbour", obj | big), ("the large neighbour", big)):
        print(f"  click + mask's IoU with {name:24s} at t = 3 / 6 / 11:",
              " / ".join(f"{v:.2f}" for v in mask_iou(results["click+mask"]["masks"], ref)[[3, 6, 11]].tolist()))
fig.suptitle("outline: click + mask (blue), box rule (green); dotted white: the object's true visible box",
             fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The stored run: the box rule's margin, tolerance, dense prompt and frame-1 margin chosen on 40
# validation clips, then every rule on the same 40 test clips (half behind, half in front):

# %%
trk = load_results("sam_tracking")
rows = [[rule, f"{r['miou']['value']:.3f} ± {r['miou']['se']:.3f}", f"{r['behind']['value']:.3f}",
         f"{r['in_front']['value']:.3f}"] for rule, r in trk["rules"].items()]
display(Markdown(markdown_table(["rule", f"mIoU over {trk['clips']} clips", "behind", "in front"], rows)))
fig, ax = plt.subplots(figsize=(4.5, 2.6))
for rule, r in trk["rules"].items():
    ax.plot(range(trk["frames"]), r["per_frame"], marker=".", label=rule, ls="--" if "oracle" in rule else "-")
ax.set_xlabel("frame"), ax.set_ylabel("mean IoU over clips")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()
print("chosen on validation clips:", f"margin {trk['val_choice']['margin']:g} px (frame 1: {trk['val_choice']['first_margin']:g} px),",
      f"tolerance {trk['val_choice']['tolerance']:g},",
      "previous mask as dense prompt" if trk["val_choice"]["dense"] else "no dense prompt")
gain = trk["first_margin_gain"]
print(f"frame 1's wider box, paired over the {gain['n']} test clips: {gain['value']:+.3f} ± {gain['se']:.3f}")
for rule in ("box", "oracle box"):
    print(f"{rule}: tracking mIoU over {trk['clips']} test clips {reg.describe('tracking_miou' if rule == 'box' else 'tracking_oracle_box_miou')}"
          + ((" (target ≥ 0.8, " + ("met)" if reg.metrics["tracking_miou"] >= 0.8 else "not met)")) if rule == "box" else ""))

# %% [markdown]
# Click + mask loses the object from t = 3: the mask spreads onto the large neighbour it touches,
# the next click lands there, and the mask becomes the pair, then the neighbour (printed). The box
# rule keeps the object that passes in front. The one that passes behind shows where the rule still
# fails: it coasts while the object is hidden and has lost it at t = 9 (IoU 0.08 in the title).
#
# Over the 40 test clips the box rule scores 1.8 standard errors above the target of 0.80 (the
# table): met on the estimate, not beyond doubt, and the error covers clips, not training runs (a
# second training seed of the recipe also met it: README maintainer notes). The recipe's 12 partly
# hidden scenes a step pay for much of it (the README compares 4, 8 and 12 on validation clips). In
# frame 1, with no velocity yet, the wider box helps a little (the paired gain, printed). The rest
# of its loss lies in the overlap frames (the plot), more when the object passes behind (the table).
# Adding the previous mask to the box scores lower (the table), so validation clips chose the box
# alone. Why is not tested; note that training never gave the tracker's whole-object box without
# the mask.
#
# The oracle box, the true box in every frame, dips in the same frames (the plot) and over the clip
# scores only a few hundredths above the box rule: segmenting a half-hidden object sets the
# ceiling. The oracle click scores below the oracle box, in front as much as behind; why is not
# tested (a click on an object that touches a neighbour may return the pair, as click + mask did).
# SAM 2, trained on video, adds what frame-to-frame prompting lacks: a memory bank of past frames'
# features and object pointers, which memory attention reads before the decoder, and a head that
# predicts whether the object is visible at all in a frame, the job our coasting rule does by hand.
#
# ## 11. Optional: real SAM weights
#
# `from_segment_anything` loads segment-anything's state dicts into `mmcourse.sam` (outputs match
# to 1e-5: `tests/test_sam_reference.py`): the prompt
# encoder, two-way transformer and mask decoder keep their names; the image encoder's
# `pos_embed` is reshaped and its MLP renamed (`lin1/lin2` → `fc1/fc2`). The configuration
# (ViT-B: 12 blocks, 14 × 14 windows, 4 global blocks, relative positions) is read off the
# weights' shapes. The course's own encoder has no MAE pre-training and global attention in every
# block: at 64 pixels windows only made a step slower. With the ViT-B checkpoint on disk, the cell
# segments scikit-image's astronaut from one click (tens of seconds to minutes, depending on the
# CPU); without it, it explains how to get it.

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
        show_image(ax, photo, f"mask {j + 1}: IoU pred {pred.iou_predictions[j]:.2f}", pred.masks[j:j + 1])
        ax.scatter([270], [100], c="lime", marker="*", s=80, edgecolors="black")
    plt.show()
    print(f"ViT-B encoder {t_enc:.1f} s for the image, prompt encoder + decoder {1000 * t_dec:.0f} ms per click")
else:
    print("Skipped: set MMCOURSE_SAM_WEIGHTS to segment-anything's ViT-B checkpoint to run this cell.\n"
          "On a machine with internet: download sam_vit_b_01ec64.pth from the segment-anything README\n"
          "(https://github.com/facebookresearch/segment-anything#model-checkpoints), copy it here and\n"
          "restart the kernel with MMCOURSE_SAM_WEIGHTS=/path/to/sam_vit_b_01ec64.pth.")

# %% [markdown]
# ## 12. What we measured
#
# The shipped checkpoint's numbers (held-out test scenes: 1,000 scenes, 200 at each of 5 seeds, with
# standard errors; stored with the checkpoint) and the stored measurements:

# %%
refine = load_results("sam_refinement")
tr = trk["rules"]
summary = [[what, reg.describe(m)] for m, what in (
    ("seen_1click_miou", "1-click mIoU, seen shapes"), ("seen_box_miou", "box mIoU, seen shapes"),
    ("heldout_1click_miou", "1-click mIoU, held-out cross"))]
summary += [[f"  baseline: flood fill from the click, {name} (150 scenes, section 8); model − flood fill",
             f"{f_}; {d_}"] for name, (f_, d_) in flood_miou.items()]
summary += [[what, reg.describe(m)] for m, what in (("seen_text_miou", "sam_shapes: text mIoU, seen shapes (target ≥ 0.75, not met)"),
    ("seen_every_object_miou", "  baseline: every object"), ("seen_colour_only_miou", "  baseline: every object of the named colour"),
    ("seen_crop_miou", "  prompted with the training crops"),
    ("heldout_text_miou", f"sam_shapes: text mIoU, phrases naming a cross (every-object mask: {reg.metrics['heldout_every_object_miou']:.3f})"))]
summary += [[what, reg_text.describe(m)] for m, what in (
    ("seen_text_miou", "sam_shapes_text: text mIoU, seen shapes, moved across the gap (target ≥ 0.75; "
                       f"not met: the second training seed gives {seed1['seen_text_miou']['value']:.3f})"),
    ("seen_text_plain_miou", "  the same, the text embedding as it is"),
    ("twin_shape_word_picks", "  named object over a same-colour twin (chance 0.5)"),
    ("seen_1click_miou", "  1-click mIoU, seen shapes"))]
summary += [
    ["decoder per prompt, one thread (median; target ≤ 5 ms)", f"{stored['decoder_ms_median']:.1f} ms"],
    ["ambiguous clicks (400; one training run of each model): SAM's pick minus single output, paired: part / whole / group",
     " / ".join(f"{r['pick_minus_single']['value']:+.3f} ± {r['pick_minus_single']['se']:.3f}" for r in res["levels"].values())],
    ["ambiguous clicks: mean predicted IoU of output 1 / 2 / 3 (none dead); best of 3 on the group",
     " / ".join(f"{v:.2f}" for v in res["mean_predicted_iou"]) + f"; {res['levels']['group']['best_of_3']['value']:.3f}"],
    ["refinement, group targets: 1 → 3 → 5 clicks", " → ".join(f"{refine['ambiguous_group']['mask_fed_back'][i]:.3f}" for i in (0, 2, 4))],
    ["everything mode: AP50 with CLIP's labels (GLIP: names prompt)",
     f"{stored_route['seen']['AP50_shape_classes']['value']:.3f} ({glip:.3f})"],
    ["recognition of found segments (true crops; chance)",
     f"{stored_route['seen']['recognition_shape_accuracy']['value']:.3f} "
     f"({stored_route['seen']['recognition_true_crops_shape_accuracy']['value']:.3f}; 0.2)"],
    [f"tracking mIoU, {trk['clips']} clips: click + mask / box / oracle box (target for box ≥ 0.8)",
     " / ".join(f"{tr[r]['miou']['value']:.3f} ± {tr[r]['miou']['se']:.3f}" for r in ("click+mask", "box", "oracle box"))],
]
display(Markdown(markdown_table(["claim or target", "measured"], summary)))

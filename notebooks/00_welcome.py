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
# # 00 · Welcome to mmcourse
#
# This course takes apart the ideas behind today's generative and multimodal models:
# **diffusion** (扩散模型), the **Vision Transformer** (ViT), **CLIP** (contrastive image–text
# training, 对比学习), **BLIP**, **SAM** (promptable segmentation, 分割) and **GLIP** (detection as
# phrase grounding, 定位), and it closes by joining its own CLIP and diffusion parts into a tiny
# text-to-image model (文生图). Every idea comes with an experiment you can run on a laptop CPU,
# offline, in about a minute per notebook.
#
# This first notebook shows how the course works:
#
# 1. how to use the notebooks (run order, widgets, exercises, reading the code behind them);
# 2. a check that your environment is ready;
# 3. a tour of **ShapesWorld**, the small synthetic world every later topic trains on, and of
#    the real 8×8 handwritten digits that ship with scikit-learn;
# 4. the training loop every notebook uses;
# 5. a warm-up exercise and a glossary.

# %% [markdown]
# ## 1. How to use the course
#
# - **Run order.** Run each notebook top to bottom (*Run › Run All Cells*, or Shift+Enter cell by
#   cell). The notebooks are numbered in the order of the course: 01–02 diffusion, 03 ViT, 04 CLIP,
#   05 BLIP, 06 SAM, 07 GLIP, and 08 joins diffusion and CLIP into text-to-image. Each one
#   starts from a fresh kernel and takes under a minute.
#
# ```mermaid
# flowchart LR
#     W["00 welcome<br/>ShapesWorld, digits, fit"] --> F["01 forward diffusion<br/>data to noise"]
#     F --> R["02 reverse diffusion<br/>noise to data"]
#     W --> V["03 ViT<br/>patches and attention"]
#     V --> C["04 CLIP<br/>image and text towers"]
#     C --> B["05 BLIP<br/>match, caption, clean data"]
#     C --> S["06 SAM<br/>segment from prompts"]
#     C --> G["07 GLIP<br/>detect by grounding words"]
#     S --> G
#     R --> T["08 text to image<br/>the course's parts joined"]
#     C --> T
# ```
#
# - **Predict, then run.** Before each key experiment a line asks you to predict the outcome.
#   Write your guess down (a number, a picture) before you run the cell: the surprises are where
#   the learning is.
# - **Widgets.** Sliders, drop-downs and clickable images let you change an input and see the
#   effect at once. They need a live kernel: in a static viewer you see the picture they had when
#   the notebook was executed.
# - **Exercises.** Cells marked *Exercise* ask you to write a short function. In the teacher
#   version the solution sits between `### BEGIN SOLUTION` and `### END SOLUTION`; the student
#   version (made by `make student`) has `raise NotImplementedError` there instead. A checker
#   from `mmcourse.checks` runs your function next to the reference on several inputs and tells
#   you exactly which input differed and how.
# - **Kernels.** The models and algorithms live in the `mmcourse` package as small, documented
#   functions with the tensor shapes in their docstrings. The notebooks import them and show
#   their code: type `name??` in a cell (for example `fit??`) to read any of them, or use
#   `show_source(name)` as this notebook does. The names follow the reference libraries
#   (diffusers, timm, open_clip, segment-anything, GLIP), so what you read here carries over.

# %%
import os
import platform
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch

import mmcourse
from mmcourse.viz import setup_matplotlib, show_source

setup_matplotlib()
# %matplotlib inline

# %% [markdown]
# ## 2. Environment check
#
# The course needs no GPU and no network. The cell below prints what you are running on. The
# offline switches are set by `make lab`; loading anything from a model hub would fail with them
# on, and nothing in the course tries.

# %%
print(f"python      {platform.python_version()}  ({sys.executable})")
print(f"torch       {torch.__version__}  threads: {torch.get_num_threads()}  cuda available: {torch.cuda.is_available()}")
print(f"numpy       {np.__version__}")
print(f"mmcourse    {mmcourse.__version__}")
try:
    import ipywidgets

    print(f"ipywidgets  {ipywidgets.__version__}")
except ImportError:
    print("ipywidgets  missing: the widgets in this course will not show (run `make lab`)")
print("offline     HF_HUB_OFFLINE =", os.environ.get("HF_HUB_OFFLINE", "(not set)"))

# %%
# Kernels run on CUDA when present, but nothing needs it: every notebook is timed on a 2-core CPU.
x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
gram = x @ x.T  # (256, 256), symmetric in exact arithmetic
matmul_error = (gram.double() - x.double() @ x.double().T).abs().max().item()
print(f"float32 matmul: max error against float64 {matmul_error:.1e} (target < 1e-2)")
print(f"default dtype:  {torch.get_default_dtype()} (target torch.float32)")
assert matmul_error < 1e-2 and torch.get_default_dtype() == torch.float32

# %% [markdown]
# ## 3. ShapesWorld
#
# Real image data sets are large, slow to train on and hard to reason about. ShapesWorld is a
# tiny world we control completely: coloured shapes on a tinted background, each scene with
#
# - an **image** (3×32×32 by default, values in [0, 1]),
# - a **caption** from several templates (for CLIP and BLIP),
# - per-object **instance masks** (for SAM) and **boxes** (for detection),
# - each object's **phrase** and its character **span** in the caption (for GLIP's phrase grounding),
# - the **labels**: shape, colour, size and position on a 3×3 grid (for ViT classification).
#
# Because we know the true answer for every pixel and every word, we can measure exactly what a
# model learned. Some colour–shape pairs are **held out** of the training split: each of their
# colours and each of their shapes appears in training, but never the two together. Later
# notebooks ask whether a model recognises **an unseen colour–shape pair** (the ViT in 03, which
# was trained on the shape labels), and CLIP in 04 goes further: it names classes from their text
# alone, zero-shot (零样本). The cells below list the held-out pairs and count them in training.

# %%
from mmcourse.data.shapes import COLOUR_NAMES, HELDOUT_COMBOS, POSITIONS, SHAPES, SIZES, ShapesWorld

world = ShapesWorld(image_size=32, min_objects=1, max_objects=3)
batch = world.sample(16, seed=0, split="train")

# %%
# NBVAL_CHECK_OUTPUT
print("shapes   ", SHAPES)
print("colours  ", COLOUR_NAMES)
print("sizes    ", SIZES)
print("positions", POSITIONS)
print("held out ", ", ".join(f"{c} {s}" for c, s in HELDOUT_COMBOS))
print("images", tuple(batch.images.shape), batch.images.dtype, "masks", tuple(batch.masks.shape), "boxes", tuple(batch.boxes.shape))

# %%
from mmcourse.viz import show_images

fig = show_images(batch.images, titles=batch.captions, ncols=4, scale=2.0, title_width=30,
                  suptitle="training scenes and their captions")
plt.show()

# %% [markdown]
# **Predict, then run:** in 2,000 training scenes (about 4,000 objects spread over 30 colour–shape
# pairs), how many objects of a held-out pair do you expect?

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.data.shapes import pair_counts

counts = pair_counts(world.sample(2000, seed=1, split="train"))  # (colours, shapes)
held = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELDOUT_COMBOS}
print("objects per colour-shape pair in 2,000 training scenes (* = held out)")
print(" " * 7 + "".join(f"{s:>10s}" for s in SHAPES))
for i, colour in enumerate(COLOUR_NAMES):
    print(f"{colour:7s}" + "".join(f"{int(counts[i, j]):>9d}{'*' if (i, j) in held else ' '}" for j in range(len(SHAPES))))
print(f"objects of a held-out pair: {sum(int(counts[i, j]) for i, j in held)} (target 0)")

# %% [markdown]
# None: the count is exactly zero, not just small. The held-out pairs are removed from the
# training split by construction, while each of their colours and shapes still appears with
# other partners (the rows and columns above are full). The `"heldout"` split draws *only* those
# pairs; this is what the later notebooks test on.

# %%
unseen = world.sample(4, seed=0, split="heldout")
fig = show_images(unseen.images, titles=unseen.captions, ncols=4, scale=2.0, title_width=30,
                  suptitle="held-out scenes: every object is a pair never seen in training")
plt.show()

# %% [markdown]
# One scene in detail, picked from the 16 above as the one where a shape hides the most of
# another. Objects are painted one after the other, so a later shape covers part of an earlier
# one. The masks hold the *visible* pixels: the covered shape's mask loses what is hidden (the
# right panel draws its whole outline, `world.full_masks`, dotted), and each box (dashed) is tight
# around what is visible. Masks are drawn as outlines so every object keeps its own colour. The
# phrase spans point into the caption: `caption[start:end]` is the phrase.

# %%
from mmcourse.viz import draw_boxes, draw_mask_outlines, mask_outline_segments

full = world.full_masks(batch)                                  # (B, K, H, W) as if nothing covered them
hidden = (full & ~batch.masks).sum(dim=(2, 3))                  # (B, K) covered pixels per object
i = int(hidden.sum(1).argmax())
scene, k = batch[i], int(hidden[i].argmax())
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
for ax in axes:
    ax.imshow(scene.image.permute(1, 2, 0).numpy())
    ax.axis("off")
axes[0].set_title(f"scene {i} of the 16", fontsize=10)
draw_mask_outlines(axes[1], scene.masks[scene.valid])
draw_boxes(axes[1], scene.boxes[scene.valid], labels=[o["shape"] for o in scene.objects])
axes[1].set_title("visible masks, boxes (dashed)", fontsize=10)
from matplotlib.collections import LineCollection

axes[2].add_collection(LineCollection(mask_outline_segments(full[i, k]), colors="magenta", linewidths=1.5, linestyles=":"))
draw_mask_outlines(axes[2], scene.masks[k : k + 1])
axes[2].set_title(f"{scene.objects[k]['shape']}: visible (solid), whole (dotted)", fontsize=10)
plt.show()
print(f"the {scene.objects[k]['colour']} {scene.objects[k]['shape']}: {int(full[i, k].sum())} pixels as a whole, "
      f"{int(scene.masks[k].sum())} visible ({int(hidden[i, k])} hidden by the shapes painted after it)")

# %%
# NBVAL_CHECK_OUTPUT
print("caption:", scene.caption)
for o in scene.objects:
    s, e = o["span"]
    print(f"  span ({s:2d}, {e:2d}) -> {scene.caption[s:e]!r:28} box {[round(v) for v in o['box']]}")

# %% [markdown]
# ### Explore it yourself
#
# Move the **seed** slider to see other scenes, change the number of **objects**, force the first
# object's **shape** or **colour**, and switch the **colour mode**: `named` uses the six palette
# colours exactly, `jitter` varies them a little, and `random` paints objects in any colour (the
# caption then names the nearest palette colour). That last mode matters in the CLIP notebook:
# broad training data is what makes zero-shot recognition work.

# %%
from mmcourse.viz import shapes_explorer

shapes_explorer()

# %% [markdown]
# The widget only wires controls to a plain function, `scene_view`, which builds the picture and
# the caption. Because it is an ordinary function, it is unit-tested without a browser; every
# widget in the course follows that pattern.

# %%
from mmcourse.viz import scene_view

show_source(scene_view)

# %% [markdown]
# ### Real data: 8×8 handwritten digits
#
# scikit-learn ships 1,797 real handwritten digits of 8×8 pixels, so they work offline. The
# diffusion notebooks learn to generate them; the ViT notebook classifies them. `load_digits`
# scales them to [-1, 1] and fixes one train/test split.

# %%
from mmcourse.data.digits import load_digits, to_unit

digits, labels = load_digits("train")
fig = show_images(to_unit(digits[:16]), titles=[str(int(y)) for y in labels[:16]], ncols=8, scale=0.9)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
test_digits, test_labels = load_digits("test")
print("train", tuple(digits.shape), "test", tuple(test_digits.shape))
print("range", digits.min().item(), "to", digits.max().item())

# %% [markdown]
# ## 4. The training loop
#
# Every model in the course trains with one small loop, `mmcourse.train.fit`. You give it a model
# and a function that draws a batch and returns the loss; it seeds everything, shows a progress
# bar and returns the loss history for plotting. Here it trains the simplest possible digit
# classifier, a single linear layer, for a few hundred steps.
#
# ```mermaid
# flowchart LR
#     G["seeded generator g"] --> L["loss_fn(model, g)<br/>draws a batch, returns the loss"]
#     L --> B["loss.backward()"] --> O["optimizer.step()"] --> L
#     L --> H["history<br/>(the loss curve)"]
# ```

# %%
from mmcourse.train import fit

show_source(fit)

# %% [markdown]
# **Predict, then run:** a single linear layer on 64 pixel values, 400 steps: what test accuracy
# will it reach on the held-back test digits: 50 %, 75 % or above 90 %?

# %%
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def classification_loss(model, g):
    idx = torch.randint(0, len(digits), (64,), generator=g)
    return F.cross_entropy(model(digits[idx]), labels[idx])


history = fit(linear, classification_loss, steps=400, lr=1e-2, seed=0, desc="linear classifier")
with torch.no_grad():
    accuracy = (linear(test_digits).argmax(1) == test_labels).float().mean().item()

# %%
from mmcourse.viz import plot_history

plot_history(history, title="linear digit classifier")
plt.show()

# %%
print(f"test accuracy {accuracy:.3f} (target ≥ 0.90)")
assert accuracy >= 0.90

# %% [markdown]
# Above 90 %, from one linear layer and 400 steps: on these small, centred 8×8 digits the ten
# classes are nearly separable by a weighted sum of pixels. That is why the digits make a quick
# test bed, and why the course's harder questions use ShapesWorld.

# %% [markdown]
# ## 5. Warm-up exercise: a box from a mask
#
# Detection models predict **boxes**, segmentation models predict **masks**. Write
# `box_from_mask(mask)`: given a boolean mask of shape (H, W), return the tight box around its
# True pixels as a float tensor `[x0, y0, x1, y1]`, where the box covers columns `x0 … x1-1` and
# rows `y0 … y1-1` (so `x1 - x0` is the width in pixels). For an empty mask return four zeros.
# `torch.nonzero(mask, as_tuple=True)` gives the row and column indices of the True pixels.

# %%
import torch

from mmcourse.checks import check_box_from_mask


def box_from_mask(mask: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if len(rows) == 0:
        return torch.zeros(4)
    return torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
    ### END SOLUTION


check_box_from_mask(box_from_mask)

# %% [markdown]
# Your function should also agree with ShapesWorld's own boxes:

# %%
# NBVAL_CHECK_OUTPUT
pairs = [(batch[i].masks[k], batch[i].boxes[k]) for i in range(len(batch)) for k in range(int(batch.valid[i].sum()))]
agree = sum(torch.equal(box_from_mask(mask), box) for mask, box in pairs)
print(f"boxes that match ShapesWorld's: {agree} of {len(pairs)} (target: all {len(pairs)})")

# %% [markdown]
# ## 6. Glossary · 术语表
#
# | English | 中文 | where it comes up |
# |---|---|---|
# | forward diffusion | 正向扩散 | 01: adding noise step by step until only noise is left |
# | reverse process, denoising | 反向过程, 去噪 | 02: a network removes the noise one step at a time |
# | noise schedule (β_t) | 噪声调度 | 01: how much noise each step adds |
# | Markov chain | 马尔可夫链 | 01: the next state depends only on the current one |
# | patch, patch embedding | 图像块, 块嵌入 | 03: ViT cuts an image into squares and embeds each |
# | attention | 注意力 | 03: every token mixes in the others, weighted by similarity |
# | class token | 分类标记 | 03: the extra token whose output is classified |
# | contrastive learning | 对比学习 | 04: pull matching pairs together, push others apart |
# | positive / negative sample | 正样本 / 负样本 | 04: a matching / non-matching image–text pair |
# | in-batch negatives | 批内负样本 | 04: the other pairs of the batch serve as negatives |
# | zero-shot | 零样本 | 04: recognising classes never trained on as labels |
# | retrieval | 检索 | 04: find the best-matching text for an image, or the reverse |
# | image–text matching (ITM) | 图文匹配 | 05: BLIP scores whether a caption belongs to an image |
# | image captioning | 图像描述 | 05: BLIP's decoder writes a caption word by word |
# | bootstrapping (CapFilt) | 自举 | 05: BLIP captions and filters its own noisy training data |
# | segmentation, mask | 分割, 掩码 | 06: SAM: which pixels belong to the object |
# | prompt (point, box, mask) | 提示 | 06: how the user tells SAM which object they mean |
# | detection, bounding box | 检测, 边界框 | 07: GLIP: where the objects are |
# | phrase grounding | 短语定位 | 07: link a phrase of the caption to a region |
# | text-to-image generation | 文生图 | 08: a diffusion model draws what a prompt describes |
# | conditioning, cross-attention | 条件, 交叉注意力 | 08: the denoiser reads the prompt's text features |
# | classifier-free guidance | 无分类器引导 | 08: push samples towards the prompt by a weight w |
# | latent space, autoencoder | 潜空间, 自编码器 | 08: diffusion runs on a compressed picture |
#
# Next: **01 · Forward diffusion**.

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
# # 08 · Text to image: the course's parts joined
#
# Notebooks 01–02 taught diffusion without any say over *what* is drawn; notebook 04 taught CLIP,
# which reads text but draws nothing. Today's text-to-image systems (文生图, e.g. Stable
# Diffusion) are the two joined: a diffusion model whose denoiser reads the prompt through a
# CLIP text tower. This notebook builds a tiny one from the course's own parts and judges its
# pictures with the course's own models:
#
# - the **text tower** of the shipped `clip_shapes_broad` (notebook 04), frozen;
# - a **U-Net denoiser** (notebook 02) that reads the prompt in two ways: **cross-attention**
#   (交叉注意力) to the prompt's token features, and the pooled sentence embedding added to the
#   time embedding;
# - **classifier-free guidance** (无分类器引导): one network learns the prompted and the
#   unprompted noise prediction, and sampling pushes from one towards the other;
# - **latent diffusion** (潜空间扩散): an autoencoder squeezes 32×32×3 pictures into 8×8×4
#   latents, diffusion runs there, the decoder paints the result;
# - **judges**: the shipped shape ViT (notebook 03), the colour, centre and area of the object's
#   pixels, and a CLIP score.
#
# ```mermaid
# flowchart LR
#     p["prompt<br/>'a large purple diamond<br/>at the bottom right'"] --> tok["tokenizer<br/>16 ids"] --> tt["CLIP text tower<br/>(frozen, notebook 04)"]
#     tt -- "token features 16 × 64" --> xa["cross-attention<br/>in the U-Net"]
#     tt -- "pooled 64" --> te["+ time embedding"]
#     z["noise x_T<br/>4 × 8 × 8"] --> unet["U-Net ε(x_t, t, text)<br/>× 50 DDIM steps, guided"]
#     xa --> unet
#     te --> unet
#     unet --> z0["latent x_0<br/>4 × 8 × 8"] --> dec["decoder<br/>(autoencoder)"] --> img["image 3 × 32 × 32"] --> j["judges: ViT shape,<br/>colour, position, size, CLIP"]
# ```

# %%
import json
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.core import expect
from mmcourse.clip.widgets import markdown_table
from mmcourse.viz import plot_history, setup_matplotlib, show_images, show_source

setup_matplotlib()
# %matplotlib inline
# Small models: one thread is as fast as two, and two threads that wait for each other on a
# shared 2-core machine can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. The plan in code: two paths for the prompt
#
# **Path 1, cross-attention.** Every position of a feature map asks a question (a *query*); the
# prompt's tokens hold the answers (*keys* and *values*). A position where the object should go
# can pick out "purple" and "diamond"; one in a corner can check "bottom right". Padding tokens
# (the prompt is shorter than the 16 slots) are masked out:

# %%
from mmcourse.diffusion.conditioning import CrossAttention, FrozenTextEncoder, TextUNet

show_source(CrossAttention.forward)

# %% [markdown]
# **Path 2, the pooled embedding.** CLIP's sentence embedding (the end-of-text feature) goes
# through one linear layer and is added to the time embedding, so every ResBlock gets a shift per
# channel from the prompt. Both paths in the U-Net's forward pass (the two lines marked
# `path 1` / `path 2`):

# %%
show_source(TextUNet.forward)

# %% [markdown]
# The text tower is CLIP's, frozen: `FrozenTextEncoder` returns its per-token output (the
# context of cross-attention), the padding mask and the pooled embedding. Predict: if we change
# the features of a padding token, how much does the denoiser's output move?

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.diffusion.conditioning import TextCondition
from mmcourse.text2image.tasks import load_text2image

model = load_text2image()  # the shipped checkpoint (section 3)
enc = model.encoder
text = enc("a large purple diamond at the bottom right")
print("tokens:", enc.tokenize("a large purple diamond at the bottom right")[0].tolist())
print("context", tuple(text.context.shape), "| real tokens", int(text.mask.sum()), "of", text.mask.shape[1],
      "| pooled", tuple(text.pooled.shape))
g = torch.Generator().manual_seed(0)
x, t = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500])
messed = text.context.clone()
messed[~text.mask] = 100 * torch.randn(int((~text.mask).sum()), 64, generator=g)
with torch.no_grad():
    change = (model.unet(x, t, TextCondition(messed, text.mask, text.pooled)) - model.unet(x, t, text)).abs().max()
expect("largest output change when the padding tokens' features change", change, "= 0", fmt="bound")

# %% [markdown]
# ## 2. Where the pixels live: 16×16 pixels or 8×8×4 latents
#
# Two ways to make diffusion cheap enough for a CPU: draw small pictures (ShapesWorld renders
# 16×16 scenes) or draw in a compressed space and decode (Stable Diffusion's design). We
# measured both before choosing. The deciding number is whether the course's shape judge (the
# shipped ViT, trained on 32×32 scenes) can still tell the shapes apart in 16×16 pictures,
# upsampled for it: a small triangle at 16×16 covers about five pixels.

# %%
from mmcourse.text2image.tasks import load_results

space = load_results("text2image_space")
display(Markdown(markdown_table(
    ["real scenes", "shape ViT agrees with ShapesWorld"],
    [[k, f"{v:.1%}"] for k, v in space["shape_judge_agreement"].items()])))
display(Markdown(markdown_table(
    ["space", "numbers per image", "training step, batch 64 (ms)", "one guided sampling step (ms)"],
    [[k, v["numbers_per_image"], v["train_step_ms_batch64"], v["guided_step_ms_one_image"]]
     for k, v in space["denoiser_cost"].items()])))
print(f"(measured on one thread, load average {space['loadavg_before']} on 2 cores: a busy machine)")

# %% [markdown]
# At 16×16 the judge is wrong on more than one scene in ten *before any model draws anything*,
# so a generated 16×16 picture could not be judged to the 98% the course asks of its judges. The
# latent option keeps 32×32 pictures (the judges' own size) and gives the denoiser a third of
# the numbers (a training step about a third of the cost, in the table), at the price of
# training an autoencoder first. We chose latents.
#
# The autoencoder (`mmcourse.diffusion.autoencoder.AutoEncoder`) turns every 4×4 patch into one
# latent position with 4 channels, a 12× compression, and is trained with a pixel loss that
# weights the object's pixels more (an object covers a few percent of the picture). What does
# the round trip keep? Top row real, bottom row encoded and decoded. Predict: which attribute
# suffers most from a 12× compression?

# %%
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.tasks import world
from mmcourse.weights import entry

judges = Judges.load()
real = world().sample(200, seed=7, split="test")
with torch.no_grad():
    recon = model.ae.decode(model.ae.encode(real.images))
show_images(torch.cat([real.images[:8], recon[:8]]), ncols=8, scale=0.9)
plt.show()
m = entry("text2image_shapes").metrics
kept = (judges.shape(recon) == judges.shape(real.images)).float().mean()
print(f"shape label kept by encode → decode: {kept:.3f} on these 200 test scenes, "
      f"{m['ae_shape_kept']:.3f} on the checkpoint's 2,000 (the course's target: ≥ 0.98)")
print(f"reconstruction MSE {m['ae_mse_test']:.4f}; colour, size and position judged on the reconstructions:",
      ", ".join(f"{a} {v:.3f}" for a, v in zip(("colour", "size", "position"),
                                                 (judges.labels(recon) == judges.labels(real.images)).float().mean(0)[1:].tolist())))

# %% [markdown]
# Colour and position survive the round trip; the shape's corners do not always: the decoder
# rounds small objects off (crosses and diamonds drift towards circles), and the shape ViT,
# trained on crisp edges, then reads another shape. This autoencoder misses the course's 98%
# target: a few minutes of training on a CPU were not enough to make its edges crisp, and every
# shape the diffusion model draws goes through it. Keep that bound in mind in sections 5 and 6.
#
# ## 3. Training: the loss falls
#
# One training step: pick a captioned scene's latent, noise it to a random step t, and ask the
# U-Net for the noise given the caption, exactly notebook 02's loss with one more input. With
# probability 0.1 the caption is replaced by the empty prompt "" (condition dropout), so the
# same network also learns the unprompted noise: section 5 needs both. A short live run of a
# smaller U-Net on 2,000 scenes (predict: does the loss fall faster or slower than the digits
# U-Net's in notebook 02?):

# %%
from mmcourse.text2image.tasks import encode_dataset, train_denoiser
from mmcourse.train import seed_everything

data = encode_dataset(model.ae, enc, 2000, seed=3)
seed_everything(0)
small = TextUNet(in_channels=4, base=16, channel_mults=(1, 1), image_size=8, context_dim=64, pooled_dim=64, num_heads=2)
_, live_hist = train_denoiser(small, model.schedule, data, steps=150, batch_size=32, ema_decay=None)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
plot_history(live_hist, title="live: 150 steps, small U-Net", ax=axes[0])
curve = load_results("text2image_training")
axes[1].plot(curve["curve"]["step"], curve["curve"]["loss"])
axes[1].set(xlabel="step", ylabel="loss (mean of 50)", title="shipped checkpoint")
plt.tight_layout()
plt.show()
print(f"live loss: first 20 steps {np.mean(live_hist.loss[:20]):.3f}, last 20 steps {np.mean(live_hist.loss[-20:]):.3f}")

# %% [markdown]
# The shipped checkpoint (`text2image_shapes`) trained the same way for longer, with a larger
# U-Net and an average of its weights (EMA); its numbers:

# %%
r = curve["recipe"]
print(f"autoencoder: {r['ae_steps']} steps; denoiser: {r['steps']} steps of {r['batch_size']} latents "
      f"from {r['n_train']:,} captioned scenes")
total = curve["ae_seconds"] + curve["denoiser_seconds"]
print(f"training time {total / 60:.1f} min on one thread "
      f"(autoencoder {curve['ae_seconds'] / 60:.1f} min, denoiser {curve['denoiser_seconds'] / 60:.1f} min), "
      f"load average {curve['loadavg_before']} → {curve['loadavg_after']} on 2 cores")
print("U-Net parameters:", sum(p.numel() for p in model.unet.parameters()),
      "| autoencoder parameters:", sum(p.numel() for p in model.ae.parameters()))

# %% [markdown]
# ## 4. Try it: type a prompt
#
# Type a prompt with ShapesWorld's words (a shape, a colour, small or large, and where), choose
# the guidance scale w, the sampler and its steps and the seed, and press **generate**. Under
# the picture: the reverse trajectory from noise x_T to x_0 (each latent decoded) and the judges'
# verdict per attribute. Try a word the model does not know, or w = 0.

# %%
from mmcourse.text2image.widgets import prompt_explorer

prompt_explorer(model, judges)

# %% [markdown]
# ## 5. Guidance measured
#
# Sampling combines the two predictions the network learned:
# ε = ε(x_t, t, "") + w · (ε(x_t, t, prompt) − ε(x_t, t, "")). At w = 0 the prompt is ignored;
# at w = 1 it is the plain conditional model; above 1 the step is pushed further in the direction
# the prompt adds. Predict: as w grows, what happens to the accuracy, and what to the variety of
# pictures for one prompt?
#
# The stored sweep (300 prompts of seen colour–shape pairs per scale, DDIM-50; diversity is the
# pixel variance across 8 seeds of one prompt, averaged over 16 prompts):

# %%
sweep = load_results("text2image_guidance")
ws = list(sweep["seen"])
rows = [[w, *(f"{sweep['seen'][w][a]:.3f}" for a in ("shape", "colour", "size", "position", "shape_and_colour")),
         f"{sweep['diversity_pixel_variance'][w]:.4f}", f"{sweep['clip_score'][w]:.3f}"] for w in ws]
display(Markdown(markdown_table(["w", "shape", "colour", "size", "position", "shape and colour",
                                 "diversity", "CLIP score"], rows)))
fig, ax = plt.subplots(1, 2, figsize=(9, 3))
for a in ("shape", "colour", "size", "position", "shape_and_colour"):
    ax[0].plot([float(w) for w in ws], [sweep["seen"][w][a] for w in ws], marker="o", label=a)
ax[0].set(xlabel="guidance scale w", ylabel="accuracy (judges)", title="accuracy")
ax[0].legend(fontsize=7)
ax[1].plot([float(w) for w in ws], [sweep["diversity_pixel_variance"][w] for w in ws], marker="o")
ax[1].set(xlabel="guidance scale w", ylabel="pixel variance across seeds", title="diversity")
plt.tight_layout()
plt.show()
best = max(ws, key=lambda w: sweep["seen"][w]["shape_and_colour"])
print(f"best w = {best}: shape and colour {sweep['seen'][best]['shape_and_colour']:.3f} "
      f"(target ≥ 0.90) against {sweep['seen']['0.0']['shape_and_colour']:.3f} at w = 0")
print(f"DDIM-50, one image: {sweep['ddim50_ms_one_image']:.0f} ms (target ≤ 200 ms on a quiet machine); "
      f"per image in a batch of 64: {sweep['ddim50_ms_per_image_batch64']:.1f} ms; load {sweep['loadavg_before']}")

# %% [markdown]
# A short live version on 24 prompts, w = 0 against the best scale, and one prompt at four
# scales (six seeds each):

# %%
from mmcourse.text2image.prompts import parse_prompt, prompt_set
from mmcourse.text2image.tasks import generate

prompts, labels = prompt_set(24, seed=11, split="test")
for w in (0.0, float(best)):
    got = judges.labels(generate(model, prompts, w, steps=50, seed=0))
    print(f"w = {w:g}: shape and colour right on {int((got[:, :2] == labels[:, :2]).all(dim=1).sum())} of 24 prompts")
prompt = "a small green circle on the left"
grid = torch.cat([generate(model, prompt, w, steps=50, seed=1, n=6) for w in (0.0, 1.0, 4.0, 8.0)])
show_images(grid, ncols=6, scale=0.9, suptitle=f"{prompt!r}: rows w = 0, 1, 4, 8")
plt.show()

# %% [markdown]
# ## 6. Composition: pairs nobody showed it
#
# Six colour–shape pairs (a red square, a green triangle, a blue circle, a yellow diamond, a
# purple cross, an orange circle) never appear in the denoiser's training scenes, and the CLIP
# text tower never read them either. Each word was seen, with other partners. Can the model draw
# a "red square"? The stored sweep on 300 held-out prompts, beside the seen ones:

# %%
rows = [[w, f"{sweep['seen'][w]['shape_and_colour']:.3f}", f"{sweep['heldout'][w]['shape_and_colour']:.3f}",
         f"{sweep['seen'][w]['all']:.3f}", f"{sweep['heldout'][w]['all']:.3f}"] for w in ws]
display(Markdown(markdown_table(["w", "seen: shape and colour", "held-out: shape and colour", "seen: all four",
                                 "held-out: all four"], rows)))
held = world().sample(400, seed=8, split="heldout")
agree_held = (judges.shape(held.images) == held.shape[:, 0]).float().mean()
print(f"caveat: on real held-out scenes the shape judge itself agrees with ShapesWorld {agree_held:.3f} of the time")
heldout_prompts = ["a large red square in the middle", "a large green triangle at the top left",
                   "a large blue circle on the right", "a large purple cross at the bottom"]
x = generate(model, heldout_prompts, float(best), steps=50, seed=2)
verdicts = judges.verdict(x, [parse_prompt(p) for p in heldout_prompts])
titles = [p + "\n" + " ".join(("✓" if ok else "✗") + a for a, ok in v.items()) for p, v in zip(heldout_prompts, verdicts)]
show_images(x, titles=titles, ncols=4, scale=1.6, title_width=22)
plt.show()

# %% [markdown]
# Read the table as a zero-shot test: "shape and colour" on held-out prompts counts the pictures
# where the model composed a pair it never saw. A gap to the seen prompts means the model learned
# some pairs as units rather than as colour *and* shape; the judge's own agreement on real
# held-out scenes (printed above) bounds what can be measured there.
#
# ## 7. Closing the loop: CLIP ranks the samples
#
# The course's CLIP (notebook 04) scores each of eight samples of one prompt; the best-scoring
# sample is what a system would show first (DALL·E ranked its samples with CLIP this way).

# %%
prompt = "a large yellow cross at the top right"
samples = generate(model, prompt, float(best), steps=50, seed=5, n=8)
scores = judges.clip_score(samples, [prompt] * 8)
order = scores.argsort(descending=True)
show_images(samples[order], titles=[f"{s:.3f}" for s in scores[order].tolist()], ncols=8, scale=1.0,
            suptitle=f"{prompt!r}: CLIP score, best first")
plt.show()
ok = [all(v.values()) for v in judges.verdict(samples[order], [{"shape": "cross", "colour": "yellow", "size": "large",
                                                                "position": "top right"}] * 8)]
print("judges: all four attributes right, in CLIP's order:", ["✓" if o else "✗" for o in ok])

# %% [markdown]
# Segmenting or grounding the generated object with notebook 06's SAM or notebook 07's GLIP
# would close the loop further; this version does not link them (they were being written at
# the same time).
#
# ## 8. Exercises
#
# ### Exercise 1: `guided_eps`
#
# Combine the unconditional and the conditional noise predictions with guidance scale `w`:
# ε = ε_uncond + w (ε_cond − ε_uncond). Both are tensors of the same shape, `w` a number.

# %%
import torch

from mmcourse.checks.text2image import check_guided_eps


def guided_eps(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    return eps_uncond + w * (eps_cond - eps_uncond)
    ### END SOLUTION


check_guided_eps(guided_eps)

# %% [markdown]
# Compare with the course's version, which uses `torch.lerp`: the same line, but exact at w = 0
# and w = 1 (written as above, `a + (b - a)` can miss `b` by one rounding), and the wrapper that
# lets the existing samplers use it:

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.diffusion.guidance import GuidedDenoiser, cfg_combine

show_source(cfg_combine)
show_source(GuidedDenoiser)
g = torch.Generator().manual_seed(0)
u, c = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
print("w = 1 exactly the conditional prediction:", torch.equal(cfg_combine(u, c, 1.0), c),
      "| written out:", torch.equal(u + 1.0 * (c - u), c))

# %% [markdown]
# ### Exercise 2: `dropout_loss`, condition dropout in the training step
#
# Write one training loss with plain tensors: `cond` (B, D) holds each example's condition and
# `null` (D,) the empty prompt's; row i is replaced by `null` when `u[i] < p` (`u` holds uniform
# random numbers). Then x_t = √ᾱ_t x0 + √(1 − ᾱ_t) noise with ᾱ_t = `alphas_cumprod[t]`, and the
# loss is the mean of (noise − model(x_t, t, c))².

# %%
import torch

from mmcourse.checks.text2image import check_dropout_loss


def dropout_loss(model, x0, t, noise, cond, null, u, p, alphas_cumprod):
    ### BEGIN SOLUTION
    c = torch.where((u < p)[:, None], null[None, :], cond)
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return ((noise - model(x_t, t, c)) ** 2).mean()
    ### END SOLUTION


check_dropout_loss(dropout_loss)

# %% [markdown]
# Compare with the course's version, which trained the shipped model:

# %%
from mmcourse.diffusion.guidance import condition_dropout
from mmcourse.text2image.tasks import text_eps_loss

show_source(condition_dropout)
show_source(text_eps_loss)

# %% [markdown]
# ## What we measured
#
# The option chosen and the numbers behind it, from this notebook's cells and stored results.
# The course set this model two targets it does not meet (printed first): the autoencoder's
# round trip keeps too few shapes, and the denoiser, trained for minutes on one CPU thread,
# draws the asked colour and place more reliably than the asked shape. The parts are all
# here and each is tested; what is missing is training time, and first a sharper autoencoder.

# %%
targets = curve["targets"]
print("the course's targets:", ", ".join(f"{k} ≥ {v}" for k, v in targets.items()),
      "| missed:", ", ".join(f"{k} {v:.3f}" for k, v in curve["targets_missed"].items()) or "none")
print(f"space: latent 8×8×4 (shape judge on upsampled 16×16 scenes: "
      f"{space['shape_judge_agreement']['16px upsampled (bicubic)']:.3f}, on 32×32: {space['shape_judge_agreement']['32px']:.3f})")
print(f"autoencoder: shape kept {m['ae_shape_kept']:.3f}, MSE {m['ae_mse_test']:.4f}")
print(f"best w = {best}: seen shape and colour {sweep['seen'][best]['shape_and_colour']:.3f}, size "
      f"{sweep['seen'][best]['size']:.3f}, position {sweep['seen'][best]['position']:.3f}; "
      f"w = 0: {sweep['seen']['0.0']['shape_and_colour']:.3f}; held-out {sweep['heldout'][best]['shape_and_colour']:.3f}")
print(f"DDIM-50 one image {sweep['ddim50_ms_one_image']:.0f} ms (load {sweep['loadavg_before']}); "
      f"training {total / 60:.1f} min on one thread (load {curve['loadavg_before']})")

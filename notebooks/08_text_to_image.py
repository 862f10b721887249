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
# which reads text but draws nothing. A text-to-image model (文生图) is a diffusion model whose
# denoiser reads the prompt through a frozen text encoder: a CLIP text tower in Stable Diffusion
# 1 and 2, the T5 language model in Imagen, CLIP towers and T5 together in SD3. This notebook
# builds a tiny one from the course's own parts and judges it with the course's own models:
#
# - the **text tower** of the shipped `clip_shapes_broad` (notebook 04), frozen;
# - a **U-Net denoiser** (notebook 02) that reads the prompt in two ways: **cross-attention**
#   (交叉注意力) to the prompt's token features, and the pooled sentence embedding added to the
#   time embedding;
# - **classifier-free guidance** (无分类器引导): one network learns the prompted and the
#   unprompted noise prediction, and sampling combines them with a guidance scale w;
# - **latent diffusion** (潜空间扩散): an autoencoder squeezes 32×32×3 pictures into 8×8×8
#   latents, diffusion runs there, the decoder paints the result;
# - **judges**: the shipped shape ViT (notebook 03), the colour, centre and area of the object's
#   pixels, and a CLIP score.
#
# Every training scene holds **one object**, captioned with its shape, colour, size and place, so
# the model draws one object per picture. Sampling uses notebook 02's DDIM with 50 steps (DDIM-50).
#
# ```mermaid
# flowchart LR
#     p["prompt<br/>'a large purple diamond<br/>at the bottom right'"] --> tok["tokenizer<br/>16 ids"] --> tt["CLIP text tower<br/>(frozen, notebook 04)"]
#     tt -- "token features 16 × 64" --> xa["cross-attention<br/>in the U-Net"]
#     tt -- "pooled 64" --> te["+ time embedding"]
#     z["noise x_T<br/>8 × 8 × 8"] --> unet["U-Net ε(x_t, t, text)<br/>× 50 DDIM steps, guided"]
#     xa --> unet
#     te --> unet
#     unet --> z0["latent x_0<br/>8 × 8 × 8"] --> dec["decoder<br/>(autoencoder)"] --> img["image 3 × 32 × 32"] --> j["judges: ViT shape,<br/>colour, position, size, CLIP"]
# ```

# %%
import operator
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.core import expect
from mmcourse.clip.widgets import markdown_table
from mmcourse.viz import plot_history, setup_matplotlib, show_images, show_source
from mmcourse.weights import entry

setup_matplotlib()
# %matplotlib inline


def against(label: str, value: float, op: str, target: float) -> None:
    """Print a measurement beside the course's target and whether it is met (computed, not typed)."""
    met = {"≥": operator.ge, "≤": operator.le}[op](value, target)
    print(f"{label}: {value:.3f} (target {op} {target:g}: {'met' if met else 'MISSED'})")


# Sampling small models one picture at a time: one thread is as fast as two, and two threads
# that wait for each other on a shared 2-core machine can be much slower.
torch.set_num_threads(1)
shipped = entry("text2image_shapes")      # the checkpoint's registry row: numbers from the test draws
w_star = shipped.metrics["guidance_scale"]  # the guidance scale chosen on validation draws

# %% [markdown]
# ## 1. The plan in code: two paths for the prompt
#
# **Path 1, cross-attention.** Every position of a feature map makes a *query*; each of the
# prompt's tokens offers a *key* (what it is about) and a *value* (what it passes on). A position
# takes a weighted mean of the values, weighted by how well its query matches each key, so
# different positions can take different words from the prompt. Padding tokens (the prompt is
# shorter than the 16 slots) are masked out: they get weight 0. Stable Diffusion 1 masks nothing
# (its padding slots repeat the end token); the mask is the course's choice, and it makes the
# test below exact.

# %%
from mmcourse.diffusion.conditioning import CrossAttention, TextUNet

show_source(CrossAttention.forward)

# %% [markdown]
# **Path 2, the pooled embedding.** CLIP's sentence embedding (the end-of-text token's feature,
# projected as in notebook 04) goes through one linear layer and is added to the time embedding,
# so every ResBlock gets one shift per channel from the prompt, the same at every position: the
# place must be worked out by the convolutions, whereas cross-attention lets each position read
# the place words directly. Stable Diffusion 1.x uses path 1 only; Imagen and SDXL
# add a pooled text embedding as well. Both paths in the U-Net's forward pass (the lines marked
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
from mmcourse.text2image.model import load_text2image

model = load_text2image()  # the shipped checkpoint (section 3)
enc = model.encoder
text = enc("a large purple diamond at the bottom right")
print("tokens:", enc.tokenize("a large purple diamond at the bottom right")[0].tolist())
print("context", tuple(text.context.shape), "| real tokens", int(text.mask.sum()), "of", text.mask.shape[1],
      "| pooled", tuple(text.pooled.shape))
g = torch.Generator().manual_seed(0)
x, t = torch.randn(1, *model.ae.latent_shape, generator=g), torch.tensor([500])
messed = text.context.clone()
messed[~text.mask] = 100 * torch.randn(int((~text.mask).sum()), 64, generator=g)
with torch.no_grad():
    change = (model.unet(x, t, TextCondition(messed, text.mask, text.pooled)) - model.unet(x, t, text)).abs().max()
expect("largest output change when the padding tokens' features change", change, "= 0", fmt="bound")

# %% [markdown]
# Not at all: the change is exactly 0. The mask gives padding tokens attention weight 0 in every
# cross-attention layer. (The pooled embedding, passed unchanged here, cannot be reached by
# padding either: it is read at the end-of-text token, a real token.)
#
# ## 2. Where the pixels live: 16×16 pixels or 8×8 latents
#
# Two ways to make diffusion cheap enough for a CPU: draw small pictures (ShapesWorld renders
# 16×16 scenes) or draw in a compressed space and decode (latent diffusion, Rombach et al. 2022,
# the design of Stable Diffusion). The
# deciding number is whether the course's shape judge (the shipped ViT, trained on 32×32
# scenes) can still tell the shapes apart in 16×16 pictures, upsampled for it.

# %%
from mmcourse.text2image.evaluate import load_results

space = load_results("text2image_space")
display(Markdown(markdown_table(
    ["real scenes", "shape ViT agrees with ShapesWorld"],
    [[k, f"{v:.1%}"] for k, v in space["shape_judge_agreement"].items()])))
display(Markdown(markdown_table(
    ["space", "numbers per image", "training step, batch 64 (ms)", "one guided sampling step (ms)"],
    [[k, v["numbers_per_image"], v["train_step_ms_batch64"], v["guided_step_ms_one_image"]]
     for k, v in space["denoiser_cost"].items()])))
print("(both spaces timed the same way on the same machine: compare the ratio, not the milliseconds)")
pixel_cost, latent_cost = space["denoiser_cost"].values()

# %% [markdown]
# At 16×16 the judge is wrong on more than one scene in ten *before any model draws anything*,
# so a generated 16×16 picture could not be judged to the 98% the course asks of its judges.
# Latents keep 32×32 pictures (the judges' own size) and give the denoiser fewer numbers and
# cheaper steps, at the price of training an autoencoder first. We chose latents.
#
# **How many numbers per patch?** The autoencoder turns every 4×4 patch (48 numbers) into one
# latent position with C channels. Stable Diffusion 1 turns every 8×8 patch (192 numbers) into
# C = 4, 48× fewer; Rombach et al.'s LDM-4, closer to ours, turns 4×4 patches into 3. But
# ShapesWorld's objects are only 7 to 10 pixels wide, and the judge that reads their shape needs sharp edges. Two quick
# measurements: the judge on real scenes blurred a little, and the best *linear* autoencoder,
# PCA of the 4×4 patches (`PatchPCA`, the top C directions of 2,000 training scenes' patches).
# Predict: how many numbers per patch does the judge need?

# %%
import torchvision.transforms.functional as TF

from mmcourse.diffusion.autoencoder import PatchPCA
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.model import world

judges = Judges.load()
real = world().sample(200, seed=7, split="test")
truth = judges.shape(real.images)


def kept(images: torch.Tensor) -> float:
    """Share of the 200 scenes whose judged shape survives."""
    return float((judges.shape(images.clamp(0, 1)) == truth).float().mean())


print("judge on blurred real scenes (Gaussian sigma in pixels):",
      ", ".join(f"sigma {s}: {kept(TF.gaussian_blur(real.images, 5, s)):.3f}" for s in (0.6, 0.8, 1.0)))
train_scenes = world().sample(2000, seed=0, split="train").images
pca_kept = {}
for k in (4, 8, 16):
    pca = PatchPCA(k).fit(train_scenes)
    pca_kept[k] = kept(pca.decode(pca.encode(real.images)))
print("PCA round trip, shape kept:", ", ".join(f"C = {k}: {v:.3f}" for k, v in pca_kept.items()))
ae_bench = load_results("text2image_autoencoders")
rows = [[k, f"{v:.3f}"] for k, v in ae_bench["pca_kept"].items()]
display(Markdown(markdown_table(["C (PCA, stored, 1,000 scenes)", "shape kept"], rows)))
rows = [[k, f"{v['kept']:.3f}", f"{v['mse']:.5f}"] for k, v in ae_bench["learned"]["runs"].items()]
display(Markdown(markdown_table([f"learned autoencoder ({ae_bench['learned']['steps']:,} steps, width "
                                 f"{ae_bench['learned']['width']}, stored)", "shape kept", "MSE"], rows)))

# %% [markdown]
# A blur of under one pixel already costs the judge a large share of scenes. So 4 numbers per
# patch cannot be enough, even for the best linear code, and 16 are just enough
# (the live numbers on 200 scenes wobble by a few hundredths around the stored ones on 1,000).
# The short learned runs point the same way (their last row, a GroupNorm and SiLU before the 1×1
# projections, learns far more slowly).
#
# More channels are not free: every latent the denoiser draws must be right in all of them. The
# shipped model uses **C = 8** (512 numbers, 6× fewer than the pixels), chosen from early
# single-seed runs that predate the final recipe: a reasonable choice, not a measured optimum.
# Its autoencoder does better than the C = 8 rows above: it trains longer (3,000 steps), is
# non-linear, and pays for the outline:
#
# With C = 8 the autoencoder first rounded corners off (crosses came back as diamonds, squares as
# circles), though the object's pixels already weigh 21× in its loss. The shape lives in the
# *outline*, a ring of pixels a pixel loss pays little for, so `autoencoder_loss` pays
# `edge_weight` more on either side of it (`object_edges`: the mask dilated minus eroded).
# Rombach et al. train their autoencoder with a perceptual (LPIPS) loss, a patch discriminator
# and a small KL term instead; no pretrained perceptual network suits 32×32 shapes, and our
# judge reads outlines, so a pixel loss that pays for the outline does that job here:

# %%
from mmcourse.text2image.judges import object_masks
from mmcourse.text2image.train import AE_OBJECT_THRESHOLD, autoencoder_loss, object_edges

on_obj = object_masks(real.images, AE_OBJECT_THRESHOLD)[0][:, None].float()  # (B, 1, 32, 32), as the loss sees it
ring = object_edges(on_obj)
show_images(torch.cat([real.images[:6], on_obj[:6].expand(-1, 3, -1, -1), ring[:6].expand(-1, 3, -1, -1)]), ncols=6,
            scale=0.9, suptitle="scene; the object's pixels (weight 1 + 20); the ring either side of its outline (+ edge_weight)")
plt.show()
print(f"share of the picture: object {on_obj.mean():.3f}, ring {ring.mean():.3f}")
show_source(autoencoder_loss)

# %% [markdown]
# Beside it, the decoder is trained to forgive small errors (its latents get Gaussian noise of 5%
# of each channel's spread during training, like a VAE's sampling step). `encode` standardises
# each latent channel to about unit scale (Stable Diffusion's `scaling_factor` does the same), so
# the sampler can clamp each step's predicted clean latent to ±3 standard deviations. What does the round trip keep?
# Top row real, bottom row encoded and decoded.

# %%
with torch.no_grad():
    recon = model.ae.decode(model.ae.encode(real.images))
show_images(torch.cat([real.images[:8], recon[:8]]), ncols=8, scale=0.9)
plt.show()
k200 = kept(recon)
print(f"shape label kept by encode → decode, these 200 test scenes: {k200:.3f} "
      f"(one standard error on 200 scenes: {(k200 * (1 - k200) / 200) ** 0.5:.3f})")
print("the same on the protocol's test draws:", shipped.describe("ae_shape_kept"))
print("two standard errors above 0.98:", "yes" if shipped.estimate("ae_shape_kept").clears(0.98) else "no")
print("colour, size and position judged on the reconstructions:",
      ", ".join(f"{a} {v:.3f}" for a, v in zip(("colour", "size", "position"),
                                                 (judges.labels(recon) == judges.labels(real.images)).float().mean(0)[1:].tolist())))

# %% [markdown]
# On the protocol's test draws the shipped autoencoder keeps the shape of 0.982 ± 0.003 of scenes:
# above 0.98, but by less than one standard error, not the two the course asks for, so the
# target is **not met**. The 200 scenes above are a smaller sample of the same thing. Colour,
# size and position survive the round trip on every one of them; what the decoder still gets
# wrong is the outline. In the recipe's single runs, the edge weight was the change that lifted
# the share kept from well below the target to it.

# %% [markdown]
# ## 3. Training: the loss falls
#
# One training step: pick a captioned scene's latent, noise it to a random step t, and ask the
# U-Net for the noise given the caption, exactly notebook 02's loss with one more input. With
# probability 0.1 the caption is replaced by the empty prompt "" (condition dropout), so the
# same network also learns the unprompted noise: section 4 needs both (exercise 3, in section
# 10, writes this step). A short live run of a
# smaller U-Net on 2,000 scenes. Predict: where does the loss start, and why there?

# %%
from mmcourse.text2image.train import encode_dataset, train_denoiser
from mmcourse.train import seed_everything

data = encode_dataset(model.ae, enc, 2000, seed=3)
seed_everything(0)
small = TextUNet(in_channels=model.ae.latent_channels, base=16, channel_mults=(1, 1), image_size=8, context_dim=64, pooled_dim=64, num_heads=2)
_, live_hist = train_denoiser(small, model.schedule, data, steps=150, batch_size=32, ema_decay=None)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
plot_history(live_hist, title="live: 150 steps, small U-Net", ax=axes[0])
curve = load_results("text2image_training")
axes[1].plot(curve["curve"]["step"], curve["curve"]["loss"])
axes[1].set(xlabel="step", ylabel="Min-SNR-weighted loss (mean of 50)", title="shipped checkpoint")
plt.tight_layout()
plt.show()
print(f"live loss: first 20 steps {np.mean(live_hist.loss[:20]):.3f}, last 20 steps {np.mean(live_hist.loss[-20:]):.3f}")

# %% [markdown]
# It starts near 1: an untrained U-Net outputs numbers near 0, and the squared error of
# predicting 0 for unit Gaussian noise is its variance, 1. In 150 steps it falls to less than half.
#
# The shipped checkpoint (`text2image_shapes`) trained the same way for longer, with a larger
# U-Net, an average of its weights (EMA), and one more change: its loss weights the steps t
# unequally (Min-SNR, next), so its loss (right) is on a smaller scale than the plain loss on
# the left. It was still falling slowly when training stopped (third quarter against last
# quarter, printed below). Its numbers:

# %%
r = curve["recipe"]
print(f"autoencoder: {r['ae_steps']} steps; denoiser: {r['steps']} steps of {r['batch_size']} latents "
      f"from {r['n_train']:,} captioned scenes")
total = curve["ae_seconds"] + curve["denoiser_seconds"]
print(f"training time {total / 60:.1f} min on {curve['threads']} threads, load {curve['loadavg_after']} "
      f"(autoencoder {curve['ae_seconds'] / 60:.1f} min, denoiser {curve['denoiser_seconds'] / 60:.1f} min)")
steps_, losses_ = np.array(curve["curve"]["step"]), np.array(curve["curve"]["loss"])
n_ = r["steps"]
print("shipped loss, mean over steps {}–{}: {:.3f}; over {}–{}: {:.3f}".format(
    n_ // 2, 3 * n_ // 4, losses_[(steps_ >= n_ // 2) & (steps_ < 3 * n_ // 4)].mean(),
    3 * n_ // 4, n_, losses_[steps_ >= 3 * n_ // 4].mean()))
print("U-Net parameters:", sum(p.numel() for p in model.unet.parameters()),
      "| autoencoder parameters:", sum(p.numel() for p in model.ae.parameters()))

# %% [markdown]
# **Which noise levels should the loss care about?** The plain loss asks for the noise equally
# at every t. Written for the clean latent it predicts, x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, the
# same error reads ‖ε − ε̂‖² = SNR_t · ‖x₀ − x̂₀‖², with the signal-to-noise ratio
# SNR_t = ᾱ_t / (1 − ᾱ_t). At the cleanest steps the SNR is in the thousands, so in x₀ terms
# those easy steps weigh thousands of times more than the noisy ones, and their gradients pull
# against the others'. Min-SNR weighting (Hang et al. 2023, who frame it as balancing the
# conflicting gradients of different t; diffusers' training scripts call its γ `snr_gamma`)
# multiplies each example's error by min(SNR_t, γ) / SNR_t, which caps that x₀ weight at γ: the
# factor is 1 where the SNR is below γ and falls as 1 / SNR_t above it. Predict:
# with γ = 2 and the cosine schedule, what share of the 1,000 steps is damped?

# %%
from mmcourse.diffusion import compute_snr, min_snr_weights

tt = torch.arange(model.schedule.num_train_timesteps)
gamma = r["snr_gamma"]
wts = min_snr_weights(model.schedule, tt, gamma)
fig, ax = plt.subplots(1, 2, figsize=(9, 2.8))
ax[0].semilogy(tt, compute_snr(model.schedule, tt))
ax[0].axhline(gamma, color="grey", ls="--", lw=1, label=f"γ = {gamma:g}")
ax[0].set(xlabel="t", ylabel="SNR_t (log scale)", title="signal-to-noise ratio")
ax[0].legend(fontsize=8)
ax[1].plot(tt, wts)
ax[1].set(xlabel="t", ylabel="loss weight", title=f"Min-SNR weight, γ = {gamma:g}")
plt.tight_layout()
plt.show()
print(f"steps with weight below 1: {int((wts < 1).sum())} of {len(tt)}; below 0.1: {int((wts < 0.1).sum())}")

# %% [markdown]
# Only the cleanest steps are damped: the 387 of the 1,000 steps whose SNR is above γ = 2 (the
# first 387, as the SNR falls with t), 133 of them to a weight below 0.1; the others no longer
# drown in their gradients. In the recipe's single runs this change moved the shape-and-colour
# score more than any other. We use γ = 2 rather than the paper's recommended 5: in those single
# runs 2 scored a little higher, by no more than the noise of one run.

# %% [markdown]
# ## 4. Guidance: two predictions, one step
#
# Condition dropout taught one network two things: ε_c = ε(x_t, t, prompt), the noise it
# predicts when it reads the prompt, and ε_u = ε(x_t, t, ""), when it reads the empty prompt.
# Ho & Salimans (2022) combine them as ε̂ = (1 + w′) ε_c − w′ ε_u. Classifier *guidance*
# (Dhariwal & Nichol 2021) pushed samples along the gradient of a separately trained classifier
# of noisy images; this is *classifier-free*: no classifier, only the two predictions.
#
# This notebook, diffusers' `guidance_scale` and Stable Diffusion count differently, with a
# **guidance scale** w = w′ + 1: at **w = 0** the step is the unconditional model's (the prompt
# is ignored), at **w = 1** the conditional model's *without* guidance (Ho & Salimans' w′ = 0),
# and above 1 it goes further along the difference the prompt makes.
#
# ### Exercise 1: `guided_eps`
#
# Write ε̂ in this notebook's w: combine the unconditional and the conditional noise
# predictions (tensors of the same shape) with guidance scale `w` (a number). Check your formula
# at w = 0 and w = 1 before you run it.

# %%
import torch

from mmcourse.checks.text2image import check_guided_eps


def guided_eps(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    return eps_uncond + w * (eps_cond - eps_uncond)
    ### END SOLUTION


check_guided_eps(guided_eps)

# %% [markdown]
# Compare with the course's version, ε̂ = ε_u + w (ε_c − ε_u), and the wrapper that lets the
# existing samplers use it (one U-Net call on the batch [x_t; x_t], prompt and empty prompt):

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.diffusion.guidance import GuidedDenoiser, cfg_combine

show_source(cfg_combine)
show_source(GuidedDenoiser)

# %% [markdown]
# **Why it works.** A noise prediction is a scaled score: ε(x_t, t) ≈ −σ_t ∇ log p_t(x_t), with
# σ_t = √(1 − ᾱ_t) (notebook 02). The two predictions are the scores of p(x_t | c) and p(x_t).
# Bayes' rule defines an *implicit classifier* p(c | x_t) ∝ p(x_t | c) / p(x_t), whose gradient
# is the difference of the two scores:
#
# ε_c − ε_u = −σ_t (∇ log p(x_t | c) − ∇ log p(x_t)) = −σ_t ∇ log p(c | x_t).
#
# So ε̂ = ε_u + w (ε_c − ε_u) = −σ_t ∇ log [ p_t(x_t) · p_t(c | x_t)^w ]: each step follows a
# tilted *noised* density. These are not the noised versions of p(x) p(c | x)^w, so even exact
# predictions would not sample that distribution (Ho & Salimans note the guided ε̂ is not a true
# score); the formula says which way guidance pushes. At w = 1 it is p_t(x_t | c); w > 1 sharpens
# the implicit classifier, so pictures it is surer of gain weight: fidelity up, variety down. No
# classifier is trained; the two predictions of one network imply it.
#
# ### Exercise 2: `guided_ddim`, the guided sampling loop
#
# Write DDIM sampling (η = 0) with guidance. `eps_model(x, t, conditional)` returns the noise
# prediction with the prompt (`conditional=True`) or with the empty prompt (`False`); `ts` holds
# the timesteps from noisiest to cleanest; `alphas_cumprod[t]` is ᾱ_t. At each t: the guided
# noise ε̂; the predicted clean sample x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t; and
# x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) ε̂, where ᾱ_prev is that of the next t in `ts`, or 1
# after the last one. Return the final sample.

# %%
import torch

from mmcourse.checks.text2image import check_guided_ddim


def guided_ddim(eps_model, x_T: torch.Tensor, ts: list[int], alphas_cumprod: torch.Tensor, w: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    x = x_T
    for i, t in enumerate(ts):
        eps_u, eps_c = eps_model(x, t, False), eps_model(x, t, True)
        eps = eps_u + w * (eps_c - eps_u)
        a = alphas_cumprod[t]
        a_prev = alphas_cumprod[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x
    ### END SOLUTION


check_guided_ddim(guided_ddim)

# %% [markdown]
# Compare with the course's version: the same loop on notebook 02's `ddim_step` with
# `GuidedDenoiser`, keeping every x_t and x̂₀ (the next section shows them). It also clamps x̂₀
# to ±3 and re-derives the noise from it (`clip_sample_range`, `rederive_eps`, as
# guided-diffusion's `ddim_sample` does; diffusers' `DDIMScheduler(clip_sample=True)` keeps the
# raw noise unless `use_clipped_model_output=True`): without it a few wild predictions at the
# noisiest steps tint whole backgrounds.

# %%
from mmcourse.diffusion.guidance import guided_ddim_sample

show_source(guided_ddim_sample)

# %% [markdown]
# ## 5. The reverse process, step by step
#
# One prompt, DDIM-50 at the chosen guidance scale. Top row: the latent x_t at a few steps,
# decoded; bottom row: the step's prediction x̂₀ of the clean latent, decoded. Predict: at which
# step does the object's place appear, and at which its shape?

# %%
from mmcourse.text2image.figures import image_rows
from mmcourse.text2image.sampling import reverse_process

prompt = "a large purple diamond at the bottom right"
run = reverse_process(model, prompt, w_star, steps=50, seed=3)
at = [0, 5, 10, 15, 20, 30, 40, 49]
image_rows([run["x_t"][at], run["x0_hat"][at]], ["x_t", "x̂₀"],
           [f"t = {int(run['t'][i])}" for i in at], suptitle=f"{prompt!r}, w = {w_star:g}")
plt.show()
from mmcourse.data.shapes import POSITIONS, SHAPES

read = judges.labels(run["x0_hat"])  # what the judges read in each step's x̂₀
print("x̂₀'s shape, steps 0–49: ", " ".join(SHAPES[s][:2] for s in read[:, 0].tolist()))
print("x̂₀'s place, steps 0–49: ", " ".join(str(p) for p in read[:, 3].tolist()),
      f"(8 = {POSITIONS[8]})")
print("the picture: shape", SHAPES[int(judges.labels(run["x_t"][-1:])[0, 0])],
      "| place", POSITIONS[int(judges.labels(run["x_t"][-1:])[0, 3])])
t_settled = torch.as_tensor(run["t"][33:34]).long()
print(f"Min-SNR weight at step 33 (t = {int(t_settled)}): "
      f"{float(min_snr_weights(model.schedule, t_settled, gamma)):.2f}")

# %% [markdown]
# The place comes first: from the second step on (t = 960) every x̂₀ puts the object at the
# bottom right. The shape takes much longer: x̂₀ reads as a cross, once as a triangle, as a
# diamond at steps 10–15, as a cross again until step 32, and as the asked diamond only from
# step 33 (t = 320) on. The coarse layout is settled at high noise; the outline, the finest
# detail, only at t = 320, inside the band Min-SNR partly damps (weight 0.63 there). So Min-SNR
# did not move the gradient to where the shape is decided; it kept the cleanest steps from
# outweighing all the others, and it helped anyway.
#
# **Which positions read which words?** Each cross-attention layer gives every latent position
# a weight per token (section 1). Below, the weights of the two 8×8 layers, averaged over heads
# and layers, at three steps of the same run: one map per token, brighter where a position reads
# that token more.

# %%
from mmcourse.text2image.sampling import cross_attention_maps

att = cross_attention_maps(model, prompt, w_star, steps=50, seed=3, at=(5, 25, 45))
L = len(att["tokens"])
fig, axes = plt.subplots(3, L, figsize=(0.95 * L + 0.8, 3.4), squeeze=False)
vmax = float(att["maps"].max())
for r in range(3):
    for k in range(L):
        ax = axes[r][k]
        im = ax.imshow(att["maps"][r, k].numpy(), cmap="viridis", vmin=0, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(att["tokens"][k], fontsize=9)
    axes[r][0].set_ylabel(f"t = {int(att['t'][r])}", fontsize=9)
fig.suptitle("cross-attention weight per position (8×8 latent) and token; bright = reads it more", fontsize=9)
plt.tight_layout(rect=(0, 0, 0.93, 1))
fig.colorbar(im, cax=fig.add_axes([0.94, 0.12, 0.012, 0.7]), label="weight")
plt.show()
share = att["maps"].mean(dim=(2, 3))                                  # (3, L): mean weight per token
for r in range(3):
    print(f"t = {int(att['t'][r])}: mean weight per token", {t: round(float(v), 2) for t, v in zip(att["tokens"], share[r])})

# %% [markdown]
# Most of the weight goes to the start token and "a". CLIP's text tower is causal (notebook 04):
# each token sees only the tokens before it, so these two carry the same features in every
# prompt, and only the end token has read the whole sentence. Of the content words "purple"
# draws the most, evenly over the picture. Late in the run (t = 80) the maps become spatial: the
# positions on the object read the end token, the sentence's summary, much more ("at", "bottom",
# "right" a little more) and the start token, "a", "purple" and even "diamond", the word for
# the weak attribute, less. Different positions read
# different words, the mechanism of section 1 at work (Hertz et al.'s prompt-to-prompt edits
# pictures through such maps).
#
# ## 6. Try it: type a prompt
#
# Type a prompt with ShapesWorld's words (a shape, a colour, small or large, and where), choose
# the guidance scale w (it starts at the chosen one), the sampler, its steps and the seed, and
# press **generate**. Under the picture: the reverse trajectory and the judges' verdict per
# attribute. Try a word the model does not know (expect a ValueError naming the nearest known
# words: the tokenizer refuses it), or w = 0 and w = 1.

# %%
from mmcourse.text2image.widgets import prompt_explorer

prompt_explorer(model, judges)

# %% [markdown]
# ## 7. Guidance measured
#
# Predict: as w grows from 1, what happens to the accuracy, and what to the variety of pictures
# for one prompt?
#
# **The protocol.** The guidance scale is a choice, so it is made on *validation* draws only: 2,000
# prompts of seen colour–shape pairs (five seeds of 400, DDIM-50) at each w on a grid. The
# registry's numbers were then measured once, on 1,000 *test* prompts no choice looked at, each
# with its standard error:

# %%
curve_val = curve["val_sweep"]
rows = [[w, f"{curve_val[w]['shape_and_colour']['value']:.3f} ± {curve_val[w]['shape_and_colour']['se']:.3f}"]
        for w in curve_val]
display(Markdown(markdown_table(["w", "validation draws: shape and colour right"], rows)))
print(f"chosen on validation draws: w = {w_star:g}")
print(f"test draws, w = {w_star:g}: shape and colour", shipped.describe("shape_and_colour"))
print("test draws, w = 1 (conditional, no guidance):", shipped.describe("w1_shape_and_colour"))
print(f"guidance adds {shipped.metrics['shape_and_colour'] - shipped.metrics['w1_shape_and_colour']:+.3f} over w = 1")
est = shipped.estimate("shape_and_colour")
print(f"two standard errors above 0.90: {'yes' if est.clears(0.90) else 'no'}")

# %% [markdown]
# On the validation draws the score rises up to w = 2.5, the largest scale tried, so w = 2.5 was
# chosen (a larger one may do better). On the test draws it scores 0.912 ± 0.009: above 0.90,
# but not by two standard errors, so the target is **not met**. A score measured on the draw
# that made a choice is optimistic: w = 2 scored 0.917 on the draw of 300 below, 0.890 ± 0.007
# on the validation prompts. Guidance adds about +0.13 over w = 1, the conditional model alone
# (0.78 ± 0.01); w = 0, the *unconditional* model, scores 0.023 (below).
#
# A wider view, one stored draw of 300 seen prompts (one standard error about 0.02), with the
# course CLIP's image–text score:

# %%
sweep = load_results("text2image_guidance")
ws = list(sweep["seen"])
rows = [[w, *(f"{sweep['seen'][w][a]:.3f}" for a in ("shape", "colour", "size", "position", "shape_and_colour")),
         f"{sweep['clip_score'][w]:.3f}"] for w in ws]
display(Markdown(markdown_table(["w", "shape", "colour", "size", "position", "shape and colour", "CLIP score"], rows)))
fig, ax = plt.subplots(figsize=(5.5, 3))
for a in ("shape", "colour", "position", "shape_and_colour"):
    ax.plot([float(w) for w in ws], [sweep["seen"][w][a] for w in ws], marker="o", label=a.replace("_", " "))
ax.axhline(0.9, color="grey", ls="--", lw=1, label="target, shape and colour")
ax.axvline(float(w_star), color="black", ls=":", lw=1, label=f"chosen w* = {w_star:g} (validation)")
ax.set(xlabel="guidance scale w", ylabel="share right (judges)", ylim=(0, 1.02), title="one draw of 300 seen prompts")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Live, on 24 prompts, and one prompt at four scales (six seeds each):

# %%
from mmcourse.text2image.prompts import parse_prompt, prompt_set
from mmcourse.text2image.sampling import generate

prompts, labels = prompt_set(24, seed=11, split="test")
for w in (0.0, 1.0, float(w_star)):
    got = judges.labels(generate(model, prompts, w, steps=50, seed=0))
    print(f"w = {w:g}: shape and colour right on {int((got[:, :2] == labels[:, :2]).all(dim=1).sum())} of 24 prompts")
prompt = "a small green circle on the left"
grid_ws = (0.0, 1.0, float(w_star), 8.0)
image_rows([generate(model, prompt, w, steps=50, seed=1, n=6) for w in grid_ws], [f"w = {w:g}" for w in grid_ws],
           suptitle=f"{prompt!r}, six seeds")
plt.show()

# %% [markdown]
# **Variety.** The pixel variance across seeds mostly measures the background, which fills about
# 95% of each picture and which no prompt names. What a prompt *leaves free* is a better
# measure: ask for "a red circle" without a size or a place, and count how the samples spread
# over the nine places (the entropy of the judged place: 0 bits if every sample lands in one
# cell, more the more evenly they spread) and how often they are large. A caveat: every
# training caption names size and place, so these prompts are off the training distribution,
# and even at w = 1 the model does not draw from p(x | "a red circle"). Three such prompts,
# twelve samples each:

# %%
from mmcourse.text2image.evaluate import free_attribute_spread

free_prompts = ["a red circle", "a blue cross", "a yellow square"]
spread = {w: free_attribute_spread(model, judges, free_prompts, w, n=12, seed=0) for w in (1.0, 2.0, 4.0, 8.0)}
# the entropy 12 samples show when all nine places are equally likely (fewer than log2 9: a small sample)
uniform = torch.randint(9, (20_000, 12), generator=torch.Generator().manual_seed(0))
counts = torch.nn.functional.one_hot(uniform, 9).sum(1).double() / 12
uniform_bits = float(-(counts * counts.clamp(min=1e-12).log2()).sum(1).mean())
fig, ax = plt.subplots(1, 2, figsize=(8, 2.8))
ax[0].plot(list(spread), [s["position_entropy_bits"] for s in spread.values()], marker="o")
ax[0].axhline(uniform_bits, color="grey", ls="--", lw=1, label="all nine places alike (12 samples)")
ax[0].set(xlabel="guidance scale w", ylabel="entropy of the place (bits)", ylim=(0, 3.4), title="free place")
ax[0].legend(fontsize=8)
ax[1].plot(list(spread), [s["share_large"] for s in spread.values()], marker="o", label="share drawn large")
ax[1].plot(list(spread), [s["shape_and_colour"] for s in spread.values()], marker="s", label="shape and colour right")
ax[1].set(xlabel="guidance scale w", ylabel="share", ylim=(0, 1.02), title="free size; asked attributes")
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"12 samples, all nine places alike: {uniform_bits:.2f} bits on average")
n_free = 12 * len(free_prompts)
for w, s in spread.items():
    se_large = (s["share_large"] * (1 - s["share_large"]) / n_free) ** 0.5
    print(f"w = {w:g}: place entropy {s['position_entropy_bits']:.2f} bits, "
          f"large {s['share_large']:.2f} ± {se_large:.2f} (n = {n_free}), shape and colour {s['shape_and_colour']:.2f}")

# %% [markdown]
# The answer. Guidance makes the prompt count for the *shape*: at w = 1 colour and place are
# already right (0.970 and 1.000 in the one draw) but the shape only on 0.763; w = 2 lifts it to
# 0.930. Past that the shape gets worse (0.800 at w = 8) while the colour stays near 0.98. A
# hypothesis: pushed too far, the latents leave what the decoder was trained on and the outline
# goes first; the w = 8 backgrounds darken and saturate, the over-saturation Imagen's dynamic
# thresholding addresses (the ±3 clamp is a static threshold of that kind). The CLIP score
# agrees, highest at w = 2. At w = 0 the prompt is ignored (shape 0.183, about the
# 1 in 5 of guessing).
#
# Variety pays where the prompt leaves a choice, the *size*. Training scenes are half large, half
# small, yet at w = 1 0.75 ± 0.07 of the samples are large: the off-distribution prompt, not
# guidance, tilts it. Guidance takes it further, to 0.97 at w = 4 and 8, the reading the
# implicit classifier is surest of. The free *place* does not narrow: its entropy stays between
# 2.30 and 2.49 bits (2.60 for twelve samples spread evenly), differences within the noise of 36
# samples.
#
# **Speed**, in CPU time, fastest of five runs (with guidance each step runs the U-Net on a batch
# of two):

# %%
times = []
for _ in range(6):  # the first call warms up; five are timed, in CPU time (this process's own)
    t0 = time.process_time()
    generate(model, "a large purple diamond at the bottom right", float(w_star), steps=50)
    times.append(time.process_time() - t0)
fastest = min(times[1:])
against("DDIM-50, one image, CPU seconds (fastest of 5, measured now)", fastest, "≤", 0.2)
print(f"stored: one image {sweep['ddim50_ms_one_image']:.0f} ms; "
      f"per image in a batch of 64, {sweep['ddim50_ms_per_image_batch64']:.0f} ms")

# %% [markdown]
# ## 8. Composition: pairs nobody showed it
#
# Six colour–shape pairs (a red square, a green triangle, a blue circle, a yellow diamond, a
# purple cross, an orange circle) never appear in the denoiser's training scenes, and the CLIP
# text tower never read them either. Each word was seen, with other partners. Can the model draw
# a "red square"? The stored sweep on 300 held-out prompts, beside the 300 seen ones:

# %%
rows = [[w, f"{sweep['seen'][w]['shape_and_colour']:.3f}", f"{sweep['heldout'][w]['shape_and_colour']:.3f}",
         f"{sweep['seen'][w]['shape']:.3f}", f"{sweep['heldout'][w]['shape']:.3f}",
         f"{sweep['heldout'][w]['colour']:.3f}"] for w in ws]
display(Markdown(markdown_table(["w", "seen: shape and colour", "held-out: shape and colour", "seen: shape",
                                 "held-out: shape", "held-out: colour"], rows)))
held = world().sample(400, seed=8, split="heldout")
agree_held = (judges.shape(held.images) == held.shape[:, 0]).float().mean()
print(f"caveat: on real held-out scenes the shape judge itself agrees with ShapesWorld {agree_held:.3f} of the time")
m = shipped.metrics
print(f"caveat: the autoencoder keeps the shape label of {m['ae_shape_kept_heldout']:.3f} of held-out scenes "
      f"({m['ae_shape_kept_test']:.3f} of seen ones; one draw of 2,000 each)")
heldout_prompts = ["a large red square in the middle", "a large green triangle at the top left",
                   "a large blue circle on the right", "a large purple cross at the bottom"]
x = generate(model, heldout_prompts, float(w_star), steps=50, seed=2)
verdicts = judges.verdict(x, [parse_prompt(p) for p in heldout_prompts])
titles = [p + "\n" + " ".join(("✓" if ok else "✗") + a for a, ok in v.items()) for p, v in zip(heldout_prompts, verdicts)]
fig, axes = plt.subplots(1, 4, figsize=(8.4, 2.9))
for ax, img, title in zip(axes, x, titles):
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title.replace(" at the", "\nat the").replace(" in the", "\nin the").replace(" on the", "\non the"), fontsize=8)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Held-out is lower at every w above 0: 0.707 against 0.917 at w = 2, about seven standard
# errors of the difference (0.03), all in the shape (0.713 against 0.930; colour 0.990). The caveats size the measuring's part: judge and
# autoencoder cap the held-out shape score near 0.962 × 0.932 ≈ 0.90 against 0.999 × 0.982 ≈
# 0.98 for seen pairs, some 0.08 of the 0.22 gap; the rest, about 0.14, is the denoiser. A red
# square it never saw: the red, always; a held-out pair's shape, about seven times in ten. It
# composes, imperfectly.
#
# ## 9. Closing the loop: CLIP ranks the samples
#
# The course's CLIP (notebook 04) scores each of eight samples of one prompt; the best-scoring
# sample is what a system would show first (DALL·E ranked its samples with CLIP this way). The
# prompt names a held-out pair, a purple cross, the harder case of section 8.

# %%
prompt = "a large purple cross at the top right"
samples = generate(model, prompt, float(w_star), steps=50, seed=5, n=8)
scores = judges.clip_score(samples, [prompt] * 8)
order = scores.argsort(descending=True)
ok = [all(v.values()) for v in judges.verdict(samples[order], [parse_prompt(prompt)] * 8)]
image_rows([samples[order]], ["CLIP's\norder"], [f"{s:.3f} {'✓' if o else '✗'}" for s, o in zip(scores[order].tolist(), ok)],
           suptitle=f"{prompt!r}: CLIP score, best first; ✓ = the judges find all four attributes")
plt.show()
print(f"{sum(ok)} of 8 samples right on all four; CLIP's first choice is {'right' if ok[0] else 'wrong'}")

# %% [markdown]
# CLIP reads the whole picture against the whole sentence, the judges one attribute each, so
# they need not agree; this draw has no failure for CLIP to rank last.
#
# GLIP (notebook 07) grounds "purple cross" in each sample (upsampled 2×: both it and SAM were
# trained on 64×64 scenes); SAM (notebook 06) cuts the object out with GLIP's box as its prompt
# (`ground_and_segment`). Predict: will SAM's masks match the judges' object pixels as well on
# generated pictures as on real scenes?

# %%
from mmcourse.text2image.judges import object_masks
from mmcourse.data.shapes import COLOUR_NAMES, SHAPES
from mmcourse.glip.tasks import load_glip
from mmcourse.sam.tasks import load_sam
from mmcourse.text2image.grounding import ground_and_segment

glip, sam = load_glip(), load_sam()  # loaded once, used for every picture below
found = ground_and_segment(samples[order], "purple cross", glip, sam)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.9))
for i, ax in enumerate(axes):
    ax.imshow(samples[order][i].permute(1, 2, 0).clamp(0, 1).numpy())
    if found["masks"][i].any():  # SAM's mask, outlined in green
        ax.contour(found["masks"][i].float().numpy(), [0.5], colors="lime", linewidths=1.2)
    if not torch.isnan(found["boxes"][i]).any():
        x0, y0, x1, y1 = found["boxes"][i].tolist()
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", lw=1.2))
    ax.set_title(f"{'✓' if ok[i] else '✗'} IoU {found['iou'][i]:.2f}", fontsize=9)
    ax.axis("off")
fig.suptitle("GLIP's box for 'purple cross' (red), SAM's mask from that box (green outline); in CLIP's order", fontsize=9)
plt.show()
iou_ = found["iou"]
okt = torch.tensor(ok)
def mean_on(sel: torch.Tensor) -> str:
    return f"{iou_[sel].mean():.2f} on {int(sel.sum())}" if sel.any() else "none"


print(f"SAM mask against the judges' object pixels, mean IoU: {iou_.mean():.2f} "
      f"(judged right: {mean_on(okt)}; judged wrong: {mean_on(~okt)})")
hit = ~torch.isnan(found["boxes"][:, 0])
truth_px, _ = object_masks(samples[order].clamp(0, 1))
print(f"GLIP found a box in {int(hit.sum())} of 8 (scores {found['scores'][hit].min():.2f}–{found['scores'][hit].max():.2f}); "
      f"pixels per object: SAM's mask {found['masks'].sum((1, 2)).float().mean():.0f}, "
      f"the judges' {truth_px.sum((1, 2)).float().mean():.0f}")
real12 = world().sample(12, seed=1, split="test")  # the same two steps on real 32x32 scenes, each asked for its own object
real_iou = torch.cat([ground_and_segment(real12.images[i:i + 1], f"{COLOUR_NAMES[int(real12.colour[i, 0])]} {SHAPES[int(real12.shape[i, 0])]}",
                                         glip, sam)["iou"]
                      for i in range(12)])
print(f"on 12 real scenes, SAM's mask against the judges' object pixels, mean IoU: {real_iou.mean():.2f}")

# %% [markdown]
# Nearly as well, on small samples: GLIP finds a box in all eight, and SAM's masks reach a mean
# IoU of 0.83 (8 samples) against 0.91 (12 real scenes). They are smaller (56 pixels against the
# judges' 67): the generated edges are soft, the judges count every pixel that differs from the
# background, and SAM, trained on crisp edges, keeps the core.
#
# ## 10. Exercise 3: `dropout_loss`, condition dropout in the training step
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
from mmcourse.text2image.train import text_eps_loss

show_source(condition_dropout)
show_source(text_eps_loss)

# %% [markdown]
# ## What we measured
#
# Latents, because the shape judge cannot read 16×16 pictures reliably (0.862). The autoencoder
# keeps the shape of 0.982 ± 0.003 of test scenes, thanks to a loss that pays for the outline:
# not two standard errors above 0.98, so that target is not met either.
# Guidance at w = 2.5 (chosen on validation draws) lifts shape and colour from 0.78 ± 0.01 at
# w = 1 to 0.912 ± 0.009 on test draws: above 0.90, but not by two standard errors, so the
# target is not yet met. Guidance costs variety where the prompt leaves a choice (free sizes turn
# large). Held-out pairs: 0.707 ± 0.026 (one draw of 300, w = 2), the colour as for seen pairs, the shape less
# often. The shape is what is left: it goes wrong first, under too much guidance, on unseen
# pairs, and in the decoder's outline.

# %%
print("autoencoder, shape label kept:", shipped.describe("ae_shape_kept"))
print(f"w = {w_star:g} (chosen on validation draws), shape and colour:", shipped.describe("shape_and_colour"))
print("w = 1, the conditional model without guidance:", shipped.describe("w1_shape_and_colour"))
print(f"w = 0, the unconditional model (one draw of 300): {sweep['seen']['0.0']['shape_and_colour']:.3f}")
against("DDIM-50, one image, CPU seconds (fastest of 5)", fastest, "≤", 0.2)
c_, h_, w_ = model.ae.latent_shape
print(f"space: latent {h_}×{w_}×{c_} (shape judge on upsampled 16×16 scenes: "
      f"{space['shape_judge_agreement']['16px upsampled (bicubic)']:.3f}, on 32×32: {space['shape_judge_agreement']['32px']:.3f})")
h2 = sweep["heldout"]["2.0"]["shape_and_colour"]
print(f"held-out pairs, one draw of 300 at w = 2: shape and colour {h2:.3f} ± {(h2 * (1 - h2) / 300) ** 0.5:.3f} "
      f"(seen {sweep['seen']['2.0']['shape_and_colour']:.3f})")
print(f"training {total / 60:.1f} min on {curve['threads']} threads")

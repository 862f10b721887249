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
# A text-to-image model (文生图) is a diffusion model whose denoiser reads the prompt through a
# frozen text encoder: a CLIP text tower in Stable Diffusion 1 and 2, the T5 language model in
# Imagen, CLIP towers and T5 together in SD3. We build a tiny one from the course's parts and
# judge it with the course's models:
#
# - the **text tower** of the shipped `clip_shapes_broad` (notebook 04), frozen;
# - a **U-Net denoiser** (notebook 02) that reads the prompt through **cross-attention**
#   (交叉注意力) to the token features and through the pooled sentence embedding;
# - **classifier-free guidance** (无分类器引导): one network learns the prompted and the
#   unprompted noise prediction, and sampling mixes them with a guidance scale w;
# - **latent diffusion** (潜空间扩散): diffusion runs on an autoencoder's 8×8×8 latents, and its
#   decoder paints the 32×32 picture;
# - **judges**: the shape ViT (notebook 03), the object pixels' colour, centre and area, and a
#   CLIP score.
#
# Every training scene holds **one object**, captioned with its shape, colour, size and place.
# Sampling uses DDIM with 50 steps (DDIM-50).
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
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mmcourse.checks.core import expect, report
from mmcourse.viz import plot_history, setup_matplotlib, show_images, show_source
from mmcourse.weights import entry

setup_matplotlib()
# %matplotlib inline


# Sampling small models one picture at a time: one thread is as fast as two, and two threads
# that wait for each other on a shared 2-core machine can be much slower.
torch.set_num_threads(1)
shipped = entry("text2image_shapes")      # the checkpoint's registry row: numbers from the test draws
w_star = shipped.metrics["guidance_scale"]  # the guidance scale chosen on validation draws

# %% [markdown]
# **Where the numbers come from:** the guidance scale (and which moving average of the weights
# to ship) is chosen on *validation* draws; the checkpoint's numbers come from *test* draws that
# no choice looked at, each with its standard error. Other numbers are illustrations on small
# draws and say so.

# %%
from mmcourse.clip.widgets import markdown_table
from mmcourse.protocol import Estimate, seeds
from mmcourse.text2image import evaluate as protocol
from mmcourse.text2image.evaluate import load_results

curve = load_results("text2image_training")   # the build's record: recipe, loss curves, validation sweep
sweep = load_results("text2image_guidance")   # bench: one draw of 300 prompts at w = 0 to 8


k = len(seeds("text2image", "test"))
display(Markdown(markdown_table(["draws", "n", "used for"], [
    ["train: captioned one-object scenes", f"{curve['recipe']['n_train']:,}", "training both stages"],
    ["validation: prompts of seen colour–shape pairs", f"{k * protocol.PROMPTS_PER_SEED:,} per w", "choosing the weight average and w"],
    ["test: the same kind of prompts; scenes for the autoencoder",
     f"{k * protocol.REPORT_PROMPTS_PER_SEED['test']:,} prompts, {k * protocol.SCENES_PER_SEED:,} scenes", "the reported numbers"],
    ["one draw: seen and held-out prompts", f"{sweep['n_prompts']} each", "the wide sweep of w (§7, §8)"],
])))

# %% [markdown]
# ## 1. The plan in code: two paths for the prompt
#
# **Path 1, cross-attention.** Every position of a feature map makes a *query*; each of the
# prompt's tokens offers a *key* (what it is about) and a *value* (what it passes on). A position
# takes the mean of the values weighted by how well its query matches each key, so different
# positions can take different words. Padding tokens (the prompt is shorter than the 16 slots)
# get weight 0. Stable Diffusion 1 masks nothing (its padding slots repeat the end token); the
# mask is the course's choice, and it makes the test below exact. SD wraps cross-attention in a
# transformer block at each attention resolution (self-attention, cross-attention, a GEGLU
# feed-forward); ours is GroupNorm + cross-attention + residual, with self-attention only in the
# middle block, to keep an 8×8 U-Net small and fast on a CPU.

# %%
from mmcourse.diffusion.conditioning import CrossAttention, TextUNet

show_source(CrossAttention.forward)

# %% [markdown]
# **Path 2, the pooled embedding.** CLIP's sentence embedding (the end token's feature, projected
# as in notebook 04) goes through one linear layer and is added to the time embedding: every
# ResBlock gets one shift per channel, the same at every position. GLIDE (Nichol et al. 2022)
# first joined both paths, with classifier-free guidance; Stable Diffusion 1.x uses path 1 only;
# Imagen and SDXL add a pooled embedding as well. Both paths in the forward pass (lines
# marked `path 1` / `path 2`):

# %%
show_source(TextUNet.forward)

# %% [markdown]
# `FrozenTextEncoder` returns the frozen tower's per-token output (the context of
# cross-attention), the padding mask and the pooled embedding. Predict: if we change the features
# of a padding token, how much does the denoiser's output move?

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
# Not at all: the change is exactly 0, because padding tokens get attention weight 0 in every
# layer (and the pooled embedding is read at the end token, a real one).
#
# ## 2. Where the pixels live: 16×16 pixels or 8×8 latents
#
# Two ways to make diffusion cheap enough for a CPU: draw small pictures (16×16), or draw in a
# compressed space and decode (latent diffusion, Rombach et al. 2022, Stable Diffusion's design).
# The deciding number: can the shape judge (a ViT trained on 32×32 scenes) still tell the shapes
# apart in 16×16 pictures, upsampled for it?

# %%
space = load_results("text2image_space")
display(Markdown(markdown_table(
    ["real scenes", "shape ViT agrees with ShapesWorld"],
    [[k, f"{v:.1%}"] for k, v in space["shape_judge_agreement"].items()])))

# %% [markdown]
# At 16×16 the judge is wrong on more than one scene in ten *before any model draws anything*:
# objects 7 to 10 pixels wide become 4 or 5, too few to tell a cross from a diamond. So we draw
# latents: an autoencoder turns each 4×4 patch of a 32×32 scene into one latent position with
# C = 8 channels (Stable Diffusion 1: 8×8 patches, C = 4); the denoiser draws on
# the 8×8 grid, and the judges still see 32×32 pictures. Appendix A shows how C and the loss were
# chosen.
#
# Rombach et al. sample the latent from a learned Gaussian with a tiny KL penalty against
# high-variance latents. We split the two roles: `encode` standardises each channel for the scale
# (Stable Diffusion multiplies by one scalar, `scaling_factor` 0.18215), and training adds noise
# of a fixed relative size (`latent_noise`), so the decoder tolerates imperfect latents. Top row
# real, bottom row encoded and decoded:

# %%
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.model import world

judges = Judges.load()
real = world().sample(200, seed=7, split="test")
truth = judges.shape(real.images)


def kept(images: torch.Tensor) -> float:
    """Share of the 200 scenes whose judged shape survives."""
    return float((judges.shape(images.clamp(0, 1)) == truth).float().mean())


c_, h_, w_ = model.ae.latent_shape
print(f"latent {h_}×{w_}×{c_} | latent noise {curve['recipe']['ae_latent_noise']} | raw latents' spread per channel:",
      " ".join(f"{v:.2f}" for v in model.ae.latent_std.tolist()))
with torch.no_grad():
    recon = model.ae.decode(model.ae.encode(real.images))
show_images(torch.cat([real.images[:8], recon[:8]]), ncols=8, scale=0.9)
plt.show()
k200 = kept(recon)
print(f"shape label kept by encode → decode, these 200 test scenes: {k200:.3f} "
      f"(one standard error on 200 scenes: {(k200 * (1 - k200) / 200) ** 0.5:.3f})")
print("the same on the protocol's test draws:", shipped.describe("ae_shape_kept"))
print("two standard errors above the target:", "yes" if shipped.estimate("ae_shape_kept").clears(0.98) else "no")
print("colour, size and position judged on the reconstructions:",
      ", ".join(f"{a} {v:.3f}" for a, v in zip(("colour", "size", "position"),
                                                 (judges.labels(recon) == judges.labels(real.images)).float().mean(0)[1:].tolist())))

# %% [markdown]
# On the protocol's test draws the autoencoder keeps the shape of 0.988 ± 0.003 of scenes, more
# than two standard errors above 0.98: the target is met. Colour, size and place survive the
# round trip on nearly every scene.

# %% [markdown]
# ## 3. Training: the loss falls
#
# One training step: pick a captioned scene's latent, noise it to a random step t, and ask the
# U-Net for the noise given the caption: notebook 02's loss with one more input. With
# probability 0.1 the caption is replaced by the empty prompt "" (**condition dropout**), so the
# same network also learns the unprompted noise, which guidance (section 4) needs.
#
# ### Exercise 1: `dropout_loss`, condition dropout in the training step
#
# Write the loss with plain tensors: `cond` (B, D) holds each example's condition and `null`
# (D,) the empty prompt's; row i is replaced by `null` when `u[i] < p` (`u` holds uniform random
# numbers). Then x_t = √ᾱ_t x0 + √(1 − ᾱ_t) noise with ᾱ_t = `alphas_cumprod[t]`, and the loss is
# the mean of (noise − model(x_t, t, c))².

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
# The course's version, which trained the shipped model:

# %%
from mmcourse.diffusion.guidance import condition_dropout
from mmcourse.text2image.train import text_eps_loss

show_source(condition_dropout)
show_source(text_eps_loss)


# %% [markdown]
# A short live run of a smaller U-Net on 2,000 scenes. Predict: where does the loss start, and
# why there?

# %%
from mmcourse.text2image.train import encode_dataset, train_denoiser
from mmcourse.train import seed_everything

data = encode_dataset(model.ae, enc, 2000, seed=3)
seed_everything(0)
small = TextUNet(in_channels=model.ae.latent_channels, base=16, channel_mults=(1, 1), image_size=8, context_dim=64, pooled_dim=64, num_heads=2)
_, live_hist = train_denoiser(small, model.schedule, data, steps=150, batch_size=32, ema_decay=None)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
plot_history(live_hist, title="live: 150 steps, small U-Net", ax=axes[0])
axes[0].legend(["per step", "mean of the last 20 steps (lags a falling loss)"], fontsize=8, loc="upper right")
axes[1].plot(curve["curve"]["step"], curve["curve"]["loss"])
axes[1].set(xlabel="step", ylabel="Min-SNR-weighted loss\n(mean of the last 50 steps)", title="shipped checkpoint")
plt.tight_layout()
plt.show()
print(f"live loss: first 20 steps {np.mean(live_hist.loss[:20]):.3f}, last 20 steps {np.mean(live_hist.loss[-20:]):.3f}")

# %% [markdown]
# It starts near 1: an untrained U-Net outputs numbers near 0, and predicting 0 for unit Gaussian
# noise costs its variance, 1. In 150 steps it falls to less than half.
#
# The shipped checkpoint trained longer, with a larger U-Net, weight averaging (EMA) and a
# weighted loss (below) whose weights are at most 1, so its curve (right) sits lower partly by
# construction: the two curves are not comparable. It still fell slowly at the end:

# %%
r = curve["recipe"]
print(f"autoencoder: {r['ae_steps']} steps; denoiser: {r['steps']} steps of {r['batch_size']} latents "
      f"from {r['n_train']:,} captioned scenes; condition dropout p_uncond = {model.cfg.p_uncond}; "
      f"Min-SNR γ = {r['snr_gamma']:g}")
steps_, losses_ = np.array(curve["curve"]["step"]), np.array(curve["curve"]["loss"])
n_ = r["steps"]
print("shipped loss, mean over steps {}–{}: {:.3f}; over {}–{}: {:.3f}".format(
    n_ // 2, 3 * n_ // 4, losses_[(steps_ >= n_ // 2) & (steps_ < 3 * n_ // 4)].mean(),
    3 * n_ // 4, n_, losses_[steps_ >= 3 * n_ // 4].mean()))
print("U-Net parameters:", sum(p.numel() for p in model.unet.parameters()),
      "| autoencoder parameters:", sum(p.numel() for p in model.ae.parameters()))
from mmcourse.diffusion import min_snr_weights

t_all = torch.arange(model.schedule.num_train_timesteps)
snr_w = min_snr_weights(model.schedule, t_all, r["snr_gamma"])  # the weight of each timestep, from the schedule
damped = t_all[snr_w < 1]
print(f"Min-SNR weight below 1 on t = 0–{int(damped.max())}: {len(damped)} of {len(t_all)} timesteps "
      f"(ᾱ_t > {float(model.schedule.alphas_cumprod[damped.max()]):.2f}); weight at t = 0: {float(snr_w[0]):.5f}, "
      f"t = 100: {float(snr_w[100]):.3f}, t = 250: {float(snr_w[250]):.2f}")

# %% [markdown]
# The weighting is Min-SNR (Hang et al. 2023; diffusers' `snr_gamma`): each example's error is
# multiplied by min(SNR_t, γ) / SNR_t, with SNR_t = ᾱ_t / (1 − ᾱ_t), so that the easy low-noise
# steps, whose gradients conflict with the others', do not dominate training. Under our cosine
# schedule (notebook 02's; Stable Diffusion's is `scaled_linear`) γ = 2 damps the cleanest 387 of
# 1,000 steps (printed above), not just the nearly clean ones. Hang et al. use γ = 5; our 2 comes
# from development runs (single runs, the README's recipe history), not re-measured under the
# protocol.

# %% [markdown]
# ## 4. Guidance: two predictions, one step
#
# Condition dropout taught one network two predictions: ε_c = ε(x_t, t, prompt) and
# ε_u = ε(x_t, t, ""). Ho & Salimans (2022) combine them as ε̂ = (1 + w′) ε_c − w′ ε_u.
# Classifier *guidance* (Dhariwal & Nichol 2021) followed the gradient of a separately trained
# classifier of noisy images; this is *classifier-free*: only the two predictions.
#
# This notebook, like diffusers' `guidance_scale` and Stable Diffusion, counts the **guidance
# scale** as w = w′ + 1: at **w = 0** the step is the unconditional model's (the prompt is
# ignored), at **w = 1** the conditional model's *without* guidance (Ho & Salimans' w′ = 0), and
# above 1 it goes further along the difference the prompt makes.
#
# ### Exercise 2: `guided_eps`
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
# The course's version, ε̂ = ε_u + w (ε_c − ε_u), and the wrapper that lets the samplers use it
# (one U-Net call on the batch [x_t; x_t], prompt and empty prompt):

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
# So, with exact scores, ε̂ = ε_u + w (ε_c − ε_u) = −σ_t ∇ log [ p_t(x_t) · p_t(c | x_t)^w ]: each
# step follows a tilted *noised* density. At w = 1 that density is p_t(x_t | c); w > 1 sharpens
# the implicit classifier, so pictures it is surer of gain weight: fidelity up, variety down.
#
# Two caveats. The tilted densities at different t are not the noised versions of one tilted
# data distribution p(x) p(c | x)^w, so the sampler does not draw from it (Chidambaram et al.
# 2024; Bradley & Nakkiran 2024). And the *learned* difference ε_c − ε_u, two unconstrained
# network outputs, need not be the gradient of any classifier (Ho & Salimans §3.2).
#
# ### Exercise 3: `guided_ddim`, the guided sampling loop
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
# The course's version: the same loop on notebook 02's `ddim_step`, keeping every x_t and x̂₀
# (next section). It also clamps x̂₀ to ±3 (3 standard deviations of the standardised latents)
# and re-derives the noise, as guided-diffusion's `ddim_sample` does for pixels in [−1, 1].
# Stable Diffusion does not clamp (`clip_sample: false`); in our development runs (single runs,
# the README's recipe history) the clamp raised the score, and clamping with the raw noise kept
# (diffusers) lowered it.

# %%
from mmcourse.diffusion.guidance import guided_ddim_sample

show_source(guided_ddim_sample)

# %% [markdown]
# ## 5. The reverse process, step by step
#
# One prompt at the chosen guidance scale, picked because a diamond's outline is borderline: the
# shape judge can confuse it with a cross. Top row: the latent x_t at a few steps, decoded for
# display only (the decoder never saw noisy latents); bottom row: each step's prediction x̂₀ of
# the clean latent, decoded. Predict: at which step does the object's place appear, and at which
# its shape?

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


from mmcourse.text2image.evaluate import settled  # the first step from which every later x̂₀ reads as the final one

for name, col in (("place", 3), ("shape", 0)):
    i = settled(read[:, col])
    print(f"{name} settled from step {i} (t = {int(run['t'][i])})")

# %% [markdown]
# The place comes first: from step 1 (t = 960) on, every x̂₀ puts the object at the bottom
# right. The judge's reading of the shape wavers (it reaches the diamond early, leaves it for a
# cross for two steps) and settles on the diamond at step 8 (t = 820); after that the x̂₀
# pictures barely change. Is that typical? The
# same two steps for 30 test prompts (seeds 0–29):

# %%
from mmcourse.text2image.evaluate import settling_steps
from mmcourse.text2image.prompts import prompt_set

settle_prompts, _ = prompt_set(30, seed=5, split="test")
when = settling_steps(model, judges, settle_prompts, float(w_star))  # (30, 2): place, shape
fig, ax = plt.subplots(figsize=(5.5, 2.4))
ax.hist([when[:, 0].numpy(), when[:, 1].numpy()], bins=range(0, 51, 2), label=["place", "shape"])
ax.set(xlabel="DDIM step from which every x̂₀ reads as the final picture", ylabel="prompts",
       title=f"30 test prompts, w = {w_star:g}")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
for name, col in (("place", 0), ("shape", 1)):
    med = int(when[:, col].median())
    print(f"{name}: median step {med} (t = {int(run['t'][med])}); "
          f"settled by step 16 in {int((when[:, col] <= 16).sum())} of 30; later than step 20: "
          f"{sorted(when[when[:, col] > 20, col].tolist())}")

# %% [markdown]
# The place is fixed in the first few steps and the shape by step 16 in 28 of 30; only two
# borderline outlines stay open until late (steps 32 and 46).
#
# **Which positions read which words?** Each cross-attention layer gives every latent position
# a weight per token. Below, the weights of the two 8×8 layers, averaged over heads and layers,
# at three steps of the same run: one map per token, brighter where a position reads it more.

# %%
from mmcourse.text2image.judges import object_masks
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
# the object's latent positions: the final picture's object pixels, pooled to the 8×8 grid
on8 = torch.nn.functional.adaptive_avg_pool2d(object_masks(run["x_t"][-1:].clamp(0, 1))[0][:, None].float(), 8)[0, 0] > 0.25
print(f"mean weight per token, on the object's {int(on8.sum())} positions / on the other {int((~on8).sum())}:")
for r in range(3):
    print(f"t = {int(att['t'][r])}:", "  ".join(f"{tok} {float(m[on8].mean()):.2f}/{float(m[~on8].mean()):.2f}"
                                         for tok, m in zip(att["tokens"], att["maps"][r])))

# %% [markdown]
# Early on, most weight goes to the start token and "a", everywhere alike: CLIP's text tower is
# causal (notebook 04), so these two carry the same features in every prompt that starts with
# "a". Only the end token has read the whole sentence, and by t = 480 the object's positions read
# it six times more than the background (0.24 against 0.04: the bright spot at the bottom right);
# by t = 80 they also read "bottom" twice as much. "purple" is read everywhere, and late on *less*
# on the object than off it (0.02 against 0.10 at t = 80), but so are "a" and "the": the weights
# over the tokens sum to 1,
# so where the end token takes most, the others get less; 4 positions of one run are little
# evidence.
#
# ## 6. Try it: type a prompt
#
# Type a prompt with ShapesWorld's words (shape, colour, small or large, where), choose w,
# sampler, steps and seed, and press **generate**: the picture, its reverse trajectory and the
# judges' verdict. Try an unknown word, or w = 0 and w = 1.

# %%
from mmcourse.text2image.widgets import prompt_explorer

prompt_explorer(model, judges)

# %% [markdown]
# ## 7. Guidance measured
#
# Predict: as w grows from 1, what happens to the accuracy, and what to the variety of pictures
# for one prompt?
#
# w is chosen on the validation draws (table at the top), searching upward from 2 until the
# score drops; the search starts at 2, so nothing below 2 was searched on this checkpoint: w = 1
# is far below (the wider sweep further down), but the best scale may lie between 1 and 2. The
# registry's numbers come from the test draws:

# %%
curve_val = curve["val_sweep"]
rows = [[w, f"{curve_val[w]['shape_and_colour']['value']:.3f} ± {curve_val[w]['shape_and_colour']['se']:.3f}"]
        for w in curve_val]
display(Markdown(markdown_table(["w", "validation draws: shape and colour right"], rows)))
print("to four decimals:", ", ".join(f"w = {w}: {curve_val[w]['shape_and_colour']['value']:.4f}" for w in curve_val))
print(f"chosen on validation draws: w = {w_star:g}")
decays = {d: row["shape_and_colour"] for d, row in curve["val_ema_decays"].items() if d != "guidance_scale"}
print(f"weight averages, validation draws at w = {curve['val_ema_decays']['guidance_scale']:g}: "
      + ", ".join(f"decay {d}: {e['value']:.3f} ± {e['se']:.3f}" for d, e in decays.items())
      + f"; chosen {shipped.metrics['ema_decay']}")
print(f"test draws, w = {w_star:g}: shape and colour", shipped.describe("shape_and_colour"))
w1 = shipped.estimate("w1_shape_and_colour")
print(f"test draws, w = 1 (conditional, no guidance): {w1.value:.3f} ± {w1.se:.3f} (n = {w1.n:,})")
gain = load_results("text2image_guidance_gain")["gain"]  # bench: both scales on the same test prompts and noise
print(f"guidance adds {gain['value']:+.3f} ± {gain['se']:.3f} over w = 1 "
      f"(paired: the difference measured prompt by prompt on the same {gain['n']:,} draws)")
est = shipped.estimate("shape_and_colour")
print(f"two standard errors above the target: {'yes' if est.clears(0.90) else 'no'}")

# %% [markdown]
# On the validation draws the score is highest at w = 2 (0.952) and lower at 2.5 (0.947), where
# the search stopped: a lead of less than one standard error, but `choose_guidance_scale` takes
# the highest value however small the lead (an exact tie would go to the smaller w), so 2 was
# chosen. Before that, the build compared its three moving averages of the weights at w = 3 (the
# scale the previous, 10,000-step build chose): 0.939, 0.939 and 0.935, equal within their
# standard errors, so the first of equals, decay 0.995, was kept. On the test draws it scores
# 0.952 ± 0.005, more than two standard errors above 0.90, so the target is **met**. Guidance adds
# +0.077 ± 0.008 over w = 1 (0.875 ± 0.007), prompt by prompt on the same draws.
#
# A wider view, one stored draw of 300 seen prompts (one standard error 0.01 to 0.02), with the
# CLIP score: the course CLIP's image–prompt cosine (not Hessel et al.'s CLIPScore), averaged over
# 128 pictures (16 other prompts × 8 seeds), its standard error taken over the 16 prompts' means (a
# prompt's eight pictures are not independent of one another):

# %%
ws = list(sweep["seen"])
rows = [[w, *(f"{sweep['seen'][w][a]:.3f}" for a in ("shape", "colour", "size", "position", "shape_and_colour")),
         str(Estimate(**sweep["clip_score"][w]))] for w in ws]
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
for w in sorted({"2.0", str(float(w_star))}, key=float):
    v = sweep["seen"][w]["shape_and_colour"]
    se_v = (v * (1 - v) / 300) ** 0.5
    val = curve_val[w]["shape_and_colour"]
    d, se_d = v - val["value"], (se_v ** 2 + val["se"] ** 2) ** 0.5  # independent draws
    print(f"w = {float(w):g}: this draw {v:.3f} ± {se_v:.3f}; validation draws {val['value']:.3f} ± {val['se']:.3f}; "
          f"difference {d:+.3f} ± {se_d:.3f} ({abs(d) / se_d:.1f} standard errors)")

# %% [markdown]
# One prompt at four scales (six seeds each):

# %%
from mmcourse.text2image.prompts import parse_prompt, prompt_set
from mmcourse.text2image.sampling import generate

prompt = "a small green circle on the left"
grid_ws = (0.0, 1.0, float(w_star), 8.0)
image_rows([generate(model, prompt, w, steps=50, seed=1, n=6) for w in grid_ws], [f"w = {w:g}" for w in grid_ws],
           suptitle=f"{prompt!r}, six seeds")
plt.show()

# %% [markdown]
# **Variety.** Pixel variance across seeds mostly measures the background, which no prompt names.
# Instead, ask for "a red circle" with no size or place (every training caption names both) and
# count how the samples spread over the nine places (entropy: 0 bits if all land in one cell) and
# how often they are large. Three prompts, twelve samples each:

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
train_batch = world().sample(2000, seed=0, split="train")
print(f"training scenes drawn large: {float((train_batch.size[:, 0] == 1).float().mean()):.3f} (2,000 of them)")
n_free = 12 * len(free_prompts)
for w, s in spread.items():
    se_large = (s["share_large"] * (1 - s["share_large"]) / n_free) ** 0.5
    print(f"w = {w:g}: place entropy {s['position_entropy_bits']:.2f} bits, "
          f"large {s['share_large']:.2f} ± {se_large:.2f} (n = {n_free}), shape and colour {s['shape_and_colour']:.2f}")

# %% [markdown]
# The answer. Guidance makes the prompt count for the *shape* (table above): at w = 1 colour and
# place are nearly always right, the shape only on 0.877; w = 2 lifts it to 0.960, and at 8 it
# falls back (0.863). This draw peaks at w = 2, as the validation draws do, and agrees with them
# there (printed above); on its own it could not tell 2 from 3 (0.950 against 0.940, less than one
# standard error), which is why w is chosen on the larger validation draws. At w = 8 backgrounds
# turn darker and speckled and the circles grow a dark rim; our reading, not measured: the latents
# leave what the decoder was trained on (Imagen's dynamic thresholding addresses this for pixels;
# diffusers documents it as unsuited to latent models). At w = 0 the prompt is ignored: the shape
# is right 0.220 of the time, about the 1 in 5 of guessing, and the CLIP score is −0.02 ± 0.02, about 0.
#
# Variety pays where the prompt leaves a choice, the *size*. Training scenes are half large, yet
# at w = 1 0.83 ± 0.06 of the samples are large: every training caption names size and place, so
# even w = 1 does not draw from p(x | c) for "a red circle" (a caveat on this probe). Guidance
# takes it to 1.00 at w = 2 (0.97 at 4 and 8), the reading the implicit classifier is surest of.
# The place shows no clear change (2.31 bits at w = 1, 2.08–2.09 from 2 to 8; 2.60 if even; 36
# samples).

# %% [markdown]
# ## 8. Composition: pairs nobody showed it
#
# Six colour–shape pairs (a red square, a green triangle, a blue circle, a yellow diamond, a
# purple cross, an orange circle) appear neither in the training scenes nor in what the CLIP text
# tower read; each word was seen with other partners. Can the model draw a "red square"? The
# stored sweep on 300 held-out prompts, beside the 300 seen ones:

# %%
rows = [[w, f"{sweep['seen'][w]['shape_and_colour']:.3f}", f"{sweep['heldout'][w]['shape_and_colour']:.3f}",
         f"{sweep['seen'][w]['shape']:.3f}", *(f"{sweep['heldout'][w][a]:.3f}" for a in ("shape", "colour", "size", "position"))]
        for w in ws]
display(Markdown(markdown_table(["w", "seen: shape and colour", "held-out: shape and colour", "seen: shape",
                                 "held-out: shape", "held-out: colour", "held-out: size", "held-out: position"], rows)))
held = world().sample(400, seed=8, split="heldout")
agree_held = float((judges.shape(held.images) == held.shape[:, 0]).float().mean())
print(f"caveat: on 400 real held-out scenes the shape judge itself agrees with ShapesWorld {agree_held:.3f} ± "
      f"{(agree_held * (1 - agree_held) / 400) ** 0.5:.3f} of the time (seen scenes: {space['shape_judge_agreement']['32px']:.3f})")
with torch.no_grad():
    kept_held = float((judges.shape(model.ae.decode(model.ae.encode(held.images))) == judges.shape(held.images)).float().mean())
print(f"caveat: the autoencoder keeps the judged shape of {kept_held:.3f} ± {(kept_held * (1 - kept_held) / 400) ** 0.5:.3f} "
      f"of these scenes (seen scenes, test draws: {shipped.describe('ae_shape_kept')})")
seen_w, held_w = sweep["seen"][str(float(w_star))], sweep["heldout"][str(float(w_star))]
a_, b_ = seen_w["shape_and_colour"], held_w["shape_and_colour"]
print(f"w = {w_star:g}, one draw of 300 each: shape and colour seen {a_:.3f}, held-out {b_:.3f}; difference "
      f"{a_ - b_:.3f} ± {((a_ * (1 - a_) + b_ * (1 - b_)) / 300) ** 0.5:.3f}; shape alone {seen_w['shape'] - held_w['shape']:.3f}")
held_test = load_results("text2image_heldout")["heldout"]  # bench: the protocol's test draws, 5 seeds × 400 prompts
print(f"test draws, w = {w_star:g}, held-out pairs: shape and colour {held_test['shape_and_colour']['value']:.3f} ± "
      f"{held_test['shape_and_colour']['se']:.3f}, shape {held_test['shape']['value']:.3f} ± {held_test['shape']['se']:.3f}, "
      f"colour {held_test['colour']['value']:.3f} ± {held_test['colour']['se']:.3f} (n = {held_test['shape']['n']}); "
      f"seen pairs: {shipped.describe('shape_and_colour')}")
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
# Held-out is lower at every w above 0: at w = 2, 0.840 against 0.950 (more than four standard
# errors of the difference), nearly all in the shape (0.853 against 0.960; colour 0.987). Part of that gap
# is not the denoiser's: on real held-out scenes the judge and the autoencoder each lose a few
# percent more than on seen ones (printed above).
#
# In the pictures the triangle's shape miss brings a size miss (`judge_size` compares the area
# with the *judged* shape's), and the blue circle sits so low on the right that the judges read
# another place.
#
# It composes, imperfectly: on the test draws a new pair's colour comes out 0.969 ± 0.004 of the
# time, its shape 0.836 ± 0.008, shape and colour together 0.804 ± 0.009 (seen: 0.952).
#
# ## 9. Closing the loop: CLIP ranks the samples
#
# DALL·E showed first the sample its CLIP scored best. The course's CLIP ranks eight samples of
# each of 16 held-out prompts at w = 1 and at the chosen w. Predict: how often is CLIP's first
# choice right on every attribute, against a sample picked at random?

# %%
from mmcourse.protocol import paired_difference
from mmcourse.text2image.evaluate import clip_ranking

rank_prompts, _ = prompt_set(16, seed=21, split="heldout")
rankings = {w: clip_ranking(model, judges, rank_prompts, w, n=8, seed=40) for w in (1.0, float(w_star))}
rows = [[f"{w:g}", f"{int(r['right'][:, 0].sum())} of {len(rank_prompts)}", f"{r['right'].float().mean():.2f}",
         f"{int(r['right'].any(dim=1).sum())} of {len(rank_prompts)}"] for w, r in rankings.items()]
display(Markdown(markdown_table(["w", "CLIP's first choice right", "a random sample right (share)",
                                 "some sample right"], rows)))
for w, r_ in rankings.items():  # per prompt: CLIP's first choice (0 or 1) minus a random pick's chance
    lift = paired_difference(r_["right"][:, 0].float(), r_["right"].float().mean(1))
    print(f"w = {w:g}: CLIP's first choice minus a random pick, per prompt: {lift.value:+.2f} ± {lift.se:.2f} "
          f"(n = {lift.n} prompts)")
# the failure shown: the first prompt whose first choice is wrong, at the chosen w if there is one, else at w = 1
fails = {w: [i for i in range(len(rank_prompts)) if not r["right"][i, 0]] for w, r in rankings.items()}
w_fail = float(w_star) if fails[float(w_star)] else 1.0
ranked = rankings[w_fail]
right = ranked["right"]
worst = fails[w_fail][0]
attrs = ("shape", "colour", "size", "position")
judged = judges.labels(ranked["samples"][worst])[:, 0].tolist()  # the shape judge's reading of each sample
fig, axes = plt.subplots(1, 8, figsize=(9.6, 2.4))
for c, ax in enumerate(axes):
    ax.imshow(ranked["samples"][worst, c].permute(1, 2, 0).clamp(0, 1).numpy())
    miss = ",".join(a for a, bad in zip(attrs, ranked["wrong"][worst, c].tolist()) if bad)
    ax.set_title(f"{ranked['scores'][worst, c]:.3f} {'✓' if right[worst, c] else '✗'}\n{SHAPES[judged[c]]}"
                 + (f"\nmiss: {miss}" if miss else ""), fontsize=9)
    ax.axis("off")
fig.suptitle(f"{rank_prompts[worst]!r}, w = {w_fail:g}, in CLIP's order: its score; ✓ when the judges find every "
             "asked attribute; the judged shape; what they miss", fontsize=9)
plt.tight_layout()
plt.show()
missed = [a for a, bad in zip(attrs, ranked["wrong"][worst, 0].tolist()) if bad]
print(f"CLIP's first choice for {rank_prompts[worst]!r} (w = {w_fail:g}) misses: {', '.join(missed)}; "
      f"the best right sample is number {int(right[worst].float().argmax()) + 1} in CLIP's order")
clip_row = entry("clip_shapes_broad")
print(f"the course's CLIP (notebook 04, test draws): shape zero-shot {clip_row.describe('zero_shot_seen')} on seen "
      f"colour–shape pairs, {clip_row.describe('zero_shot_heldout')} on held-out ones; the exact caption, "
      f"size and place included, retrieved first {clip_row.describe('i2t_strict_r1')}")

# %% [markdown]
# Ranking helps a little, on a small sample (16 prompts): CLIP's first choice is right on 13 and
# 15 of 16, against a random pick's 0.60 and 0.84, a per-prompt gain of +0.21 ± 0.08 at w = 1 and
# +0.09 ± 0.04 at the chosen w, two to three standard errors: likely, not certain. At the chosen w
# CLIP's first choice fails the judges on one prompt, shown above: the judge reads it as a
# diamond; to the eye these small purple objects sit between a cross and a diamond, and the judge
# misreads real held-out scenes too (§8), so either may be wrong. For CLIP the purple cross is a
# held-out pair as well (CLIP's zero-shot shape accuracy: held-out pairs 0.906, seen 0.978).
#
# ## What we measured
#
# Latents, because the shape judge cannot read 16×16 pictures reliably. The autoencoder keeps the
# shape (target met). Guidance at the chosen w lifts shape and colour well above w = 1, more than
# two standard errors above 0.90 (target **met**), at a cost in variety; held-out pairs score
# lower. The shape is what is left: it goes wrong first, under too much guidance, on unseen
# pairs, and in the decoder's outline. The numbers:

# %%
print("autoencoder, shape label kept:", shipped.describe("ae_shape_kept"))
print(f"w = {w_star:g} (chosen on validation draws), shape and colour:", shipped.describe("shape_and_colour"))
print(f"w = 1, the conditional model without guidance: {w1.value:.3f} ± {w1.se:.3f} (n = {w1.n:,}); "
      f"guidance adds {gain['value']:+.3f} ± {gain['se']:.3f} (paired)")
print(f"w = 0, the unconditional model (one draw of 300): {sweep['seen']['0.0']['shape_and_colour']:.3f}")
print(f"space: latent {h_}×{w_}×{c_} (shape judge on upsampled 16×16 scenes: "
      f"{space['shape_judge_agreement']['16px upsampled (bicubic)']:.3f}, on 32×32: {space['shape_judge_agreement']['32px']:.3f})")
print(f"held-out pairs, test draws at w = {w_star:g}: shape and colour {held_test['shape_and_colour']['value']:.3f} ± "
      f"{held_test['shape_and_colour']['se']:.3f} (n = {held_test['shape_and_colour']['n']})")
print(f"training: {curve['train_cpu_seconds'] / 60:.1f} CPU-minutes, encoding the dataset included")
times = []
for _ in range(6):  # the first call warms up; five are timed, in CPU time (this process's own)
    t0 = time.process_time()
    generate(model, "a large purple diamond at the bottom right", float(w_star), steps=50)
    times.append(time.process_time() - t0)
report("DDIM-50, one image, CPU seconds (fastest of 5, measured now)", min(times[1:]), "≤ 0.2")

# %% [markdown]
# ## Appendix A. How the autoencoder was chosen
#
# **Cost.** The same denoiser on 16×16 pixels and on 8×8 latents (first table): a training step's
# cost follows the grid's positions; one image's sampling step is mostly fixed overhead.
#
# **Numbers per patch.** The shape judge needs sharp edges. PCA of the 4×4 patches (`PatchPCA`)
# is the reference a linear code reaches. Predict: how many numbers per patch (of 48) does the
# judge need?

# %%
from mmcourse.diffusion.autoencoder import PatchPCA

display(Markdown(markdown_table(
    ["space", "positions", "numbers per image", "training step, batch 64 (ms)", "one guided sampling step (ms)"],
    [[k, int(k.split()[1].split("x")[0]) ** 2, v["numbers_per_image"], v["train_step_ms_batch64"],
      v["guided_step_ms_one_image"]] for k, v in space["denoiser_cost"].items()])))
print("(both spaces timed the same way on the same machine: compare the ratio, not the milliseconds)")
pca_kept = {}
for k in (4, 8, 16):
    pca = PatchPCA(k).fit(train_batch.images)  # §7's 2,000 training scenes
    pca_kept[k] = kept(pca.decode(pca.encode(real.images)))
print("PCA round trip, §2's 200 scenes, shape kept:", ", ".join(f"C = {k}: {v:.3f}" for k, v in pca_kept.items()))
ae_bench = load_results("text2image_autoencoders")
rows = [[k, f"{v:.3f}"] for k, v in ae_bench["pca_kept"].items()]
display(Markdown(markdown_table(["C (PCA, stored, 1,000 scenes)", "shape kept"], rows)))
rows = [[k, f"{v['kept']:.3f}", f"{v['mse']:.5f}"] for k, v in ae_bench["learned"]["runs"].items() if "GroupNorm" not in k]
display(Markdown(markdown_table([f"learned autoencoder ({ae_bench['learned']['steps']:,} steps, width "
                                 f"{ae_bench['learned']['width']}, stored, the same 1,000 scenes)", "shape kept", "MSE"], rows)))

# %% [markdown]
# 4 are not enough even for PCA; 16 are just enough (the live 200 scenes wobble around the stored
# 1,000). At 8 and 16 channels the 2,000-step learned autoencoders fall *below* PCA. More channels
# are not free: the denoiser must get every one right, and in a development probe (one run, the
# README's recipe history) 16 channels gave the better autoencoder and the worse pictures. So the
# shipped autoencoder keeps C = 8 and instead trains longer, with a loss that adds `edge_weight`
# in a thin ring either side of the outline, where a cross and a diamond differ. (Rombach et al.
# also use a perceptual loss and a patch discriminator; no pretrained perceptual network suits
# 32×32 shapes.)

# %%
from mmcourse.text2image.train import AE_OBJECT_THRESHOLD, autoencoder_loss, object_edges

recipe = curve["recipe"]
print(f"shipped autoencoder: {recipe['ae_steps']:,} steps, width {model.cfg.ae['width']}, edge_weight {recipe['ae_edge_weight']:g}")
on_obj = object_masks(real.images, AE_OBJECT_THRESHOLD)[0][:, None].float()  # (B, 1, 32, 32), as the loss sees it
ring = object_edges(on_obj)
show_images(torch.cat([real.images[:6], on_obj[:6].expand(-1, 3, -1, -1), ring[:6].expand(-1, 3, -1, -1)]), ncols=6,
            scale=0.9, suptitle="scene; the object's pixels (weight 1 + 20); the ring either side of its outline (+ edge_weight)")
plt.show()
print(f"share of the picture: object {on_obj.mean():.3f}, ring {ring.mean():.3f}")
show_source(autoencoder_loss)

# %% [markdown]
# ## Appendix B. GLIP and SAM locate the object; they do not judge its shape (optional)
#
# GLIP (notebook 07) grounds the asked colour and shape in §9's eight samples (upsampled 2×: both
# models were trained on 64×64 scenes), and SAM (notebook 06) cuts the object out from GLIP's box
# (`ground_and_segment`). Predict: are SAM's masks as close to the judges' object pixels on
# generated pictures as on real scenes?

# %%
from mmcourse.text2image.judges import object_masks
from mmcourse.data.shapes import COLOUR_NAMES, SHAPES
from mmcourse.glip.tasks import load_glip
from mmcourse.sam.tasks import load_sam
from mmcourse.text2image.grounding import ground_and_segment

glip, sam = load_glip(), load_sam()  # loaded once, used for every picture below
asked = parse_prompt(rank_prompts[worst])
phrase = f"{asked['colour']} {asked['shape']}"
samples, ok = ranked["samples"][worst], right[worst].tolist()
found = ground_and_segment(samples, phrase, glip, sam)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.9))
for i, ax in enumerate(axes):
    ax.imshow(samples[i].permute(1, 2, 0).clamp(0, 1).numpy())
    if found["masks"][i].any():  # SAM's mask, outlined in green
        ax.contour(found["masks"][i].float().numpy(), [0.5], colors="lime", linewidths=1.2)
    if not torch.isnan(found["boxes"][i]).any():
        x0, y0, x1, y1 = found["boxes"][i].tolist()
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", lw=1.2))
    ax.set_title(f"{'✓' if ok[i] else '✗'} IoU {found['iou'][i]:.2f}\nGLIP {found['scores'][i]:.2f}", fontsize=9)
    ax.axis("off")
fig.suptitle(f"GLIP's box for {phrase!r} (red) and its score, SAM's mask from that box (green outline); in CLIP's order",
             fontsize=9)
plt.show()
iou_ = found["iou"]
okt = torch.tensor(ok)
def mean_on(sel: torch.Tensor) -> str:
    return f"{iou_[sel].mean():.2f} on {int(sel.sum())}" if sel.any() else "none"


print(f"SAM mask against the judges' object pixels, mean IoU: {iou_.mean():.2f} "
      f"(judged right: {mean_on(okt)}; judged wrong: {mean_on(~okt)})")
sc_ = found["scores"]
print("GLIP's score for the asked phrase: judged right", " ".join(f"{v:.2f}" for v in sc_[okt].tolist()),
      "| judged wrong", " ".join(f"{v:.2f}" for v in sc_[~okt].tolist()))
hit = ~torch.isnan(found["boxes"][:, 0])
truth_px, _ = object_masks(samples.clamp(0, 1))
print(f"GLIP found a box in {int(hit.sum())} of 8 (scores {found['scores'][hit].min():.2f}–{found['scores'][hit].max():.2f}); "
      f"pixels per object: SAM's mask {found['masks'].sum((1, 2)).float().mean():.0f}, "
      f"the judges' {truth_px.sum((1, 2)).float().mean():.0f}")
real12 = world().sample(12, seed=1, split="test")  # the same two steps on real 32x32 scenes, each asked for its own object
real_iou = torch.cat([ground_and_segment(real12.images[i:i + 1], f"{COLOUR_NAMES[int(real12.colour[i, 0])]} {SHAPES[int(real12.shape[i, 0])]}",
                                         glip, sam)["iou"]
                      for i in range(12)])
print(f"on 12 real scenes, SAM's mask against the judges' object pixels, mean IoU: {real_iou.mean():.2f}")

# %% [markdown]
# GLIP finds a box in all eight pictures, also where the judges read another shape, and its
# scores for ✓ and ✗ overlap (printed above): it finds the coloured blob whatever its shape. Given
# the box, SAM cuts the object out a little less well than in real scenes (the mean IoUs printed
# above), mostly because of the last, faint sample (IoU 0.33); eight pictures are too few to say
# more. It needs no colour threshold.

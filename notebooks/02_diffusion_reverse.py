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
# # 02 · The reverse process: training a denoiser and sampling with it
#
# Notebook 01 turned data into noise with a fixed Markov chain. Here a network learns to walk the
# chain backwards (反向过程, 去噪), and we use it to generate new data. The plan:
#
# 1. the reverse step and the noise-prediction loss, in formulas, and an exercise: write the loss;
# 2. the study notes' PyTorch example, reproduced faithfully on its 1-D data; the sampler it lacks;
#    then its weaknesses, measured and fixed one at a time;
# 3. a 2-D data set (two moons) trained live, the two fixed variances β and β̃ compared on it, and
#    a widget to watch noise flow into data;
# 4. 8×8 digits from a shipped U-Net: DDPM with 1000 and 200 steps against DDIM with 50, 20 and
#    10, speed and quality in one table;
# 5. an exercise: one DDPM step, which then drives a real sampler.
#
# Indices as in notebook 01: the text counts t = 1 … T, x₀ is the clean data and x_T the end of
# the forward chain; the code's arrays are 0-based, **code index = t − 1**. Sampling starts from
# x_T and takes the reverse steps t = T, …, 1 (code indices T − 1, …, 0).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from mmcourse.diffusion import NoiseSchedule, SimpleDenoiseNet, ddpm_step, eps_loss, sample
from mmcourse.evaluate import sliced_wasserstein, wasserstein_1d
from mmcourse.viz import plot_history, setup_matplotlib, show_source

setup_matplotlib()
# %matplotlib inline
# The models here are small: one thread is as fast as two, and on a shared 2-core machine two
# threads that wait for each other can be many times slower.
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Running the chain backwards
#
# If we could sample q(x_{t−1} | x_t) we could start from noise and walk back to data. That
# distribution depends on the whole data set, so it is unknown; but *given x₀* it is a Gaussian
# with a closed form (Bayes' rule on two Gaussians; `NoiseSchedule.posterior_mean_variance`):
#
# $$q(x_{t-1}\mid x_t, x_0) = \mathcal N\Big(\tfrac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0 + \tfrac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\ \ \tilde\beta_t\mathbf I\Big),
# \qquad \tilde\beta_t = \tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t .$$
#
# The model p_θ(x_{t−1} | x_t) = N(μ_θ(x_t, t), Σ_θ) copies this form, with x₀ replaced by a
# guess. DDPM (Ho et al., 2020) does not predict x₀ directly: the network ε_θ(x_t, t) predicts the
# **noise** that was mixed in, x₀ follows from the closed form of notebook 01, and the mean becomes
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\Big),
# \qquad \Sigma_\theta = \sigma_t^2 \mathbf I,\ \ \sigma_t^2 = \tilde\beta_t \text{ (or } \beta_t).$$
#
# **The variance is fixed, not learned.** The study notes write Σ_θ(x_t, t) as if the network
# produced it. DDPM, and this whole course, fix it instead: σ_t² = β̃_t (`variance_type=
# "fixed_small"`, our default) or σ_t² = β_t (`"fixed_large"`); the network only predicts ε.
# These are the two extremes that are exactly right for a single data point and for data spread
# like N(0, I); section 3 compares them on the moons. (Learning Σ_θ between the two is possible,
# as in Nichol & Dhariwal 2021, but needs part of the variational bound in the loss.)
#
# Training is then regression: noise a clean sample to a random level t with a known ε, and ask
# the network for ε back,
#
# $$\mathcal L = \mathbb E_{x_0,\ \varepsilon,\ t}\big\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t)\big\|^2 .$$
#
# **Why this loss, and the variational bound.** The bound on −log p_θ(x₀) is a sum over t of KL
# divergences between q(x_{t−1} | x_t, x₀) and p_θ(x_{t−1} | x_t); with the variance fixed, each
# is the squared distance of the two means over 2σ_t², which in terms of the noise is
# β_t² / (2σ_t² α_t (1 − ᾱ_t)) · ‖ε − ε_θ‖². The loss above is that same sum with the weight
# in front of each t dropped: it trains the same minimiser ε_θ per level, only weighting the
# levels differently (Ho et al. found the unweighted version gives better samples).
#
# Generating (采样): draw x_T ~ N(0, I), then take the reverse steps t = T, …, 1 (code indices
# T − 1, …, 0); the last step, t = 1, returns the mean without noise. Both halves are in
# `mmcourse.diffusion`: `eps_loss` and `ddpm_step`.
#
# ```mermaid
# flowchart RL
#     xT["x<sub>T</sub> ~ N(0, I)"] -- "p<sub>θ</sub>: step T" --> xT1["x<sub>T−1</sub>"]
#     xT1 -. "…" .-> xt["x<sub>t</sub>"]
#     xt -- "p<sub>θ</sub>(x<sub>t−1</sub> ∣ x<sub>t</sub>)" --> xt1["x<sub>t−1</sub>"]
#     xt1 -. "…" .-> x1["x<sub>1</sub>"]
#     x1 -- "step 1: mean only" --> x0["x<sub>0</sub><br/>a sample"]
# ```
#
# Training needs no chain at all, only the one-jump closed form of notebook 01:
#
# ```mermaid
# flowchart LR
#     D["x<sub>0</sub> from the data"] --> J["x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1 − ᾱ<sub>t</sub>) ε"]
#     E["ε ~ N(0, I)"] --> J
#     T["t ~ U{1, …, T}"] --> J
#     J --> N["network ε<sub>θ</sub>(x<sub>t</sub>, t)"]
#     T --> N
#     N --> L["loss ‖ε − ε<sub>θ</sub>‖²"]
#     E --> L
# ```
#
# ### Exercise 1: the training loss
#
# Write `diffusion_loss(model, x0, t, noise, alphas_cumprod)`: noise x0 to the levels t with the
# given noise (notebook 01's closed form), ask `model(x_t, t)` for the noise, and return the mean
# squared error against the true noise as a 0-d tensor. x0 may be (B, D) or images (B, C, H, W);
# t is a LongTensor (B,) of code indices, so `alphas_cumprod[t]` is the ᾱ each example needs.

# %%
import torch

from mmcourse.checks import check_diffusion_loss


def diffusion_loss(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The DDPM loss mean((noise - model(x_t, t))^2) with x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise.

    Args:
        model: called as model(x_t, t), returns the predicted noise, shape of x0.
        x0: (B, *) clean data.  t: LongTensor (B,) of code indices in [0, T).  noise: (B, *) the noise to add.
        alphas_cumprod: (T,) alpha_bar.
    Returns:
        0-d tensor.
    """
    ### BEGIN SOLUTION
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return ((noise - model(x_t, t)) ** 2).mean()
    ### END SOLUTION


check_diffusion_loss(diffusion_loss)

# %% [markdown]
# Compare with the course's version, `eps_loss`: it draws t and ε itself (one per example) and
# calls `schedule.add_noise` for the jump.

# %%
show_source(eps_loss)

# %% [markdown]
# ## 2. The study notes' example, reproduced
#
# The notes train an MLP, `SimpleDenoiseNet`, that appends the time step to its input; β is
# linear from 10⁻⁴ to 0.02 over **T = 100** steps; the data are 1,000 numbers from
# `np.random.rand`, uniform on [0, 1); Adam with learning rate 10⁻³, batches of 32 shuffled by a
# `DataLoader`, five epochs; and after each epoch it prints the loss of the last batch. The step
# reaches the network as a raw float column holding the code index, 0.0 to 99.0. Here is the
# network and the loop,
# written as a seeded function with a progress bar (it records every batch's loss; otherwise it
# is the notes' loop line for line):

# %%
from mmcourse.diffusion.syllabus import ScaledTime, syllabus_data, train_syllabus_style

show_source(SimpleDenoiseNet)
show_source(train_syllabus_style)

# %% [markdown]
# **Predict, then run:** the notes never sample from their model. Will its samples look like the
# data, uniform on [0, 1)?

# %%
data = syllabus_data(1000, seed=0)  # (1000, 1), uniform on [0, 1)
torch.manual_seed(0)
notes_model = SimpleDenoiseNet(in_features=1, hidden_dim=128, out_features=1)
notes_hist = train_syllabus_style(notes_model, data, timesteps=100, epochs=5, batch_size=32, lr=1e-3, seed=0)

# %% [markdown]
# ### The sampler the notes leave out
#
# The notes stop after training. Generating needs the loop of section 1: start from N(0, 1) and
# take the DDPM steps t = 100, …, 1 (code indices 99 down to 0). Written out, with the library's
# `ddpm_step` (you write your own step in the exercise of section 5):

# %%
@torch.no_grad()
def generate(model, schedule: NoiseSchedule, n: int, seed: int = 0) -> torch.Tensor:
    """n samples (n, 1) by ancestral DDPM sampling over every step of the schedule."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g)  # x_T ~ N(0, I)
    for t in reversed(range(schedule.num_train_timesteps)):  # code indices T-1 ... 0: steps T ... 1
        eps = model(x, torch.full((n,), t))  # the network's guess of the noise in x
        x = ddpm_step(schedule, eps, t, x, generator=g).prev_sample
    return x


notes_schedule = NoiseSchedule.make(100, "linear", 1e-4, 0.02)
reference = syllabus_data(2000, seed=1)  # fresh data to compare with
baseline_w1 = wasserstein_1d(syllabus_data(1000, seed=2), reference)  # data vs data: sampling noise only

samples = generate(notes_model, notes_schedule, 1000)
w1_faithful = wasserstein_1d(samples, reference)
print(f"W1(samples, data) = {w1_faithful:.3f}   W1(data, data) = {baseline_w1:.3f}")


def show_hist(ax, samples: torch.Tensor, title: str) -> None:
    bins = np.linspace(-0.75, 1.75, 51)
    ax.hist(reference.numpy().ravel(), bins=bins, density=True, alpha=0.4, label="data U[0, 1)")
    ax.hist(samples.numpy().ravel(), bins=bins, density=True, alpha=0.6, label="samples")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


fig, ax = plt.subplots(figsize=(5, 2.8))
show_hist(ax, samples, f"the notes' model: W1 = {w1_faithful:.3f}")
plt.show()

# %% [markdown]
# No. The **1-D Wasserstein distance** W1 is the average distance a sample has to move to turn
# one distribution into the other (for 1-D data, the area between the two quantile functions). An
# independent set of 1,000 real samples, as many as we draw from the model, differs from the
# 2,000 reference points by the baseline above; the notes' model is many times farther off, and
# the histogram shows samples spilling well outside [0, 1). Three weaknesses
# are behind this, and we fix them one at a time.
#
# ### Weakness 1: the printed loss is one small, noisy batch
#
# The notes print `loss.item()` after the epoch loop, so each line is the loss of the **last**
# batch. 1,000 = 31 × 32 + 8: that batch holds 8 examples, each with a random t and ε. The plot
# shows every batch's loss, the printed points and the mean over each epoch.

# %%
# NBVAL_CHECK_OUTPUT
print("batches per epoch:", notes_hist.batches_per_epoch, " examples in the printed batch:", notes_hist.batch_sizes[-1])

# %%
fig, ax = plt.subplots(figsize=(6, 3))
n_b = notes_hist.batches_per_epoch
ax.plot(notes_hist.batch_losses, lw=0.7, alpha=0.6, label="every batch")
ax.plot([(e + 1) * n_b - 1 for e in range(5)], notes_hist.printed(), "o", label="printed (last batch)")
ax.plot([(e + 0.5) * n_b for e in range(5)], notes_hist.epoch_means(), "s-", label="epoch mean")
ax.set_xlabel("batch")
ax.set_ylabel("loss")
ax.legend(fontsize=8)
plt.show()
print("printed   :", " ".join(f"{v:.3f}" for v in notes_hist.printed()))
print("epoch mean:", " ".join(f"{v:.3f}" for v in notes_hist.epoch_means()))

# %% [markdown]
# In this run the printed numbers *rise* over epochs 1 to 4 while the epoch mean falls every
# epoch: read literally, the notes' printout says training is going wrong when it is not. The
# per-batch loss jumps around because it averages over only a few random t (a batch with
# many small t has a hard job, large t an easy one: at high noise x_t is almost ε itself). The
# fix for *reading* the training: report the epoch mean, or better, the loss on a fixed held-out
# set of (x₀, t, ε) triples, which only changes when the model changes. Below, that held-out
# loss for the notes' model; it is our yardstick from now on, next to W1.

# %%
def held_out_loss(model, schedule: NoiseSchedule, n: int = 20_000, seed: int = 123) -> float:
    """eps_loss on a fixed set of fresh data, steps and noise: comparable between runs."""
    g = torch.Generator().manual_seed(seed)
    x0 = syllabus_data(n, seed=seed)
    with torch.no_grad():
        return eps_loss(model, schedule, x0, generator=g, t_column=True).item()


print(f"held-out loss of the notes' model: {held_out_loss(notes_model, notes_schedule):.3f}")
print(f"spread of the printed numbers: {min(notes_hist.printed()):.3f} to {max(notes_hist.printed()):.3f}")

# %% [markdown]
# ### Weakness 2: the raw step number drowns the data
#
# The network's first layer sees [x_t, t] with x_t of order 1 and the code index t up to 99. Its weights start
# small and random, so at first the output is dominated by t, and every change of t moves the
# pre-activations a hundred times more than a change of x_t does. Adam eventually compensates, but
# five epochs (160 steps) are not enough. The notes' own comment says t "can be normalised": feed
# t / T instead. `ScaledTime` wraps the same network to do that; everything else stays identical.
#
# **Predict, then run:** the fix only rescales one input column. Will W1 improve a little or a
# lot? And what happens with the raw step when T = 1000, so that it reaches 999?

# %%
def notes_run(T: int, scale_t: bool, seed: int = 0, n: int = 1000):
    """Train the notes' model (same data, loop and seed) with T steps; return model, schedule, n samples, W1."""
    torch.manual_seed(seed)
    net = SimpleDenoiseNet(in_features=1, hidden_dim=128, out_features=1)
    model = ScaledTime(net, T) if scale_t else net
    schedule = NoiseSchedule.make(T, "linear", 1e-4, 0.02)
    train_syllabus_style(model, data, timesteps=T, epochs=5, seed=seed, verbose=False, progress=False)
    x = generate(model, schedule, n)
    return model, schedule, x, wasserstein_1d(x, reference)


scaled_model, _, scaled_samples, w1_scaled = notes_run(100, scale_t=True)
_, _, _, w1_raw_1000 = notes_run(1000, scale_t=False, n=200)  # 200 samples are plenty to see it fail
print(f"T=100,  raw t   : W1 = {w1_faithful:.3f}   held-out loss {held_out_loss(notes_model, notes_schedule):.3f}")
print(f"T=100,  t / T   : W1 = {w1_scaled:.3f}   held-out loss {held_out_loss(scaled_model, notes_schedule):.3f}")
print(f"T=1000, raw t   : W1 = {w1_raw_1000:.3f}   (code index up to 999: far worse)")

# %%
print(f"T=100:  W1 with t / T {w1_scaled:.3f} against raw t {w1_faithful:.3f} (target: t / T lower)")
print(f"T=1000: W1 with raw t {w1_raw_1000:.1f} (target > 1: the sampler fails)")
assert w1_scaled < w1_faithful and w1_raw_1000 > 1

# %% [markdown]
# In repeated runs (several seeds, stored with the course) the raw step gives W1 between about
# 0.15 and 0.6 and the scaled step about 0.05, and with T = 1000 the raw step makes the sampler
# diverge. Scaling the input is the fix that matters most, and it must come before the next one.
#
# ### Weakness 3: T = 100 does not reach noise
#
# Notebook 01 showed that with T = 100 the notes' β range leaves ᾱ_T = 0.36: for this data x_T
# has mean 0.30 and variance 0.67, but the sampler starts from N(0, 1).
# We measure that mismatch directly, as W1 between N(0, 1) and the true x_T, and then retrain
# (scaled t) with T = 1000.
#
# **Predict, then run:** T = 1000 makes the sampler start from the right distribution. How much
# will that improve the samples' W1?

# %%
def start_gap(T: int, n: int = 20_000) -> float:
    """W1 between the sampler's start N(0, 1) and the real distribution of x_T."""
    s = NoiseSchedule.make(T, "linear", 1e-4, 0.02)
    g = torch.Generator().manual_seed(7)
    x_T = s.add_noise(syllabus_data(n, seed=7), torch.randn(n, 1, generator=g), T - 1)  # code index T - 1
    return wasserstein_1d(x_T, torch.randn(n, 1, generator=g))


model_1000, schedule_1000, samples_1000, w1_1000 = notes_run(1000, scale_t=True)
gap_100, gap_1000 = start_gap(100), start_gap(1000)
print(f"T=100 : start gap W1(x_T, N(0,1)) = {gap_100:.3f}   sample W1 = {w1_scaled:.3f}")
print(f"T=1000: start gap W1(x_T, N(0,1)) = {gap_1000:.3f}   sample W1 = {w1_1000:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(10, 2.6))
show_hist(axes[0], samples, f"notes: raw t, T=100 (W1 {w1_faithful:.2f})")
show_hist(axes[1], scaled_samples, f"t/T, T=100 (W1 {w1_scaled:.2f})")  # the samples notes_run measured
show_hist(axes[2], samples_1000, f"t/T, T=1000 (W1 {w1_1000:.2f})")
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"start gap W1(x_T, N(0, 1)), T=1000: {gap_1000:.3f} (target < 0.02)")
print(f"start gap W1(x_T, N(0, 1)), T=100:  {gap_100:.3f} (target > 0.1: the gap stays open)")

# %% [markdown]
# T = 1000 makes the chain correct: the sampler now starts from the distribution the model was
# trained to denoise. The samples, though, are not measurably better in this 1-D toy: across seeds
# both T end at W1 ≈ 0.04–0.07. The learned reverse steps at high noise pull every start point
# towards the data's mean, so a start off by 0.3 is forgotten after a few dozen steps; what limits
# W1 now is the small network, 160 training steps, and the sharp edges of the uniform
# distribution, which diffusion rounds off. The T fix matters for data whose mean is far from
# zero, and for images, where ᾱ_T = 0.36 would leave 60 % of the picture's amplitude in the
# "noise".
#
# The three fixes, each measured over three seeds, are in the stored table at the end of the
# notebook: reading the epoch mean instead of the last batch of 8; t / T instead of the raw step
# (median W1 0.25 → 0.049); T = 1000 (the start gap closes, the samples do not change). Even
# the fixed model stays far from the data-vs-data floor (0.006); longer training and a network
# that sees t through an embedding (next section) do better.
#
# ## 3. Two moons, trained live
#
# A 2-D data set shows more than a histogram: you can watch the cloud take shape. The recipe:
# `TimeMLP`, a residual MLP that sees t through a sinusoidal embedding (正弦时间嵌入, like the
# positions of a Transformer) added in every layer; a cosine schedule with T = 100; 700 steps
# of `fit` with batches of 512 at learning rate 8·10⁻³; an exponential moving average (EMA) of the
# weights, which is what we sample from. (`train_2d`'s default is 1,500 steps at 3·10⁻³; the
# table at the end of the notebook compares the recipes over three seeds.)
#
# **Predict, then run:** the loss curve starts near 1 (predicting ε = 0 scores the variance of
# ε). Where will it level off: near 0, or well above?

# %%
from mmcourse.diffusion.data2d import two_moons
from mmcourse.diffusion.train import train_2d

show_source(train_2d)

# %%
t0 = time.perf_counter()
moons_model, moons_schedule, moons_hist, moons_data = train_2d("moons", steps=700, lr=8e-3, seed=0)
train_seconds = time.perf_counter() - t0
plot_history(moons_hist, title="two moons: eps-prediction loss", window=50)
plt.show()

# %%
from mmcourse.diffusion import eps_loss_floor
from mmcourse.protocol import mean

floor = eps_loss_floor(moons_data, moons_schedule, n=2000, generator=torch.Generator().manual_seed(0))
print(f"training loss, last 100 steps:           {mean(moons_hist.loss[-100:]).describe()}")
print(f"floor E||eps - E[eps | x_t, t]||^2 / 2:  {floor.describe()}")

# %% [markdown]
# Well above 0, and it has to be. At high noise many data points could have produced the same
# x_t, so no network can tell which noise was added; the best it can do is predict the posterior
# mean E[ε | x_t, t], and what that still misses, E‖ε − E[ε | x_t, t]‖², is a floor no training
# removes (printed above per coordinate, as the loss is; `eps_loss_floor` computes it exactly for
# the 20,000 training points, which makes x_t a mixture of Gaussians). The curve levels off at
# that floor, within its standard error: a flat loss here means "near the best possible", not
# "stuck", and the quality of the samples has to be judged by other means (the distances below).

# %%
print(f"live training took {train_seconds:.1f} s (budget 20 s on a 2-core CPU)")

# %% [markdown]
# Now 2,000 samples, keeping every intermediate step for the widget, and the **sliced
# Wasserstein distance** (SWD): project both clouds onto 256 random directions and average the
# 1-D W1 of the projections. The baseline is the SWD between two independent sets of 2,000 real
# points; the target is at most twice that.

# %%
samples_2d, trajectory = sample(moons_model, moons_schedule, (2000, 2), generator=torch.Generator().manual_seed(5),
                                return_trajectory=True)
real_a, real_b = two_moons(2000, seed=1), two_moons(2000, seed=2)
swd = sliced_wasserstein(samples_2d, real_a)
swd_base = sliced_wasserstein(real_b, real_a)
print(f"SWD(samples, data) = {swd:.4f}   SWD(data, data) = {swd_base:.4f}   ratio {swd / swd_base:.2f}")

# %%
print(f"SWD(samples, data) / SWD(data, data): {swd / swd_base:.2f} (target ≤ 2)")
assert swd <= 2 * swd_base

# %%
# NBVAL_CHECK_OUTPUT
print("trajectory:", tuple(trajectory.shape), "= (steps + 1, samples, 2): x_100, x_99, ..., x_0")

# %%
frames = [0, 50, 80, 90, 95, 100]  # frame k holds x_(100 - k)
fig, axes = plt.subplots(1, len(frames), figsize=(12, 2.2))
for ax, k in zip(axes, frames):
    ax.scatter(*real_a.T, s=0.5, c="lightgray")
    ax.scatter(*trajectory[k].T, s=0.5)
    ax.set_title(f"x_{100 - k}" + (" ~ N(0, I)" if k == 0 else ": the samples" if k == 100 else ""), fontsize=8)
    ax.set_xlim(-3, 3)
    ax.set_ylim(-2.2, 2.2)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# ### The two fixed variances, β and β̃, on the moons
#
# Section 1 fixed σ_t² to β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) ≤ β_t. The two differ most at the
# last, low-noise steps, where β̃_t → 0 while β_t stays positive. The samples above used β̃; here
# the same model also samples with β, from the same start x_T. Two measurements: the SWD to the
# data, and the mean distance from each sample to the nearest real point.
#
# **Predict, then run:** which variance gives samples closer to the data?

# %%
from mmcourse.diffusion.data2d import distance_to_data

samples_large = sample(moons_model, moons_schedule, (2000, 2), generator=torch.Generator().manual_seed(5),
                       variance_type="fixed_large")  # the same start x_T as samples_2d
moons_ref = two_moons(5000, seed=3)  # real points to measure the distance to
clouds = {"beta tilde (fixed_small)": samples_2d, "beta (fixed_large)": samples_large, "real points": real_b}
swd_of = {"beta tilde (fixed_small)": swd, "beta (fixed_large)": sliced_wasserstein(samples_large, real_a),
          "real points": swd_base}  # the first and the last were measured above
measured = {name: (swd_of[name] / swd_base, distance_to_data(x, moons_ref)) for name, x in clouds.items()}
betas, beta_tilde = moons_schedule.betas, moons_schedule.posterior_variance
levels = torch.arange(1, len(betas) + 1)  # t = 1 ... T (code index t - 1)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.1))
axes[0].semilogy(levels, betas, label=r"$\beta_t$ (fixed_large)")
axes[0].semilogy(levels[1:], beta_tilde[1:], label=r"$\tilde\beta_t$ (fixed_small)")  # beta tilde_1 = 0
axes[0].set_xlabel("t")
axes[0].set_ylabel("variance of the step's noise")
axes[0].set_title("cosine schedule, T = 100", fontsize=9)
axes[0].legend(fontsize=8)
for ax, name, label in [(axes[1], "beta tilde (fixed_small)", r"$\sigma_t^2 = \tilde\beta_t$"),
                        (axes[2], "beta (fixed_large)", r"$\sigma_t^2 = \beta_t$")]:
    ax.scatter(*real_a.T, s=0.5, c="lightgray")
    ax.scatter(*clouds[name].T, s=0.5)
    ax.set_title(f"{label}: distance to data {measured[name][1]:.4f}", fontsize=9)
    ax.set_xlim(-3, 3)
    ax.set_ylim(-2.2, 2.2)
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()
print(f"{'':26s} {'SWD / baseline':>15s} {'distance to data':>17s}")
for name, (ratio, distance) in measured.items():
    print(f"{name:26s} {ratio:15.2f} {distance:17.4f}")
print(f"beta_1 = {betas[0]:.5f} against beta tilde_1 = 0; beta_10 = {betas[9]:.4f} against beta tilde_10 = {beta_tilde[9]:.4f}")

# %% [markdown]
# The two variances differ only over the last few steps (left), so the samples differ little, but
# measurably. The **distance to the data** (each sample's distance to the nearest real point,
# averaged) is the smaller with β̃: the final steps add less noise that no later step removes, so
# the samples sit closer to the moons, though still farther than real points do. The SWD, which
# also asks whether the mass is spread along the moons like the data's, hardly tells the two apart:
# its gap is no larger than what another seed changes (section 5's sampler, also β̃, starts from a
# different x_T and lands at another ratio). DDPM, too, reported similar image quality with both;
# β̃ is the usual default.
#
# ### Watch the reverse process
#
# The slider steps through the stored trajectory: step 0 shows the Gaussian start x_100, step 100
# the samples x_0. Notice that the cloud barely changes for the first half (high noise: each step only
# shrinks it a little) and that the moons appear in the last 20 steps, where the cosine schedule
# has most of its low-noise steps. Every frame is precomputed, so a move only redraws.

# %%
from mmcourse.diffusion import timesteps
from mmcourse.diffusion.widgets import trajectory_explorer

trajectory_explorer(trajectory, timesteps(moons_schedule, 100), real_a)

# %% [markdown]
# ## 4. Digits: a U-Net, DDPM and DDIM
#
# For 8×8 digits the denoiser is a small **U-Net** (`mmcourse.diffusion.UNet`, 0.5 M parameters):
# convolutions at two resolutions with skip connections, the time embedding added in every
# residual block, one self-attention layer in the middle. Training it takes a few minutes, so it
# ships as a checkpoint (trained with the notes' linear schedule and T = 1000, 3,000 steps of
# batch 128, EMA weights).

# %%
from mmcourse.data.digits import to_unit
from mmcourse.diffusion.train import load_digits_unet
from mmcourse.viz import show_tiles
from mmcourse.evaluate import load_digits_classifier

unet, digits_schedule = load_digits_unet()
print(f"U-Net parameters: {sum(p.numel() for p in unet.parameters()):,}   {digits_schedule}")

grid = sample(unet, digits_schedule, (32, 1, 8, 8), 50, method="ddim", generator=torch.Generator().manual_seed(0))
classifier = load_digits_classifier()
with torch.no_grad():
    probs = classifier(grid.clamp(-1, 1)).softmax(1)
show_tiles(to_unit(grid), labels=[f"{p.argmax().item()} ({p.max().item():.2f})" for p in probs], scale=0.9)
plt.show()

# %%
confidence = probs.max(1).values.mean().item()
print("grid:", tuple(grid.shape), f" mean classifier confidence {confidence:.2f} (target ≥ 0.8)")
assert confidence >= 0.8

# %% [markdown]
# The labels above the digits are what a digit classifier (trained on the real digits, 98.9 %
# test accuracy, also shipped) reads in each sample, and how sure it is.
#
# ### DDIM: fewer, larger steps
#
# DDPM needs all 1000 steps because each one is a small Gaussian move. DDIM (Song et al., 2021)
# reuses the *same* trained network but takes a deterministic step along its noise prediction,
# which stays accurate for large jumps: predict x̂₀ from ε̂, then place the sample at the earlier
# level with the predicted noise, x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) ε̂. DDPM can skip steps too
# (the variance of the whole jump replaces β_t), but its added noise makes the skipping costlier.

# %%
from mmcourse.diffusion import ddim_step

show_source(ddim_step)

# %% [markdown]
# **Predict, then run:** DDIM with 50 steps makes 20 times fewer network calls than DDPM with
# 1000. How much of DDPM's sample quality do you expect it to keep?
#
# **The full comparison** (500 samples per row, measured once and stored with the course; quality is the classifier's
# mean confidence relative to the real test digits, the share of the rarest class, and the
# Fréchet distance between classifier features of samples and real test digits, with the
# real-train-vs-real-test distance as the floor):

# %%
import json
from pathlib import Path

import mmcourse

RESULTS = Path(mmcourse.__file__).resolve().parents[1] / "bench" / "results"  # the stored measurements
results_path = RESULTS / "diffusion_samplers.json"
if results_path.exists():
    stored = json.loads(results_path.read_text())
    print(f"{stored['samples_per_row']} samples per row, measured {stored['measured']} with {stored['threads']} thread(s)")
    print(f"{'sampler':10s} {'steps':>5s} {'seconds':>8s} {'conf/real':>9s} {'min class':>9s} {'Frechet':>8s}")
    for r in stored["rows"]:
        print(f"{r['method']:10s} {r['steps']:5d} {r['seconds']:8.1f} {r['confidence_ratio']:9.3f} "
              f"{r['min_class_share']:9.3f} {r['frechet']:8.1f}")
    print(f"Frechet real train vs real test: {stored['frechet_real_train_vs_test']:.1f}")
else:
    stored = None
    print(f"no stored table: {results_path} is missing")

# %%
# NBVAL_CHECK_OUTPUT
if stored is not None:
    rows, kept = stored["rows"], stored["ddim50_vs_ddpm1000"]
    print(f"lowest confidence / real over the samplers: {min(r['confidence_ratio'] for r in rows):.3f} (target ≥ 0.95)")
    print(f"rarest class share over the samplers:       {min(r['min_class_share'] for r in rows):.3f} (target ≥ 0.05)")
    print(f"DDIM-50 keeps {kept['confidence_kept']:.1%} of DDPM-1000's confidence (target ≥ 95%) "
          f"at {kept['speedup']:.0f}x less time (target ≥ 15x)")
# The shipped U-Net's DDIM-50 samples on the test protocol (500 samples from five seeds no
# choice looked at), as stored in the checkpoint registry:
from mmcourse.weights import entry

unet_entry = entry("diffusion_digits_unet")
print("shipped, test draws: confidence / real", unet_entry.describe("ddim50_confidence_ratio"),
      "| rarest class", unet_entry.describe("ddim50_min_class_share"))

# %% [markdown]
# Nearly all of it: DDIM-50 keeps over 98 % of DDPM-1000's classifier confidence (the checked line
# above) and matches its Fréchet distance, for a twentieth of the network calls. The clearest
# loss comes at 10 steps, where the Fréchet distance doubles.
#
# **A small live rerun** of the same table, 8 samples per row (a few seconds; the scores of 8
# samples are noisy, the times are not). Every step is one call of the same network, so the time
# per call is about the same in every row and the total grows with the steps. DDPM-1000 alone
# makes 1000 calls, more than three times the 280 of the other four rows together, so its live
# row is off by default: its time is in the stored table above, and the time per call below
# tells what it would cost here. Set `LIVE_DDPM_1000 = True` to run it too.

# %%
LIVE_DDPM_1000 = False  # True adds the 1000-step DDPM row (1000 more network calls)
runs = ([("ddpm", 1000)] if LIVE_DDPM_1000 else []) + [("ddpm", 200), ("ddim", 50), ("ddim", 20), ("ddim", 10)]
live = []
for method, steps in runs:
    t0 = time.perf_counter()
    x = sample(unet, digits_schedule, (8, 1, 8, 8), steps, method=method, generator=torch.Generator().manual_seed(1))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        conf = classifier(x.clamp(-1, 1)).softmax(1).max(1).values.mean().item()
    live.append((method, steps, seconds, conf, x))
    print(f"{method:5s} {steps:5d} steps: {seconds:5.2f} s ({1000 * seconds / steps:4.1f} ms per network call)"
          f"   mean confidence {conf:.2f}")
show_tiles(to_unit(torch.cat([row[4] for row in live])), row_labels=[f"{m.upper()}-{n}" for m, n in runs],
           title="8 samples per sampler, every row from the same x_T")
plt.show()

# %% [markdown]
# Every row starts from the same x_T (the same seed). The DDIM rows are deterministic maps from
# that start, so with 50, 20 or 10 steps they land on nearly the same digits; DDPM adds fresh
# noise at every step, so its row ends on other digits (and DDPM-1000, switched on, on others
# again). Fewer steps cost little confidence here; the Fréchet column of the stored table is
# more sensitive and shows DDIM-10 drifting away from the real digits.

# %% [markdown]
# ## 5. Exercise 2: one DDPM step
#
# Write `my_ddpm_step(x_t, eps_pred, t, betas, alphas_cumprod, noise)` (named `my_` so it does
# not replace the library's `ddpm_step`), one step of the sampler with the formulas of section 1:
# the mean (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) · ε̂), plus σ_t · noise with
# σ_t² = β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), where α_t = 1 − β_t.
#
# The argument `t` is the **code index**, a Python int in [0, T), the same for the whole batch:
# β_t of the formulas is `betas[t]`, ᾱ_t is `alphas_cumprod[t]` and ᾱ_{t−1} is
# `alphas_cumprod[t - 1]`. Code index 0 is the last step (t = 1 in the text, which lands on x₀):
# there return the mean alone, with no noise.

# %%
import torch

from mmcourse.checks import check_ddpm_step


def my_ddpm_step(x_t: torch.Tensor, eps_pred: torch.Tensor, t: int, betas: torch.Tensor,
                 alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One ancestral DDPM step (fixed small variance, beta tilde); t is the code index.

    Args:
        x_t: (B, *) current sample.  eps_pred: (B, *) predicted noise.  t: int code index in [0, T).
        betas, alphas_cumprod: (T,) schedule tables.  noise: (B, *) standard normal, used if t > 0.
    Returns:
        (B, *) the sample x_(t-1).
    """
    ### BEGIN SOLUTION
    beta = betas[t]
    mean = (x_t - beta / (1 - alphas_cumprod[t]).sqrt() * eps_pred) / (1 - beta).sqrt()
    if t == 0:
        return mean
    var = beta * (1 - alphas_cumprod[t - 1]) / (1 - alphas_cumprod[t])
    return mean + var.sqrt() * noise
    ### END SOLUTION


check_ddpm_step(my_ddpm_step)

# %% [markdown]
# Compare with the course's version, `ddpm_step`: the same step, written for diffusers' argument
# order, with the choice of β or β̃ and with strided jumps (`prev_t`) for fewer steps.

# %%
show_source(ddpm_step)

# %% [markdown]
# Your step drives a real sampler: here it generates two moons with the model trained above.

# %%
g = torch.Generator().manual_seed(11)
x = torch.randn(2000, 2, generator=g)  # x_T
with torch.no_grad():
    for t in reversed(range(moons_schedule.num_train_timesteps)):  # code indices T-1 ... 0
        eps = moons_model(x, torch.full((2000,), t))
        x = my_ddpm_step(x, eps, t, moons_schedule.betas, moons_schedule.alphas_cumprod, torch.randn(x.shape, generator=g))
my_ratio = sliced_wasserstein(x, real_a) / swd_base
print(f"your sampler: SWD(samples, data) / SWD(data, data) {my_ratio:.2f} (target ≤ 2)")
assert my_ratio <= 2

# %% [markdown]
# ## Summary and measured targets
#
# - The reverse step is the forward posterior with x₀ replaced by the network's guess; the
#   network is trained to predict the added noise, a plain regression (the variational bound
#   with its per-t weights dropped). Its loss cannot reach 0: on the moons it levels off at the
#   irreducible E‖ε − E[ε | x_t]‖². Its variance is fixed, not learned: β̃_t or β_t, which differ
#   only over the last steps. Neither is clearly better on the moons: β̃ left the samples a
#   little closer to the data, β gave a slightly lower SWD (section 3).
# - Indices: x₀ is the data, the chain runs t = 1 … T, and the code's index is t − 1.
# - The notes' example trains but samples badly; scaling t to t/T is the fix that matters, the
#   printed loss should be an average over many examples, and T = 1000 makes the chain start
#   where the sampler starts (without changing this toy's samples measurably).
# - Two moons: 700 steps train live and reach an SWD within 2x of the data-vs-data baseline.
# - Digits: DDIM with 50 steps matches DDPM-1000's quality at a twentieth of the network calls.
#
# The stored measurements behind these claims (`python -m bench diffusion`; the digits samplers'
# table is in section 4):

# %%
from IPython.display import Markdown, display

from mmcourse.clip.widgets import markdown_table

runs = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in ("diffusion_syllabus", "diffusion_2d_steps")}
syl = runs["diffusion_syllabus"]
display(Markdown(f"**The notes' 1-D example and its fixes** (W1 to the data per seed; data against data "
                 f"{syl['baseline_w1']}):\n\n" + markdown_table(
    ["variant", "W1 per seed", "median"],
    [[r["variant"], ", ".join(f"{w:.3f}" for w in r["w1_per_seed"]), f"{r['w1_median']:.3f}"] for r in syl["rows"]])))
steps = runs["diffusion_2d_steps"]
display(Markdown(f"**Two moons against training length and rate** (seeds 0, 1, 2; target SWD / baseline ≤ 2; "
                 f"real points lie {steps['real_distance']} from the data):\n\n" + markdown_table(
    ["recipe", "SWD / baseline per seed", "distance to data per seed"],
    [[f"{r['steps']} steps at lr {r['lr']:g}" + (" (this notebook)" if r["live"] else
                                                  " (train_2d's default)" if r["steps"] == 1500 else ""),
      ", ".join(f"{v:.2f}" for v in r["ratio_per_seed"]), ", ".join(f"{v:.4f}" for v in r["distance_per_seed"])]
     for r in steps["rows"]])))

# %% [markdown]
# | English | 中文 |
# |---|---|
# | reverse process, denoising | 反向过程, 去噪 |
# | noise prediction | 噪声预测 |
# | sampling, sampler | 采样, 采样器 |
# | posterior | 后验 |
# | sinusoidal time embedding | 正弦时间嵌入 |
# | exponential moving average | 指数移动平均 |
#
# Next: **03 · Vision Transformer**.

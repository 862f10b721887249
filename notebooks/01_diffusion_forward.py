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
# # 01 · Forward diffusion: turning data into noise
#
# A diffusion model (扩散模型) learns to generate data by learning to undo a process that is easy
# to run: adding a little Gaussian noise, again and again, until nothing of the data is left. This
# notebook is about that easy half, the **forward process** (正向扩散). Nothing here is learned;
# everything is a formula you can check numerically. The next notebook trains a network to run
# the chain backwards (反向过程, 去噪).
#
# You will see
#
# 1. the **Markov chain** (马尔可夫链) that adds noise one step at a time, and why it has no memory;
# 2. the **closed form** that jumps from x₀ to any x_t at once, derived and checked against the chain;
# 3. **noise schedules** (噪声调度) and their ᾱ_t and signal-to-noise curves, and how fast each one
#    destroys a small image;
# 4. why the study notes' example with T = 100 never reaches pure noise, while T = 1000 does;
# 5. an explorer widget and an exercise: write `add_noise` yourself.
#
# **Index convention.** The text counts as the DDPM paper does: x₀ is the clean data, step t
# (t = 1 … T) turns x_{t−1} into x_t by adding noise of variance β_t, and x_T is the end of the
# chain. The code stores the schedule in 0-based arrays, as diffusers does: **code index = t − 1**.
# So β_t is `betas[t - 1]`, ᾱ_t is `alphas_cumprod[t - 1]`, and `schedule.q_step(x, t - 1, noise)`
# performs step t. Notebook 02 uses the same convention.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from mmcourse.data.digits import load_digits, to_unit
from mmcourse.data.shapes import ShapesWorld
from mmcourse.diffusion import NoiseSchedule
from mmcourse.viz import setup_matplotlib, show_images, show_source

setup_matplotlib()
# %matplotlib inline

# %% [markdown]
# ## 1. One step of noise: a Markov chain
#
# Take a data point x₀: a digit, an image, a 2-D point, scaled to roughly [−1, 1]. Step t shrinks
# the current sample a little and adds fresh Gaussian noise of variance β_t:
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t \mathbf I\big)
# \quad\Longleftrightarrow\quad x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon_t,\ \ \varepsilon_t \sim \mathcal N(0, \mathbf I).$$
#
# The numbers β₁, …, β_T are the **noise schedule** (噪声调度). The DDPM paper, and the study
# notes, use a linear ramp from 10⁻⁴ to 0.02. Why shrink by √(1−β_t) instead of just adding noise? If
# x_{t−1} has variance 1, then x_t has variance (1−β_t)·1 + β_t = 1: the shrinking keeps the
# scale fixed, so after many steps the sample is a standard normal and not a growing blur.
#
# **No memory (马尔可夫性).** The formula for x_t mentions only x_{t−1} and a *fresh* ε_t. So
# once you know x_{t−1}, the earlier samples x_{t−2}, x_{t−3}, … tell you nothing more about
# x_t: the future depends on the past only through the present. This is what makes the chain a
# Markov chain, and it is what lets the reverse process (notebook 02) also go one step at a time.
#
# The chain, and the one-jump shortcut that section 2 derives:
#
# ```mermaid
# flowchart LR
#     x0["x<sub>0</sub><br/>clean data"] -- "step 1: β<sub>1</sub>" --> x1["x<sub>1</sub>"]
#     x1 -- "step 2: β<sub>2</sub>" --> x2["x<sub>2</sub>"]
#     x2 -. "…" .-> xp["x<sub>t−1</sub>"]
#     xp -- "step t: β<sub>t</sub>" --> xt["x<sub>t</sub>"]
#     xt -. "…" .-> xT["x<sub>T</sub> ≈ N(0, I)"]
#     x0 == "one jump (section 2): √ᾱ<sub>t</sub> x<sub>0</sub> + √(1 − ᾱ<sub>t</sub>) ε" ==> xt
# ```
#
# In `mmcourse` the schedule is a table of numbers plus two verbs. One step of the chain is
# `NoiseSchedule.q_step` (type `NoiseSchedule.q_step??` to read it in a pager); its `t` is the
# code index, t − 1:

# %%
show_source(NoiseSchedule.q_step)

# %% [markdown]
# Let us run the chain on a real 8×8 digit and on a ShapesWorld scene (mapped to [−1, 1]), with
# the notes' β range and T = 1000, and look at a few levels.
#
# **Predict, then run:** β is at most 0.02, so each step adds little. After how many of the 1000
# steps will you no longer recognise the digit: 50, 300 or 900?

# %%
schedule = NoiseSchedule.make(1000, "linear", 1e-4, 0.02)
print(schedule)

digits, labels = load_digits("test")
digit = digits[:1]  # (1, 1, 8, 8) in [-1, 1]
scene = ShapesWorld().sample(1, seed=3, split="train").images * 2 - 1  # (1, 3, 32, 32) in [-1, 1]

g = torch.Generator().manual_seed(0)
show_at = [0, 50, 100, 200, 300, 500, 1000]  # levels t; t = 0 is the clean data
x_d, x_s = digit.clone(), scene.clone()
frames_d, frames_s = [digit[0]], [scene[0]]
for t in range(1, 1001):  # step t turns x_(t-1) into x_t; its code index is t - 1
    x_d = schedule.q_step(x_d, t - 1, torch.randn(x_d.shape, generator=g))
    x_s = schedule.q_step(x_s, t - 1, torch.randn(x_s.shape, generator=g))
    if t in show_at:
        frames_d.append(x_d[0])
        frames_s.append(x_s[0])

show_images(to_unit(torch.stack(frames_d)), titles=[f"x_{t}" for t in show_at], ncols=7, scale=1.0)
show_images(to_unit(torch.stack(frames_s)), titles=[f"x_{t}" for t in show_at], ncols=7, scale=1.0)
plt.show()
# alpha_bar_t: the share of the data's variance left at level t; SNR = alpha_bar / (1 - alpha_bar)
for t in show_at[1:]:
    a = schedule.alphas_cumprod[t - 1].item()
    print(f"t = {t:4d}: signal amplitude sqrt(alpha_bar) = {a ** 0.5:.3f}, SNR = {a / (1 - a):7.3f}")

# %% [markdown]
# Nearer 300 than 50 or 900. At t = 50 the digit has lost almost nothing (the printed signal
# amplitude is still above 0.98). Around t = 300 the noise has overtaken the signal (SNR below 1)
# and the digit is hard to read; by t = 500 the SNR is below 0.1 and nothing is left to see. So the
# last half of this chain turns noise into noise, which section 3 measures for several schedules.

# %% [markdown]
# The memoryless property can be measured. Run the chain many times from the same kind of data
# and regress x_t on both x_{t−1} and x_{t−2}: the fitted weight of x_{t−1} should be
# √(1−β_t) and the weight of x_{t−2} zero, because given the present the older sample adds no
# information. Here t = 300.
#
# **Predict, then run:** x_{t−2} is strongly correlated with x_t (only two small steps apart).
# Will its weight in the regression still be about zero?

# %%
n = 50_000
g = torch.Generator().manual_seed(1)
x = torch.rand(n, 1, generator=g) * 2 - 1  # data: uniform on [-1, 1]
history = [x]  # history[t] is x_t
for t in range(1, 301):
    history.append(schedule.q_step(history[-1], t - 1, torch.randn(n, 1, generator=g)))
x_t, x_prev, x_prev2 = history[300], history[299], history[298]  # x_300, x_299, x_298
design = torch.cat([x_prev, x_prev2], dim=1).double()
weights = torch.linalg.lstsq(design, x_t.double()).solution.flatten()
beta_300 = schedule.betas[300 - 1].item()  # code index t - 1
print(f"correlation of x_300 and x_298: {torch.corrcoef(torch.cat([x_t, x_prev2], 1).T)[0, 1]:.3f}")
print(f"weight of x_299: {weights[0]:.3f}   (sqrt(1 - beta_300) = {math.sqrt(1 - beta_300):.3f})")

# %%
# NBVAL_CHECK_OUTPUT
print(f"weight of x_298 once x_299 is known: {weights[1].item():+.3f} (target: |weight| < 0.02)")

# %% [markdown]
# Yes: the weight of x_{t−2} is about zero (inside ±0.02) although its correlation with x_t is
# above 0.99. x_{t−2} is correlated with x_t only through x_{t−1}: once the regression knows
# x_{t−1}, the older sample adds nothing. That is what "Markov" means.
#
# ## 2. The closed form: from x₀ to x_t in one jump
#
# Training a denoiser needs noisy samples at *random* levels t, thousands of times. Running the
# chain step by step for each would be slow, and it is unnecessary. Write α_t = 1 − β_t and
# combine two steps:
#
# $$x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\varepsilon_t
#       = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \sqrt{\alpha_t(1-\alpha_{t-1})}\,\varepsilon_{t-1} + \sqrt{1-\alpha_t}\,\varepsilon_t .$$
#
# The two noise terms are independent Gaussians with mean zero, so their sum is one Gaussian whose
# variance is the sum of the variances: α_t(1 − α_{t−1}) + (1 − α_t) = 1 − α_tα_{t−1}. Two steps
# are therefore one step with signal factor √(α_tα_{t−1}) and noise variance 1 − α_tα_{t−1}.
# Repeating the argument down to x₀ (induction) gives, with the cumulative product
# ᾱ_t = α₁α₂⋯α_t (and ᾱ₀ = 1: no noise yet),
#
# $$q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\mathbf I\big)
# \quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon .$$
#
# ᾱ_t is the share of the data's variance left at level t, and 1 − ᾱ_t the share of noise. In
# the code this one line is `schedule.add_noise(x0, noise, t - 1)` (diffusers has a method of the
# same name); you write it yourself in the exercise of section 6.
#
# **Iterated vs closed form, side by side.** The chain and the jump use different random numbers,
# so single samples differ; their *distributions* must agree. Below, 50,000 points from U[−1, 1]
# go through 300 chain steps (`history[300]` above, x_300) and, separately, one `add_noise` jump
# to the same level t = 300 (code index 299).
#
# **Predict, then run:** will the two histograms match, or will 300 small Gaussian steps differ
# from one big one?

# %%
g = torch.Generator().manual_seed(2)
x0 = history[0]
jumped = schedule.add_noise(x0, torch.randn(n, 1, generator=g), 300 - 1)  # x_300 in one jump
a = schedule.alphas_cumprod[300 - 1].item()  # alpha_bar_300
print(f"alpha_bar_300: {a:.4f}")
print(f"iterated chain : mean {x_t.mean():+.4f}  variance {x_t.var():.4f}")
print(f"closed form    : mean {jumped.mean():+.4f}  variance {jumped.var():.4f}")
print(f"theory         : mean {0.0:+.4f}  variance {a * (1 / 3) + (1 - a):.4f}   (Var U[-1,1] = 1/3)")

fig, ax = plt.subplots(figsize=(5, 2.8))
bins = np.linspace(-3.5, 3.5, 71)
ax.hist(x_t.numpy().ravel(), bins=bins, density=True, alpha=0.5, label="300 chain steps")
ax.hist(jumped.numpy().ravel(), bins=bins, density=True, alpha=0.5, label="one add_noise jump")
ax.set_title("x_300 from data U[-1, 1]", fontsize=9)
ax.set_xlabel("value")
ax.legend(fontsize=8)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
from mmcourse.evaluate import wasserstein_1d

print(f"W1(chain, closed form): {wasserstein_1d(x_t, jumped):.3f} (target < 0.02)")
print(f"variance difference:    {abs(x_t.var().item() - jumped.var().item()):.3f} (target < 0.02)")

# %% [markdown]
# They match, within the sampling noise of 50,000 points: a sum of independent Gaussian steps is
# one Gaussian, so the closed form is exact, not an approximation of the chain.
#
# ## 3. Noise schedules: ᾱ_t and the signal-to-noise ratio
#
# The schedule decides *where along the chain* the information disappears. The ratio of signal
# variance to noise variance, SNR(t) = ᾱ_t / (1 − ᾱ_t), summarises it (`schedule.snr()`). Three
# common choices, each with T = 1000:
#
# - **linear** (DDPM, the notes): β from 10⁻⁴ to 0.02;
# - **cosine** (Nichol & Dhariwal, 2021; diffusers' `squaredcos_cap_v2`): ᾱ_t follows a cos² curve,
#   so noise arrives more gently at the start;
# - **scaled linear** (Stable Diffusion's latent model): linear in √β from 0.00085 to 0.012.
#
# and the notes' own example, linear with **T = 100**. The curves are drawn against t/T, the
# position along the chain, so chains of different length fit on one axis.
#
# **Predict, then run:** which schedule keeps the most signal halfway along its chain?

# %%
schedules = {
    "linear, T=1000": NoiseSchedule.make(1000, "linear", 1e-4, 0.02, dtype=torch.float64),
    "cosine, T=1000": NoiseSchedule.make(1000, "squaredcos_cap_v2", dtype=torch.float64),
    "scaled linear, T=1000": NoiseSchedule.make(1000, "scaled_linear", 0.00085, 0.012, dtype=torch.float64),
    "linear, T=100 (notes)": NoiseSchedule.make(100, "linear", 1e-4, 0.02, dtype=torch.float64),
}
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for name, s in schedules.items():
    frac = (torch.arange(len(s)) + 1) / len(s)  # t / T for t = 1 ... T (code index t - 1)
    axes[0].plot(frac, s.alphas_cumprod, label=name)
    axes[1].plot(frac, torch.log10(s.snr()), label=name)
axes[0].set_title("alpha_bar_t: share of signal variance left", fontsize=9)
axes[1].set_title("log10 SNR(t)", fontsize=9)
axes[1].axhline(0, color="gray", lw=0.8, ls="--")
for ax in axes:
    ax.set_xlabel("t / T")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Where does each schedule make the signal as strong as the noise (SNR = 1), and where is the
# signal down to 1 % of the noise (SNR = 0.01)? And what is left at the last step, ᾱ_T?

# %%
# NBVAL_CHECK_OUTPUT
def first_level_below(snr: torch.Tensor, level: float) -> int | None:
    """The first t (1-based) with SNR(t) < level, or None if the chain never gets there."""
    below = (snr < level).nonzero()
    return int(below[0]) + 1 if len(below) else None  # code index + 1


for name, s in schedules.items():
    snr = s.snr()
    print(f"{name:24s} SNR<1 from t={first_level_below(snr, 1)}  SNR<0.01 from t={first_level_below(snr, 0.01)}  "
          f"alpha_bar_T={s.alphas_cumprod[-1].item():.1e}")

# %% [markdown]
# Halfway along the chain the notes' T = 100 keeps the most signal (it crosses SNR = 1 only at
# t = 83), but only because it never finishes: section 4 shows what that costs. Of the chains with
# T = 1000, the cosine schedule keeps the most: it reaches SNR = 1 right at the halfway point,
# where linear and scaled linear crossed long before.
#
# The linear schedule has crossed SNR = 1 after a quarter of the chain and spends its last third
# on near-pure noise; the cosine schedule spends its steps more evenly. Scaled
# linear stops at ᾱ ≈ 0.005, a known flaw of Stable Diffusion's schedule (its last step is not
# quite pure noise). The notes' T = 100 never even gets to SNR = 0.01.
#
# **How fast does each one destroy a small image?** Below, the same digit and scene, with the
# *same* noise ε, at a few levels under each schedule (only ᾱ_t changes between rows). An 8×8
# digit is a coarse image: its shape survives fairly strong noise, so the steps where it is still
# recognisable are the ones where a denoiser has real work to do.

# %%
levels = [0, 100, 200, 300, 500, 700, 1000]  # t = 0 is the clean data
eps_d, eps_s = torch.randn(digit.shape, generator=g), torch.randn(scene.shape, generator=g)
digit_rows, scene_rows, titles = [], [], []
for name, short in [("linear, T=1000", "linear"), ("cosine, T=1000", "cosine"), ("scaled linear, T=1000", "scaled")]:
    s = schedules[name].to(dtype=torch.float32)
    for t in levels:
        digit_rows.append(digit[0] if t == 0 else s.add_noise(digit, eps_d, t - 1)[0])
        scene_rows.append(scene[0] if t == 0 else s.add_noise(scene, eps_s, t - 1)[0])
        titles.append(f"{short} t={t}")
show_images(to_unit(torch.stack(digit_rows)), titles=titles, ncols=7, scale=1.1)
show_images(to_unit(torch.stack(scene_rows)), titles=titles, ncols=7, scale=1.1)
plt.show()

# %% [markdown]
# The digit is still readable at t = 300 under the cosine schedule but not under the linear one,
# as the SNR table predicts.
#
# ## 4. Does x_T reach N(0, I)? T = 1000 vs the notes' T = 100
#
# The reverse process will *start* from x_T ~ N(0, I), so the forward chain had better end
# there. From the closed form, for data with mean m and variance v,
# E[x_T] = √ᾱ_T · m and Var[x_T] = ᾱ_T · v + 1 − ᾱ_T. Both are close to (0, 1) only if ᾱ_T is
# tiny. Let us measure it with 200,000 samples of data in [−1, 1], and of the notes' data,
# `np.random.rand`, uniform on [0, 1].
#
# **Predict, then run:** the notes keep the β range (10⁻⁴ to 0.02) but take only T = 100 steps.
# Will x_T still be N(0, 1)? If not, roughly what share of the signal survives?

# %%
def x_T_stats(T: int, low: float, high: float, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
    """Mean and variance of x_T for data uniform on [low, high], linear betas 1e-4..0.02 over T steps."""
    s = NoiseSchedule.make(T, "linear", 1e-4, 0.02)
    gen = torch.Generator().manual_seed(seed)
    data = torch.rand(n, 1, generator=gen) * (high - low) + low
    x_T = s.add_noise(data, torch.randn(n, 1, generator=gen), T - 1)  # level T = code index T - 1
    return x_T.mean().item(), x_T.var().item()


for T in (1000, 100):
    for low, high in ((-1.0, 1.0), (0.0, 1.0)):
        m, v = x_T_stats(T, low, high)
        print(f"T={T:4d} data U[{low:g},{high:g}]: alpha_bar_T={NoiseSchedule.make(T).alphas_cumprod[-1].item():.2e}  "
              f"mean {m:+.4f}  variance {v:.4f}")

# %%
# NBVAL_CHECK_OUTPUT
for T in (1000, 100):
    m, v = x_T_stats(T, -1.0, 1.0)
    print(f"T={T:4d}: x_T mean {m:+.3f}, variance {v:.3f} (target for N(0, 1): mean within 0.01 of 0, variance within 0.01 of 1)")

# %% [markdown]
# With T = 1000 the notes' schedule leaves ᾱ_T ≈ 4·10⁻⁵: x_T is N(0, 1) to within 0.01, whatever
# the data. With T = 100 the same β range adds up to far less noise: Σβ_t is about 1 instead of
# about 10, so ᾱ_T = 0.36 and 60 % of the signal amplitude survives. The variance is then
# 0.36·Var(x₀) + 0.64, not 1 (0.76 for data in [−1, 1]), and for the notes' data in [0, 1] the mean is
# still 0.30. A sampler that starts from N(0, 1) then starts from a distribution the network
# never saw at its last step. Notebook 02 measures what that costs. Two fixes: more steps, or
# larger β (e.g. scale the β range by 1000/T, or use the cosine schedule, which reaches
# ᾱ ≈ 0 for any T).
#
# ## 5. Explore: a t slider and a schedule picker
#
# Move **t** (0 is the clean data, T the end of the chain) and watch a digit, a ShapesWorld scene
# and a 2-D point cloud dissolve together; the right panel is the histogram of all their values
# against the N(0, 1) density. Switch the **schedule** to see how differently the same t/T looks;
# the slider keeps its position along the chain. Pick **linear, T = 100 (the notes' schedule)**
# and move t to 100, the end of that chain: ᾱ_T = 0.36, and the histogram is still narrower than
# the N(0, 1) curve (section 4 measured a variance of 0.76), while the linear T = 1000 schedule at
# t = 1000 matches it. (The noise is drawn once, so moving the slider only changes ᾱ_t.)

# %%
from mmcourse.diffusion.widgets import forward_explorer

forward_explorer()

# %% [markdown]
# The picture comes from a plain callable, `ForwardView`, which draws the figure once and then
# only updates the four pictures; that is why a slider move redraws in a few tens of milliseconds.

# %%
from mmcourse.diffusion.widgets import ForwardView

show_source(ForwardView.__call__)

# %% [markdown]
# ## 6. Exercise: the forward jump
#
# Write `add_noise(x0, noise, t, alphas_cumprod)`: for a batch x0 of shape (B, …) (a column of
# numbers, or images (B, C, H, W)), a noise tensor of the same shape, a LongTensor `t` of shape
# (B,) and the table `alphas_cumprod` (T,), return √ᾱ · x0 + √(1 − ᾱ) · noise with each example's
# own ᾱ. As in diffusers, `t` holds **code indices** in [0, T), so `alphas_cumprod[t]` is the
# ᾱ of level t + 1 in the text's numbering. Hint: `alphas_cumprod[t]` has shape (B,); reshape it
# to (B, 1, …, 1) so it broadcasts over the other dimensions.

# %%
import torch

from mmcourse.checks import check_add_noise


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Jump from clean data to noise in one go: sqrt(a) x0 + sqrt(1 - a) noise, a = alphas_cumprod[t].

    Args:
        x0: (B, *) clean data.  noise: (B, *) standard normal noise.
        t: LongTensor (B,) of code indices in [0, T) (level t + 1 of the text).
        alphas_cumprod: (T,) the table alpha_bar.
    Returns:
        (B, *) the noisy samples x_t.
    """
    ### BEGIN SOLUTION
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
    ### END SOLUTION


check_add_noise(add_noise)

# %% [markdown]
# Compare with the course's version, `NoiseSchedule.add_noise` (it also checks its inputs and
# accepts a single int for the whole batch):

# %%
show_source(NoiseSchedule.add_noise)

# %% [markdown]
# Your function should agree with the library's on the scene, at a batch of different levels:

# %%
batch = scene.expand(4, -1, -1, -1)
eps = torch.randn(batch.shape, generator=torch.Generator().manual_seed(5))
t = torch.tensor([0, 10, 500, 999])  # code indices: levels 1, 11, 501 and T = 1000
difference = (add_noise(batch, eps, t, schedule.alphas_cumprod) - schedule.add_noise(batch, eps, t)).abs().max().item()
print(f"largest difference from schedule.add_noise: {difference:.1e} (target < 1e-6)")
assert difference < 1e-6

# %% [markdown]
# ## Summary
#
# - The forward process is a Markov chain: each step keeps √(1−β_t) of the sample and adds noise of
#   variance β_t; given the present, the past adds nothing (measured: weight ≈ 0).
# - Gaussian steps compose, so x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε in one jump, with ᾱ_t = α₁⋯α_t; the
#   chain and the jump agree in distribution (measured above at t = 300).
# - The text counts t = 1 … T with x₀ the clean data; the code's arrays are 0-based: code index
#   = t − 1.
# - The schedule decides where the signal disappears: linear goes fast and then idles on pure
#   noise, cosine is more even; the SNR table above gives the steps.
# - With the notes' β range, T = 1000 ends at N(0, I) within 0.01; T = 100 does not (ᾱ_T = 0.36).
#
# | English | 中文 |
# |---|---|
# | forward diffusion | 正向扩散 |
# | Markov chain, memoryless | 马尔可夫链, 无记忆性 |
# | noise schedule | 噪声调度 |
# | signal-to-noise ratio | 信噪比 |
# | closed form | 闭式解 |
# | denoising | 去噪 |
#
# Next: **02 · The reverse process**: train a network to predict the noise, and sample with it.

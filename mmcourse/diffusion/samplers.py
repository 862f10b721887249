"""Reverse steps (DDPM, DDIM) and the sampling loop that calls them.

Each step function maps the network's noise prediction at step ``t`` to a sample at the earlier
step ``prev_t``, with the same arithmetic as diffusers' ``DDPMScheduler.step`` and
``DDIMScheduler.step`` (prediction_type="epsilon", no thresholding; tested against them). They
are functions of a :class:`NoiseSchedule` rather than methods of a stateful scheduler: the step
taken is fully described by its arguments, so a notebook can call one step in isolation.

Which earlier step: :func:`sample` always steps from one visited timestep to the next one it
visits (the DDIM paper's sub-sequence tau_i -> tau_{i-1}; diffusers' DDPMScheduler does the same
through ``previous_timestep``). diffusers' DDIMScheduler instead steps from t to t - T // N
whatever the spacing. With "leading" spacing the visited steps are multiples of T // N, so the
two are the same step; with "trailing" spacing and N not dividing T they part where the rounded
grid skips a step (T = 1000, N = 37: from t = 513 diffusers lands on 486, then treats that
sample as x_485), and the samples differ slightly (tests/test_diffusion.py measures it). The
course keeps the consistent choice; to reproduce diffusers' DDIM there, call :func:`ddim_step`
with ``prev_t = t - T // N``.

Shapes: x_t and model_output are (B, *) (any trailing dims); t and prev_t are Python ints.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .schedule import NoiseSchedule

VARIANCE_TYPES = ("fixed_small", "fixed_large")
METHODS = ("ddpm", "ddim")
SPACINGS = ("leading", "trailing", "linspace")


class StepOutput(NamedTuple):
    """Result of one reverse step; unpacks as ``prev_sample, pred_original_sample``."""

    prev_sample: torch.Tensor  # (B, *) the sample at prev_t
    pred_original_sample: torch.Tensor  # (B, *) the network's current guess of x_0


def timesteps(schedule: NoiseSchedule, num_inference_steps: int, spacing: str = "leading") -> torch.Tensor:
    """The decreasing steps a sampler visits, as diffusers' ``set_timesteps`` (steps_offset=0).

    With T training steps and N inference steps:
      - "leading":  0, T//N, 2*(T//N), ...  reversed. Always ends at 0 but starts below T - 1
        (T=1000, N=10 -> 900, 800, ..., 0), so the first step never sees pure noise.
      - "trailing": round(T, T - T/N, ...) - 1, starts at T - 1 (T=1000, N=10 -> 999, ..., 99).
      - "linspace": round(linspace(0, T - 1, N)) reversed.

    Returns:
        LongTensor (N,), strictly decreasing.
    """
    T = schedule.num_train_timesteps
    N = num_inference_steps
    if not isinstance(N, int) or not 0 < N <= T:
        raise ValueError(f"num_inference_steps must be an int in [1, {T}] (the training steps), got {N!r}")
    # numpy float arithmetic and round-half-to-even, as diffusers does, so the lists agree exactly.
    if spacing == "leading":
        ts = (np.arange(0, N) * (T // N)).round()[::-1].astype(np.int64)
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / N)).astype(np.int64) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, N).round()[::-1].astype(np.int64)
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return torch.from_numpy(ts.copy())


def _check_steps(schedule: NoiseSchedule, t: int, prev_t: int) -> tuple[int, int]:
    T = schedule.num_train_timesteps
    t, prev_t = int(t), int(prev_t)
    if not 0 <= t < T:
        raise ValueError(f"t must lie in [0, {T}), got {t}")
    if not -1 <= prev_t < t:
        raise ValueError(f"prev_t must lie in [-1, t) = [-1, {t}), got {prev_t}")
    return t, prev_t


def _alpha_bars(schedule: NoiseSchedule, t: int, prev_t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha_bar at t and at prev_t, 0-d tensors; prev_t = -1 means the clean data, alpha_bar = 1."""
    a_t = schedule.alphas_cumprod[t]
    a_prev = schedule.alphas_cumprod[prev_t] if prev_t >= 0 else torch.ones_like(a_t)
    return a_t, a_prev


def ddpm_step(
    schedule: NoiseSchedule,
    model_output: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    generator: torch.Generator | None = None,
    variance_type: str = "fixed_small",
    prev_t: int | None = None,
    clip_sample: bool = False,
    clip_sample_range: float = 1.0,
) -> StepOutput:
    """One ancestral DDPM step: sample x_{prev_t} ~ p(x_{prev_t} | x_t) (Ho et al. 2020, eq. 6-7).

    Args:
        model_output: (B, *) predicted noise eps_theta(x_t, t).
        t: current step, a code index in [0, T) (level t + 1 of the notebooks' text).  x_t: (B, *) current sample.
        generator: for the added noise, drawn as ``torch.randn(x_t.shape, generator=...)``.
        variance_type: "fixed_small" uses the posterior variance beta~ (the lower bound);
            "fixed_large" uses beta itself (the upper bound, used by the original CIFAR run).
        prev_t: the step to jump to, default t - 1; -1 means "to the clean data". For strided
            sampling, beta is recomputed as 1 - alpha_bar_t / alpha_bar_prev: the variance of
            the whole jump, not of a single training step.
        clip_sample: clamp the predicted x_0 to [-r, r], r = ``clip_sample_range`` (1 for pixels
            in [-1, 1]; a few standard deviations for standardised latents).

    Returns:
        StepOutput(prev_sample (B, *), pred_original_sample (B, *)). No noise is added at t = 0.
    """
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
    t, prev_t = _check_steps(schedule, t, t - 1 if prev_t is None else prev_t)
    a_t, a_prev = _alpha_bars(schedule, t, prev_t)
    alpha = a_t / a_prev  # the signal kept over the jump prev_t -> t
    beta = 1 - alpha

    x0 = (x_t - (1 - a_t) ** 0.5 * model_output) / a_t**0.5
    if clip_sample:
        x0 = x0.clamp(-clip_sample_range, clip_sample_range)

    # Mean of q(x_prev | x_t, x_0) with x_0 replaced by the guess.
    mean = (a_prev**0.5 * beta / (1 - a_t)) * x0 + (alpha**0.5 * (1 - a_prev) / (1 - a_t)) * x_t

    if t > 0:  # the last step returns the mean: adding noise to the final image only hurts
        if variance_type == "fixed_small":
            # Clamped because jumping straight to prev_t = -1 makes it exactly zero.
            var = ((1 - a_prev) / (1 - a_t) * beta).clamp(min=1e-20)
        else:
            var = beta
        noise = torch.randn(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
        mean = mean + var**0.5 * noise
    return StepOutput(mean, x0)


def ddim_step(
    schedule: NoiseSchedule,
    model_output: torch.Tensor,
    t: int,
    prev_t: int,
    x_t: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_sample: bool = False,
    clip_sample_range: float = 1.0,
    rederive_eps: bool = False,
) -> StepOutput:
    """One DDIM step (Song et al. 2021, eq. 12): move x_t to prev_t along the predicted noise.

    x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_hat + sigma z, with
    sigma = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)). eta = 0 is deterministic;
    eta = 1 has DDPM's fixed_small variance.

    Args:
        model_output: (B, *) predicted noise.  t: current step.  prev_t: target step, -1 for
            the clean data (alpha_bar = 1, diffusers' set_alpha_to_one=True); :func:`sample`
            passes the next step it visits, diffusers' DDIMScheduler t - T // N (the module
            docstring says when the two differ).
        x_t: (B, *).  eta: noise scale >= 0.  generator: for z, drawn only when eta > 0.
        clip_sample: clamp x0_hat to [-r, r], r = ``clip_sample_range``; eps_hat stays the raw
            prediction, as in diffusers.
        rederive_eps: with ``clip_sample``, recompute eps_hat from the clamped x0_hat, so that
            x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps_hat still holds (OpenAI's guided-diffusion
            does this in ``ddim_sample``). The step then moves towards the clamped x0_hat only.

    Returns:
        StepOutput(prev_sample (B, *), pred_original_sample (B, *)).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    t, prev_t = _check_steps(schedule, t, prev_t)
    a_t, a_prev = _alpha_bars(schedule, t, prev_t)

    x0 = (x_t - (1 - a_t) ** 0.5 * model_output) / a_t**0.5
    eps = model_output
    if clip_sample:
        x0 = x0.clamp(-clip_sample_range, clip_sample_range)
        if rederive_eps:
            eps = (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
    prev = a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps
    if eta > 0:
        noise = torch.randn(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
        prev = prev + sigma * noise
    return StepOutput(prev, x0)


@torch.no_grad()
def sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    num_inference_steps: int | None = None,
    method: str = "ddpm",
    eta: float = 0.0,
    variance_type: str = "fixed_small",
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    clip_sample: bool = False,
    spacing: str = "leading",
    clip_sample_range: float = 1.0,
    rederive_eps: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Generate samples: start from x_T ~ N(0, I) and apply the reverse step at each timestep.

    Args:
        model: called as ``model(x_t, t_batch)`` with x_t (B, *) and t_batch a LongTensor (B,);
            returns the predicted noise (B, *). Its train/eval mode is left as it is.
        shape: (B, *) of the samples.
        num_inference_steps: N <= T steps (default T: the full chain), see :func:`timesteps`;
            each step goes to the next visited timestep (the module docstring compares this
            with diffusers' DDIMScheduler, which steps by T // N).
        method: "ddpm" (:func:`ddpm_step`) or "ddim" (:func:`ddim_step`, with ``eta``).
        generator: draws x_T first, then the noise of each step, so a seeded generator
            reproduces the samples exactly.
        device: where to sample; default the model's parameters' device (CPU if it has none).
        clip_sample, clip_sample_range: clamp each step's predicted x_0 to [-r, r] (see the steps);
            ``rederive_eps`` (DDIM only): see :func:`ddim_step`.

    Returns:
        x_0 (B, *), and when ``return_trajectory`` also (N + 1, B, *): x_T then each step's output.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
    if device is None:
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    ts = timesteps(schedule, num_inference_steps or schedule.num_train_timesteps, spacing).tolist()

    x = torch.randn(shape, generator=generator, device=device)
    trajectory = [x] if return_trajectory else None
    for i, t in enumerate(tqdm(ts, desc=f"{method} sampling", disable=not progress, mininterval=0.5)):
        prev_t = ts[i + 1] if i + 1 < len(ts) else -1
        eps = model(x, torch.full((shape[0],), t, dtype=torch.long, device=device))
        if method == "ddpm":
            x = ddpm_step(schedule, eps, t, x, generator, variance_type, prev_t, clip_sample, clip_sample_range).prev_sample
        else:
            x = ddim_step(schedule, eps, t, prev_t, x, eta, generator, clip_sample, clip_sample_range, rederive_eps).prev_sample
        if trajectory is not None:
            trajectory.append(x)
    return (x, torch.stack(trajectory)) if return_trajectory else x

"""Classifier-free guidance (Ho & Salimans 2022) on top of the existing DDPM/DDIM steps.

Training: with probability ``p`` (about 0.1) a caption is replaced by the empty prompt
(:func:`condition_dropout`), so one network learns both eps(x_t, t, text) and eps(x_t, t, "").

Sampling: both predictions are combined (:func:`cfg_combine`),

    eps = eps_uncond + w * (eps_cond - eps_uncond),

w = 0 is the unconditional model, w = 1 the conditional one without guidance, w > 1 pushes
further along the direction the prompt adds. (Ho & Salimans write eps_c + w' (eps_c - eps_u):
their w' is this w - 1, so their "no guidance" w' = 0 is w = 1 here; diffusers and Stable
Diffusion use this module's w, ``guidance_scale``.) The combined eps is an ordinary noise prediction, so the existing
:func:`~mmcourse.diffusion.ddpm_step` / :func:`~mmcourse.diffusion.ddim_step` and the
:func:`~mmcourse.diffusion.sample` loop take it unchanged: :class:`GuidedDenoiser` is a
``model(x_t, t)`` callable like any other.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from .conditioning import TextCondition, where
from .samplers import StepOutput, ddim_step, timesteps
from .schedule import NoiseSchedule


def check_guidance_scale(w: object) -> float:
    """``w`` as a float; ValueError naming ``guidance_scale`` unless it is a finite number >= 0."""
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not (0 <= float(w) < float("inf")):
        raise ValueError(f"guidance_scale must be a finite number >= 0 (0 = unconditional, 1 = conditional), got {w!r}")
    return float(w)


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """eps_uncond + w (eps_cond - eps_uncond), exact at w = 0 and w = 1.

    ``torch.lerp`` computes exactly this line, and returns ``eps_uncond`` at w = 0 and
    ``eps_cond`` at w = 1 bit for bit (written out as above, ``a + (b - a)`` can miss ``b`` by one
    rounding). Shapes: both (B, *) -> (B, *).
    """
    w = check_guidance_scale(guidance_scale)
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(f"eps_uncond {tuple(eps_uncond.shape)} and eps_cond {tuple(eps_cond.shape)} must have the same shape")
    return torch.lerp(eps_uncond, eps_cond, w)


def condition_dropout(text: TextCondition, null: TextCondition, p: float, generator: torch.Generator) -> TextCondition:
    """Replace each prompt of ``text`` (batch B) by ``null`` (the empty prompt, batch 1) with probability p.

    The draw is ``torch.rand(B, generator=generator) < p``, so a seeded generator picks the
    same rows every time. Returns a :class:`TextCondition` of batch B.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    B = len(text)
    drop = torch.rand(B, generator=generator) < p
    return where(~drop.to(text.context.device), text, null.repeat(B) if len(null) == 1 else null)


def guided_ddim_step(
    schedule: NoiseSchedule, eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float,
    t: int, prev_t: int, x_t: torch.Tensor, eta: float = 0.0, generator: torch.Generator | None = None,
    clip_sample: bool = False,
) -> StepOutput:
    """One DDIM step on the guided noise: ``ddim_step(schedule, cfg_combine(...), t, prev_t, x_t, ...)``."""
    return ddim_step(schedule, cfg_combine(eps_uncond, eps_cond, guidance_scale), t, prev_t, x_t, eta, generator,
                     clip_sample)


class GuidedDenoiser(nn.Module):
    """``model(x_t, t)`` with a fixed prompt and guidance scale, for :func:`mmcourse.diffusion.sample`.

    Calls the text-conditioned ``model(x, t, text)`` once on the batch [x; x] with
    [text; empty prompt] and combines the halves with :func:`cfg_combine`. At w = 0 only the
    unconditional half and at w = 1 only the conditional half is computed (the same numbers,
    half the work).

    Args:
        model: a conditioned noise predictor, e.g. :class:`~mmcourse.diffusion.conditioning.TextUNet`.
        text: the prompts, batch B (or 1, repeated to the batch of x).  null: the empty prompt, batch 1.
        guidance_scale: w >= 0.
    """

    def __init__(self, model: nn.Module, text: TextCondition, null: TextCondition, guidance_scale: float) -> None:
        super().__init__()
        self.model, self.text, self.null = model, text, null
        self.guidance_scale = check_guidance_scale(guidance_scale)

    def _batch(self, cond: TextCondition, B: int) -> TextCondition:
        return cond.repeat(B) if len(cond) == 1 and B != 1 else cond

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B, w = x.shape[0], self.guidance_scale
        text, null = self._batch(self.text, B), self._batch(self.null, B)
        if w == 0.0:
            return self.model(x, t, null)
        if w == 1.0:
            return self.model(x, t, text)
        eps = self.model(torch.cat([x, x]), torch.cat([t, t]), TextCondition.cat([text, null]))
        eps_cond, eps_uncond = eps.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, w)


@torch.no_grad()
def guided_ddim_sample(model: nn.Module, text: TextCondition, null: TextCondition, guidance_scale: float,
                       schedule: NoiseSchedule, x_T: torch.Tensor, steps: int, clip_sample_range: float | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The guided DDIM loop (eta = 0) written out, keeping every step's x_t and predicted x_0.

    At each of the ``steps`` timesteps (:func:`~mmcourse.diffusion.timesteps`, as the
    :func:`~mmcourse.diffusion.sample` loop visits them): the guided noise of
    :class:`GuidedDenoiser`, then :func:`ddim_step`. With ``clip_sample_range`` = r each step's
    predicted x_0 is clamped to [-r, r] and the noise re-derived from it (``rederive_eps``).
    The same numbers as ``sample(GuidedDenoiser(...), schedule, x_T.shape, steps, "ddim")``
    started from ``x_T`` (tested).

    Returns x_0 (B, *), the trajectory (steps + 1, B, *) from x_T to x_0, and the predicted
    clean samples (steps, B, *), one per step.
    """
    denoiser = GuidedDenoiser(model, text, null, guidance_scale)
    ts = timesteps(schedule, steps).tolist()
    x, xs, x0s = x_T, [x_T], []
    for i, t in enumerate(ts):
        prev_t = ts[i + 1] if i + 1 < len(ts) else -1                   # -1: the clean data
        eps = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x, x0 = ddim_step(schedule, eps, t, prev_t, x, clip_sample=clip_sample_range is not None,
                          clip_sample_range=clip_sample_range or 1.0, rederive_eps=True)
        xs.append(x)
        x0s.append(x0)
    return x, torch.stack(xs), torch.stack(x0s)

"""Checkers for notebook 08's exercises: the classifier-free guidance combination, the guided
sampling loop and condition dropout.

Both are written with plain tensors: the guidance combination takes two noise predictions and a
scale; the training step takes a toy conditioned model, the clean data, t, the noise, the
condition vectors, the "empty prompt" vector and the uniform numbers that decide which
captions are dropped (so every case is comparable number for number).
"""

from __future__ import annotations

import torch
from torch import nn

from ..diffusion.schedule import NoiseSchedule
from .core import Case, Verdict, check


def guided_eps_reference(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """eps_uncond + w (eps_cond - eps_uncond)."""
    return eps_uncond + w * (eps_cond - eps_uncond)


class ToyConditionedDenoiser(nn.Module):
    """A fixed stand-in for eps_theta(x_t, t, c) on any shape: tanh(0.7 x + 1.3 t / 1000 + mean(c) - 0.2).

    Depends on x_t, t and the condition row, so using the wrong one changes the loss.
    """

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shape = (-1, *([1] * (x.ndim - 1)))
        return torch.tanh(0.7 * x + 1.3 * t.float().reshape(shape) / 1000 + cond.mean(dim=1).reshape(shape) - 0.2)


def dropout_loss_reference(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, cond: torch.Tensor,
                           null: torch.Tensor, u: torch.Tensor, p: float, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Condition dropout then the noise-prediction loss.

    Rows with u < p use ``null`` (D,) instead of their ``cond`` row (B, D); then
    x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise and the loss is mean((noise - model(x_t, t, c))^2).
    """
    c = torch.where((u < p)[:, None], null[None, :], cond)
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return ((noise - model(x_t, t, c)) ** 2).mean()


class ToyGuidedModel(nn.Module):
    """A fixed stand-in for eps_theta(x_t, t, prompt or empty prompt): tanh(0.7 x + 1.3 t / 1000 + b),
    b = 0.5 with the prompt (``conditional=True``), -0.3 without; ``t`` is a Python int."""

    def forward(self, x: torch.Tensor, t: int, conditional: bool) -> torch.Tensor:
        return torch.tanh(0.7 * x + 1.3 * t / 1000 + (0.5 if conditional else -0.3))


def guided_ddim_reference(eps_model, x_T: torch.Tensor, ts: list[int], alphas_cumprod: torch.Tensor,
                          w: float) -> torch.Tensor:
    """The guided DDIM loop (eta = 0): at each t of ``ts`` (decreasing), the guided noise
    eps_u + w (eps_c - eps_u), the predicted x_0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), and
    x_prev = sqrt(a_prev) x_0 + sqrt(1 - a_prev) eps, with a_prev = 1 after the last t."""
    x = x_T
    for i, t in enumerate(ts):
        eps_u, eps_c = eps_model(x, t, False), eps_model(x, t, True)
        eps = eps_u + w * (eps_c - eps_u)
        a = alphas_cumprod[t]
        a_prev = alphas_cumprod[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def _loop_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    lin, cos = NoiseSchedule.make(1000), NoiseSchedule.make(1000, "squaredcos_cap_v2")
    cases = []
    for shape, w, ts, sched, desc in [
            ((2, 3), 1.0, [900, 500, 100], lin, "w = 1 (the conditional model), 3 steps"),
            ((2, 3), 0.0, [900, 500, 100], lin, "w = 0 (the unconditional model), 3 steps"),
            ((3, 4, 8, 8), 2.0, [980, 780, 580, 380, 180, 0], cos, "w = 2, latent-shaped (3, 4, 8, 8), 6 steps down to t = 0"),
            ((1, 5), 4.0, [999], cos, "w = 4, one step from t = 999 to the clean sample")]:
        cases.append(Case((ToyGuidedModel(), torch.randn(shape, generator=g), ts, sched.alphas_cumprod, w), desc))
    return cases


def _guidance_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, w, desc in [((2, 4, 8, 8), 0.0, "w = 0: the unconditional prediction"),
                           ((2, 4, 8, 8), 1.0, "w = 1: the conditional prediction"),
                           ((3, 4, 8, 8), 4.0, "w = 4, latent-shaped (3, 4, 8, 8)"),
                           ((5, 2), 2.5, "w = 2.5, shape (5, 2)"),
                           ((1, 3, 4, 4), 0.5, "w = 0.5: between the two")]:
        cases.append(Case((torch.randn(shape, generator=g), torch.randn(shape, generator=g), w), desc))
    return cases


def _dropout_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    lin, cos = NoiseSchedule.make(1000), NoiseSchedule.make(1000, "squaredcos_cap_v2")
    cases = []
    specs = [((4, 2), 0.0, "p = 0: every caption kept", lin),
             ((4, 2), 1.0, "p = 1: every caption replaced by the empty prompt", lin),
             ((6, 4, 8, 8), 0.5, "p = 0.5, latent-shaped x0 (6, 4, 8, 8), cosine schedule", cos),
             ((8, 3), 0.1, "p = 0.1, shape (8, 3)", lin)]
    for shape, p, desc, sched in specs:
        B = shape[0]
        x0, noise = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        t = torch.randint(0, 1000, (B,), generator=g)
        cond, null = torch.randn(B, 5, generator=g), torch.randn(5, generator=g)
        u = torch.rand(B, generator=g)
        if p == 0.5:
            u[:2] = torch.tensor([0.1, 0.9])  # at least one row dropped and one kept
        cases.append(Case((ToyConditionedDenoiser(), x0, t, noise, cond, null, u, p, sched.alphas_cumprod), desc))
    return cases


def check_guided_eps(fn) -> Verdict:
    """Check ``fn(eps_uncond, eps_cond, w) -> guided eps``."""
    return check("check_guided_eps", fn, guided_eps_reference, _guidance_cases())


def check_dropout_loss(fn) -> Verdict:
    """Check ``fn(model, x0, t, noise, cond, null, u, p, alphas_cumprod) -> scalar loss``."""
    return check("check_dropout_loss", fn, dropout_loss_reference, _dropout_cases())


def check_guided_ddim(fn) -> Verdict:
    """Check ``fn(eps_model, x_T, ts, alphas_cumprod, w) -> x_0`` (the guided DDIM loop)."""
    return check("check_guided_ddim", fn, guided_ddim_reference, _loop_cases())

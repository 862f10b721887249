"""Checkers for the diffusion exercises: the forward process, the training loss, one DDPM step.

The learner writes each function from the formulas with plain tensors (no NoiseSchedule), so the
signatures take the schedule's tables as arguments. Every case fixes the noise, so outputs are
comparable number for number. ``t`` is always the code index, as in diffusers: the text's level
t is code index t - 1, so code index 0 is the first forward step and the last reverse step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..diffusion.schedule import NoiseSchedule
from .core import Case, Verdict, check


# ----------------------------------------------------------------------------- references


def add_noise_reference(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, alpha_bar_t picked per example.

    Args:
        x0, noise: (B, *).  t: LongTensor (B,) of code indices in [0, T).  alphas_cumprod: (T,).
    Returns:
        (B, *).
    """
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1) to broadcast
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def diffusion_loss_reference(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                             alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """mean((noise - model(x_t, t))^2) with x_t from :func:`add_noise_reference`: a 0-d tensor."""
    x_t = add_noise_reference(x0, noise, t, alphas_cumprod)
    return ((noise - model(x_t, t)) ** 2).mean()


def ddpm_step_reference(x_t: torch.Tensor, eps_pred: torch.Tensor, t: int, betas: torch.Tensor,
                        alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z.

    sigma_t^2 = beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t); no noise at t = 0.
    """
    beta = betas[t]
    alpha = 1 - beta
    a_t = alphas_cumprod[t]
    mean = (x_t - beta / (1 - a_t).sqrt() * eps_pred) / alpha.sqrt()
    if t == 0:
        return mean
    a_prev = alphas_cumprod[t - 1]
    var = beta * (1 - a_prev) / (1 - a_t)
    return mean + var.sqrt() * noise


# ----------------------------------------------------------------------------- cases


class ToyDenoiser(nn.Module):
    """A fixed stand-in for eps_theta that works on any shape: tanh(w x + c t / 1000 + b).

    Deterministic and cheap, and it depends on both x_t and t, so a loss computed on the wrong
    input or with the wrong t gives a different number.
    """

    def __init__(self) -> None:
        super().__init__()
        self.w, self.c, self.b = 0.7, 1.3, -0.2

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.float().reshape(-1, *([1] * (x.ndim - 1)))
        return torch.tanh(self.w * x + self.c * tt / 1000 + self.b)


def _schedules() -> dict[str, NoiseSchedule]:
    return {
        "linear T=1000": NoiseSchedule.make(1000),
        "linear T=100": NoiseSchedule.make(100),
        "cosine T=50": NoiseSchedule.make(50, "squaredcos_cap_v2"),
    }


def _batch_cases(seed: int, with_model: bool) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    s = _schedules()
    lin, short, cos = s["linear T=1000"], s["linear T=100"], s["cosine T=50"]
    specs = [
        ((6, 1), torch.zeros(6, dtype=torch.long), lin, "x0 (6, 1), every t = 0 (code index: level 1, the first step), linear T=1000"),
        ((6, 1), torch.full((6,), 999), lin, "x0 (6, 1), every t = T-1 = 999 (code index: level T, the end of the chain), linear T=1000"),
        ((5, 2), torch.tensor([0, 1, 50, 98, 99]), short, "x0 (5, 2), a batch of different t, linear T=100"),
        ((4, 1, 8, 8), torch.tensor([3, 250, 600, 999]), lin, "image-shaped x0 (4, 1, 8, 8), different t"),
        ((3, 3, 4, 4), torch.tensor([0, 25, 49]), cos, "image-shaped x0 (3, 3, 4, 4), cosine T=50"),
    ]
    cases = []
    for shape, t, sched, desc in specs:
        x0 = torch.rand(shape, generator=g) * 2 - 1
        noise = torch.randn(shape, generator=g)
        args = (x0, noise, t, sched.alphas_cumprod)
        if with_model:
            args = (ToyDenoiser(), x0, t, noise, sched.alphas_cumprod)
        cases.append(Case(args, desc))
    return cases


def _step_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    s = _schedules()
    specs = [
        ((6, 1), 0, "linear T=1000", "x_t (6, 1) at t = 0 (code index: level 1): the last step, which adds no noise"),
        ((6, 1), 1, "linear T=1000", "x_t (6, 1) at t = 1, linear T=1000"),
        ((6, 2), 999, "linear T=1000", "x_t (6, 2) at t = T-1 = 999 (code index: level T), the first sampling step"),
        ((4, 1, 8, 8), 40, "linear T=100", "image-shaped x_t (4, 1, 8, 8) at t = 40, linear T=100"),
        ((3, 3, 4, 4), 10, "cosine T=50", "image-shaped x_t (3, 3, 4, 4) at t = 10, cosine T=50"),
        ((5, 1), 49, "cosine T=50", "x_t (5, 1) at t = T-1 = 49, cosine T=50"),
    ]
    cases = []
    for shape, t, name, desc in specs:
        sched = s[name]
        x_t, eps, z = (torch.randn(shape, generator=g) for _ in range(3))
        cases.append(Case((x_t, eps, t, sched.betas, sched.alphas_cumprod, z), desc))
    return cases


# ----------------------------------------------------------------------------- checkers


def check_add_noise(fn) -> Verdict:
    """Check ``fn(x0, noise, t, alphas_cumprod) -> x_t`` (notebook 01's exercise)."""
    return check("check_add_noise", fn, add_noise_reference, _batch_cases(0, with_model=False))


def check_diffusion_loss(fn) -> Verdict:
    """Check ``fn(model, x0, t, noise, alphas_cumprod) -> scalar loss`` (notebook 02)."""
    return check("check_diffusion_loss", fn, diffusion_loss_reference, _batch_cases(1, with_model=True))


def check_ddpm_step(fn) -> Verdict:
    """Check ``fn(x_t, eps_pred, t, betas, alphas_cumprod, noise) -> x_{t-1}`` (notebook 02)."""
    return check("check_ddpm_step", fn, ddpm_step_reference, _step_cases())

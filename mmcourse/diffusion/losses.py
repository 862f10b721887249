"""The DDPM training objective: predict the noise that was added (Ho et al. 2020, "L_simple").

With :func:`min_snr_weights` per example, the Min-SNR weighting of the same loss.
"""

from __future__ import annotations

from typing import Callable

import torch

from .schedule import NoiseSchedule


def eps_loss(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    t_column: bool = False,
) -> torch.Tensor:
    """Monte-Carlo estimate of E_{t, eps} ||eps - eps_theta(x_t, t)||^2 on a batch.

    Draws one t ~ U{0, ..., T-1} and one eps ~ N(0, I) per example (t first, then eps, both
    from ``generator``), builds x_t with ``schedule.add_noise`` and averages the squared error
    over every element. Predicting zero scores about 1.0, the variance of eps.

    Args:
        model: ``model(x_t, t) -> eps_hat`` of the shape of x_t.
        x0: (B, *) clean data.
        t_column: pass t as a float column (B, 1), as the study notes' training loop does for
            :class:`SimpleDenoiseNet`; otherwise as a LongTensor (B,) (TimeMLP, UNet).

    Returns:
        Scalar loss tensor.
    """
    B = x0.shape[0]
    t = torch.randint(0, schedule.num_train_timesteps, (B,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = schedule.add_noise(x0, noise, t)
    pred = model(x_t, t[:, None].to(x0.dtype) if t_column else t)
    if pred.shape != noise.shape:
        raise ValueError(f"model output has shape {tuple(pred.shape)}, expected {tuple(noise.shape)} (the shape of x0)")
    return ((noise - pred) ** 2).mean()


def compute_snr(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: alpha_bar_t / (1 - alpha_bar_t), float32 of t's shape (diffusers' name)."""
    alpha_bar = schedule.alphas_cumprod.to(t.device)[t]
    return (alpha_bar / (1.0 - alpha_bar)).float()


def min_snr_weights(schedule: NoiseSchedule, t: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Per-example loss weights min(SNR_t, gamma) / SNR_t for noise prediction (Hang et al. 2023, "Min-SNR").

    The noise-prediction loss weights every t alike, but at the small t where the signal dwarfs the
    noise, guessing the noise is hard and says little about the picture: those steps dominate
    the gradient while the large t, where shape and colour are decided, learn slowly. The weight
    is 1 where SNR_t <= gamma and falls as 1 / SNR_t above it. diffusers' training scripts call
    gamma ``snr_gamma`` (5 is their suggestion).
    """
    if isinstance(snr_gamma, bool) or not isinstance(snr_gamma, (int, float)) or not snr_gamma > 0:
        raise ValueError(f"snr_gamma must be a positive number (5 is usual), got {snr_gamma!r}")
    snr = compute_snr(schedule, t)
    return snr.clamp(max=float(snr_gamma)) / snr

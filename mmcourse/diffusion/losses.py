"""The DDPM training objective: predict the noise that was added (Ho et al. 2020, "L_simple").

With :func:`min_snr_weights` per example, the Min-SNR weighting of the same loss;
:func:`eps_loss_floor` measures the part of it no network can remove.
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


@torch.no_grad()
def eps_loss_floor(data: torch.Tensor, schedule: NoiseSchedule, n: int = 4000,
                   generator: torch.Generator | None = None, chunk: int = 250):
    """The smallest :func:`eps_loss` any network can reach when the training data is ``data``.

    The best prediction of the noise from x_t is its posterior mean E[eps | x_t, t], so the loss
    cannot go below E_{t, x0, eps} ||eps - E[eps | x_t, t]||^2 (averaged over the D coordinates,
    as eps_loss does). With the data a finite set of points x0_j, x_t given t is a mixture of
    Gaussians N(sqrt(a) x0_j, (1 - a) I), a = alpha_bar_t, so the posterior mean is exact:
    E[x0 | x_t] = sum_j w_j x0_j with w = softmax_j(-||x_t - sqrt(a) x0_j||^2 / (2 (1 - a))),
    and E[eps | x_t] = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a). The expectation over t, x0
    and eps is a Monte Carlo mean over ``n`` draws made as eps_loss makes them.

    Args:
        data: (N, D) the training points (the whole data distribution, as the trained model
            sees it).  n: Monte Carlo draws.  chunk: draws per batch (memory chunk x N).

    Returns:
        :class:`mmcourse.protocol.Estimate`: the floor with its standard error over the draws.
    """
    from ..protocol import mean

    if data.ndim != 2 or len(data) == 0:
        raise ValueError(f"data must have shape (N, D) with N > 0, got {tuple(data.shape)}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    data = data.double()
    a_table = schedule.alphas_cumprod.double()
    idx = torch.randint(0, len(data), (n,), generator=generator)
    t = torch.randint(0, schedule.num_train_timesteps, (n,), generator=generator)
    eps = torch.randn(n, data.shape[1], generator=generator, dtype=torch.float64)
    sq = (data**2).sum(1)                                                       # (N,)
    losses = []
    for s in range(0, n, chunk):
        a = a_table[t[s : s + chunk]][:, None]                                  # (c, 1)
        e = eps[s : s + chunk]                                                  # (c, D)
        x_t = a.sqrt() * data[idx[s : s + chunk]] + (1 - a).sqrt() * e
        # ||x_t - sqrt(a) x0_j||^2 for every draw and every data point: (c, N)
        d2 = (x_t**2).sum(1, keepdim=True) - 2 * a.sqrt() * (x_t @ data.T) + a * sq
        w = torch.softmax(-d2 / (2 * (1 - a)), dim=1)                            # posterior over x0_j
        eps_mean = (x_t - a.sqrt() * (w @ data)) / (1 - a).sqrt()               # E[eps | x_t, t]
        losses.append(((e - eps_mean) ** 2).mean(1))
    return mean(torch.cat(losses))


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

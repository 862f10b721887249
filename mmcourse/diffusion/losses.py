"""The DDPM training objective: predict the noise that was added (Ho et al. 2020, "L_simple")."""

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

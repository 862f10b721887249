"""Denoising diffusion (DDPM / DDIM) from its parts.

- :mod:`.schedule`: :class:`NoiseSchedule`, the betas and the forward process (``add_noise``).
- :mod:`.losses`: :func:`eps_loss`, the noise-prediction objective; :func:`min_snr_weights`.
- :mod:`.models`: noise predictors, from the study notes' :class:`SimpleDenoiseNet` to a :class:`UNet`.
- :mod:`.samplers`: :func:`ddpm_step`, :func:`ddim_step` and the :func:`sample` loop.
- :mod:`.syllabus`: the study notes' 1-D example as a seeded, testable training loop.
- :mod:`.train`: training recipes (EMA of the weights) and the shipped digits U-Net.
- :mod:`.data2d`: two moons and a spiral.  :mod:`.widgets`: the notebooks' explorers.

Time steps are 0-based, t in [0, T), as in diffusers; the step functions match diffusers'
``DDPMScheduler.step`` / ``DDIMScheduler.step`` (tested in ``tests/test_diffusion.py``).
"""

from .losses import compute_snr, eps_loss, eps_loss_floor, min_snr_weights
from .models import SimpleDenoiseNet, TimeMLP, UNet
from .samplers import StepOutput, ddim_step, ddpm_step, sample, timesteps
from .schedule import NoiseSchedule

__all__ = [
    "NoiseSchedule",
    "compute_snr",
    "eps_loss",
    "eps_loss_floor",
    "min_snr_weights",
    "SimpleDenoiseNet",
    "TimeMLP",
    "UNet",
    "StepOutput",
    "ddpm_step",
    "ddim_step",
    "sample",
    "timesteps",
]

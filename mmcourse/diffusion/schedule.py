"""The forward (noising) process of a DDPM: a table of numbers and the verbs that use it.

Index convention. The notebooks' text counts as the DDPM paper: x_0 is the clean data and step
t = 1 ... T turns x_{t-1} into x_t with noise variance beta_t. The tables here are 0-based arrays,
as in diffusers: **code index = t - 1**. So

    x_0 --q_step(., 0)--> x_1 --q_step(., 1)--> x_2 --> ... --q_step(., T-1)--> x_T

``betas[t - 1]`` is beta_t, ``alphas_cumprod[t - 1] = prod_{s=1..t} (1 - beta_s)`` is alpha_bar_t,
and ``add_noise(x0, noise, t - 1)`` draws x_t in one go, exactly the distribution reached by
applying ``q_step`` with code indices 0, 1, ..., t - 1 (t steps). ``alphas_cumprod_prev[0] = 1``
is alpha_bar_0: the clean data. Every ``t`` argument below is a code index in [0, T).

Every table is computed in float64 and then cast (float32 by default): in float32 the cumulative
product of 1000 factors close to one drifts, and 1 - beta for a beta near one (the cosine
schedule caps beta at 0.999) keeps only a few digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def _cosine_betas(T: int, max_beta: float = 0.999) -> torch.Tensor:
    """Betas of the "cosine" schedule (Nichol & Dhariwal 2021), float64 (T,).

    alpha_bar(s) = cos^2((s + 0.008) / 1.008 * pi / 2) for s in [0, 1]; beta_i is one minus the
    ratio of two neighbouring values, capped at 0.999 because alpha_bar reaches zero at s = 1.
    """

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor(
        [min(1.0 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)],
        dtype=torch.float64,
    )


@dataclass(frozen=True, eq=False, repr=False)  # tensors: no elementwise __eq__, no 1000-number repr
class NoiseSchedule:
    """The variance schedule of a DDPM and its derived tables, each of shape (T,).

    Build one with :meth:`NoiseSchedule.make`. The schedule knows nothing about networks; the
    samplers in :mod:`mmcourse.diffusion.samplers` read its tables.

    Attributes:
        betas: beta_t, the variance of the noise added at step t.
        alphas: 1 - beta_t.
        alphas_cumprod: alpha_bar_t = prod_{s<=t} alpha_s, the signal fraction left at level t.
        alphas_cumprod_prev: alpha_bar_{t-1}, with 1.0 at t = 0 (the clean data).
        posterior_variance: beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), the
            variance of q(x_{t-1} | x_t, x_0); zero at t = 0.
        posterior_mean_coef1, posterior_mean_coef2: the mean of that posterior is
            coef1_t * x_0 + coef2_t * x_t.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor

    @classmethod
    def make(
        cls,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        dtype: torch.dtype = torch.float32,
    ) -> "NoiseSchedule":
        """Build the tables for ``num_train_timesteps`` (T) steps.

        Args:
            num_train_timesteps: T > 0.
            beta_schedule: "linear" (beta_start..beta_end, DDPM), "scaled_linear" (linear in
                sqrt(beta), Stable Diffusion) or "squaredcos_cap_v2" (cosine; ignores
                beta_start/beta_end).
            dtype: dtype of the stored tables; float64 keeps full precision (used in tests).
        """
        if not isinstance(num_train_timesteps, int) or num_train_timesteps <= 0:
            raise ValueError(f"num_train_timesteps must be a positive int, got {num_train_timesteps!r}")
        T = num_train_timesteps
        if beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
        elif beta_schedule == "squaredcos_cap_v2":
            betas = _cosine_betas(T)
        else:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
        return cls.from_betas(betas, dtype=dtype)

    @classmethod
    def from_betas(cls, betas: torch.Tensor, dtype: torch.dtype = torch.float32) -> "NoiseSchedule":
        """Derive every table from given betas (T,) (diffusers' ``trained_betas``), in float64."""
        betas = torch.as_tensor(betas).detach().cpu().to(torch.float64)
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must have shape (T,) with T > 0, got {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError(f"every beta must lie in (0, 1), got min {betas.min().item()} and max {betas.max().item()}")

        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        one_minus = 1.0 - alphas_cumprod
        tables = dict(
            betas=betas,
            alphas=alphas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=alphas_cumprod_prev,
            posterior_variance=betas * (1.0 - alphas_cumprod_prev) / one_minus,
            posterior_mean_coef1=betas * alphas_cumprod_prev.sqrt() / one_minus,
            posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * alphas.sqrt() / one_minus,
        )
        return cls(**{k: v.to(dtype) for k, v in tables.items()})

    # ------------------------------------------------------------------ plumbing

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of steps of the forward chain."""
        return self.betas.shape[0]

    def __len__(self) -> int:
        return self.num_train_timesteps

    def __repr__(self) -> str:
        b = self.betas
        return (f"NoiseSchedule(T={len(self)}, beta {b[0].item():.3g}..{b[-1].item():.3g}, "
                f"alpha_bar_T={self.alphas_cumprod[-1].item():.3g}, {b.dtype}, {b.device})")

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "NoiseSchedule":
        """A copy with every table moved to ``device`` and/or cast to ``dtype``."""
        return NoiseSchedule(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t), shape (T,); decreasing in t."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def _index(self, t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Check ``t`` against the schedule and the batch of ``x``; return it as a LongTensor.

        ``t`` may be a Python int or 0-d tensor (same step for the whole batch) or a (B,) tensor
        with B = x.shape[0]. Returns shape () or (B,), on the schedule's device.
        """
        T = self.num_train_timesteps
        t = torch.as_tensor(t, device=self.betas.device)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"t must hold integer step indices, got dtype {t.dtype}")
        if t.ndim > 1:
            raise ValueError(f"t must be an int or have shape (B,), got shape {tuple(t.shape)}")
        if t.ndim == 1 and t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} entries but x has batch size {x.shape[0]}; they must match")
        if t.numel() and (t.min() < 0 or t.max() >= T):
            bad = t.min().item() if t.min() < 0 else t.max().item()
            raise ValueError(f"t must lie in [0, {T}) (0-based steps of this schedule), got {bad}")
        return t.long()

    def _gather(self, table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """table[t] shaped to broadcast against x: () -> (), (B,) -> (B, 1, ..., 1); x's device/dtype."""
        v = table[t]
        if v.ndim == 1:
            v = v.reshape(-1, *([1] * (x.ndim - 1)))
        return v.to(device=x.device, dtype=x.dtype)

    # ------------------------------------------------------------------ the verbs

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) in closed form: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.

        Args:
            x0: (B, *) clean data.  noise: (B, *) standard normal noise.
            t: int or LongTensor (B,), each in [0, T).
        Returns:
            (B, *) noisy samples x_t.
        """
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        t = self._index(t, x0)
        a = self._gather(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def q_step(self, x_prev: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One Markov step of the forward chain: sqrt(1 - beta_t) x_prev + sqrt(beta_t) noise.

        ``x_prev`` is the sample at level t - 1 (the clean data when t = 0); the result is at
        level t. Applying it for t = 0, 1, ..., k has the distribution of ``add_noise(x0, ., k)``.

        Args:
            x_prev: (B, *).  t: int or LongTensor (B,) in [0, T).  noise: (B, *) standard normal.
        Returns:
            (B, *) the sample one step noisier.
        """
        if noise.shape != x_prev.shape:
            raise ValueError(f"noise must have the shape of x_prev {tuple(x_prev.shape)}, got {tuple(noise.shape)}")
        t = self._index(t, x_prev)
        b = self._gather(self.betas, t, x_prev)
        return (1.0 - b).sqrt() * x_prev + b.sqrt() * noise

    def posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0), the target of one reverse step.

        Args:
            x0: (B, *).  x_t: (B, *) the sample at level t.  t: int or LongTensor (B,) in [0, T).
        Returns:
            mean (B, *) and variance broadcastable to it: () for an int t, (B, 1, ..., 1) for a
            batch. At t = 0 the mean is x0 and the variance zero: the step lands on clean data.
        """
        if x0.shape != x_t.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} and x_t {tuple(x_t.shape)} must have the same shape")
        t = self._index(t, x_t)
        mean = self._gather(self.posterior_mean_coef1, t, x_t) * x0 + self._gather(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, self._gather(self.posterior_variance, t, x_t)

    def predict_x0_from_eps(self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert ``add_noise`` for a given noise: (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

        Args:
            x_t: (B, *).  t: int or LongTensor (B,).  eps: (B, *) predicted noise.
        Returns:
            (B, *) the implied clean sample. Errors in eps are amplified by 1/sqrt(alpha_bar_t),
            which is large at high t.
        """
        if eps.shape != x_t.shape:
            raise ValueError(f"eps must have the shape of x_t {tuple(x_t.shape)}, got {tuple(eps.shape)}")
        t = self._index(t, x_t)
        a = self._gather(self.alphas_cumprod, t, x_t)
        return (x_t - (1.0 - a).sqrt() * eps) / a.sqrt()

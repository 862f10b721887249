"""The study notes' diffusion example, reproduced as a testable function, and its fixes.

The notes train :class:`~mmcourse.diffusion.SimpleDenoiseNet` on 1,000 numbers drawn uniformly
from [0, 1) with a linear beta schedule (1e-4 to 0.02) over T = 100 steps, Adam at 1e-3, batches of
32 shuffled by a ``DataLoader``, five epochs, and print the loss of each epoch's last batch. The
network sees the step number as one raw float (0 to 99) appended to its input.

:func:`train_syllabus_style` runs exactly that loop, seeded and with a progress bar, and returns
every batch's loss so the notebook can show what the printed numbers hide. :class:`ScaledTime`
is the first fix the notebook applies: divide the step by T before the network sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from .schedule import NoiseSchedule


def syllabus_data(n: int = 1000, seed: int = 0) -> torch.Tensor:
    """The notes' toy data set: ``n`` numbers uniform on [0, 1), shape (n, 1) float32.

    The notes call ``np.random.rand(1000, 1)``; here a seeded NumPy generator draws the same kind
    of numbers reproducibly.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1)).astype(np.float32))


class ScaledTime(nn.Module):
    """Wrap a denoiser so it receives t / scale instead of the raw step number.

    ``forward(x, t)``: t of shape (B,) or (B, 1), any dtype; the wrapped network gets a float
    column (B, 1) in [0, 1) when ``scale`` = T.
    """

    def __init__(self, net: nn.Module, scale: float) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.net, self.scale = net, float(scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(x.shape[0], 1).to(x.dtype)
        return self.net(x, t / self.scale)


@dataclass
class SyllabusHistory:
    """What :func:`train_syllabus_style` recorded: the loss and size of every batch, in order."""

    batch_losses: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    batches_per_epoch: int = 0

    def epochs(self) -> int:
        return len(self.batch_losses) // max(1, self.batches_per_epoch)

    def printed(self) -> list[float]:
        """The numbers the notes print: the loss of the last batch of each epoch."""
        n = self.batches_per_epoch
        return [self.batch_losses[(e + 1) * n - 1] for e in range(self.epochs())]

    def epoch_means(self) -> list[float]:
        """The mean loss of each epoch, weighted by batch size (every example counts once)."""
        n = self.batches_per_epoch
        out = []
        for e in range(self.epochs()):
            losses = np.array(self.batch_losses[e * n:(e + 1) * n])
            sizes = np.array(self.batch_sizes[e * n:(e + 1) * n])
            out.append(float((losses * sizes).sum() / sizes.sum()))
        return out


def train_syllabus_style(
    model: nn.Module,
    data: torch.Tensor,
    timesteps: int = 100,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    t_column: bool = True,
    schedule: NoiseSchedule | None = None,
    verbose: bool = True,
    progress: bool = True,
) -> SyllabusHistory:
    """The notes' training loop: shuffled mini-batches, a random step per example, MSE on the noise.

    For each batch: t ~ U{0, ..., T-1} per example, eps ~ N(0, I),
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, loss = mean((eps - model(x_t, t))^2),
    one Adam step. After each epoch it prints ``Epoch e/E, Loss: <last batch's loss>`` as the notes do.

    Args:
        model: the denoiser, called as ``model(x_t, t)``.
        data: (N, D) training data.
        timesteps: T, used for the notes' linear schedule (1e-4 to 0.02) unless ``schedule`` is given.
        t_column: pass t as the notes do, a float column (B, 1) holding the raw step; otherwise
            a LongTensor (B,) (for :class:`~mmcourse.diffusion.TimeMLP`).
        verbose: print the notes' per-epoch line.  progress: a tqdm.auto bar over all batches.

    Returns:
        A :class:`SyllabusHistory` with every batch's loss. The model is left in eval mode.
    """
    if data.ndim != 2:
        raise ValueError(f"data must have shape (N, D), got {tuple(data.shape)}")
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    schedule = schedule or NoiseSchedule.make(timesteps, "linear", 1e-4, 0.02)
    T = schedule.num_train_timesteps
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(data), batch_size=batch_size, shuffle=True, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    alpha_bar = schedule.alphas_cumprod

    hist = SyllabusHistory(batches_per_epoch=len(loader))
    model.train()
    with tqdm(total=epochs * len(loader), desc="syllabus loop", disable=not progress, mininterval=0.5) as bar:
        for epoch in range(epochs):
            for (x0,) in loader:
                B = x0.shape[0]
                t = torch.randint(0, T, (B,), generator=g)
                a = alpha_bar[t].view(B, 1)
                noise = torch.randn(x0.shape, generator=g)
                x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
                pred = model(x_t, t[:, None].float() if t_column else t)
                loss = ((noise - pred) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                hist.batch_losses.append(loss.item())
                hist.batch_sizes.append(B)
                bar.update(1)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}, Loss: {loss.item():.6f}")
    model.eval()
    return hist

"""Training the text-to-image model: stage 1, the autoencoder; stage 2, the text-conditioned denoiser.

Stage 1 trains the :class:`~mmcourse.diffusion.autoencoder.AutoEncoder` (32x32x3 <-> 8x8x8) with a
pixel loss that pays extra for the object and its outline (:func:`autoencoder_loss`). Stage 2
trains a :class:`~mmcourse.diffusion.conditioning.TextUNet` on the latents of captioned one-object
scenes (the "train" split: the held-out colour-shape pairs never appear), conditioned on the
frozen text tower of the shipped ``clip_shapes_broad``, with the caption dropped to the empty
prompt 10% of the time (classifier-free guidance) and the noise loss Min-SNR weighted
(:func:`text_eps_loss`). :func:`train_text2image` runs both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..diffusion.autoencoder import AutoEncoder
from ..diffusion.conditioning import FrozenTextEncoder, TextCondition, TextUNet
from ..diffusion.guidance import condition_dropout
from ..diffusion.losses import min_snr_weights
from ..diffusion.schedule import NoiseSchedule
from ..train import History, fit, seed_everything
from .judges import object_masks
from .model import T2IConfig, TextToImage, text_encoder, world

AE_OBJECT_THRESHOLD = 0.2  # autoencoder_loss weights more pixels as the object than the judges count (0.3)

# ---------------------------------------------------------------------------------------------
# Stage 1: the autoencoder
# ---------------------------------------------------------------------------------------------


def object_edges(on_object: torch.Tensor) -> torch.Tensor:
    """The pixels on either side of an object's outline: dilate minus erode (3x3) of a (B, 1, H, W) 0/1 mask."""
    dilated = F.max_pool2d(on_object, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-on_object, 3, stride=1, padding=1)
    return dilated - eroded


def autoencoder_loss(ae: AutoEncoder, images: torch.Tensor, object_weight: float = 20.0, edge_weight: float = 0.0,
                     latent_noise: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixel loss (L1 + squared error) weighted ``1 + object_weight`` on the object and
    ``+ edge_weight`` more on the pixels either side of its outline.

    An object covers a few percent of the image, and a plain pixel loss is happy to blur it into
    the background. Its outline is what tells a square from a circle or a cross from a diamond,
    and the few pixels there are the ones a small autoencoder rounds off first: the edge weight
    pays for them (the README's notes for notebook 08 give the shapes kept with and without it). With
    ``latent_noise`` = sigma > 0 the decoder draws the image from the latents plus Gaussian noise
    of sigma times each channel's spread in the batch: a VAE's sampling step with a fixed
    variance. It teaches the decoder to forgive small errors in its input, which is what the
    latents a denoiser produces will have.
    """
    z = ae.encode_raw(images)                                               # (B, C, S/4, S/4)
    if latent_noise:
        spread = z.detach().std(dim=(0, 2, 3), keepdim=True)               # (1, C, 1, 1)
        z = z + latent_noise * spread * torch.randn(z.shape, generator=generator)
    recon = ae.decode_raw(z)
    on_object = object_masks(images, threshold=AE_OBJECT_THRESHOLD)[0][:, None].float()  # (B, 1, S, S)
    weight = 1 + object_weight * on_object
    if edge_weight:
        weight = weight + edge_weight * object_edges(on_object)
    err = (recon - images).abs()
    return ((err + err**2) * weight).mean()   # L1 keeps edges sharper than MSE alone


def train_autoencoder(ae: AutoEncoder, steps: int = 2000, batch_size: int = 32, n_train: int = 20_000, lr: float = 3e-3,
                      latent_noise: float = 0.0, edge_weight: float = 0.0, seed: int = 0,
                      progress: bool = True) -> History:
    """Train ``ae`` on "train" scenes, then standardise its latents; returns the loss history.

    ``latent_noise``, ``edge_weight``: see :func:`autoencoder_loss`.
    """
    images = world(ae.image_size).sample(n_train, seed=seed, split="train").images

    def loss_fn(m: nn.Module, g: torch.Generator) -> torch.Tensor:
        batch = images[torch.randint(0, len(images), (batch_size,), generator=g)]
        return autoencoder_loss(m, batch, edge_weight=edge_weight, latent_noise=latent_noise, generator=g)

    hist = fit(ae, loss_fn, steps=steps, lr=lr, seed=seed, warmup=min(50, steps - 1), cosine=True, grad_clip=1.0,
               progress=progress, desc="autoencoder")
    ae.eval()
    ae.fit_latent_scale(images[:4000])
    return hist


# ---------------------------------------------------------------------------------------------
# Stage 2: the text-conditioned denoiser on latents
# ---------------------------------------------------------------------------------------------


@dataclass
class LatentData:
    """Encoded training pairs: latents (N, 8, 8, 8), caption index (N,) into the unique captions'
    :class:`TextCondition` (U rows), and the empty prompt's (1 row)."""

    latents: torch.Tensor
    caption: torch.Tensor
    texts: TextCondition
    null: TextCondition
    captions: list[str]


@torch.no_grad()
def encode_dataset(ae: AutoEncoder, encoder: FrozenTextEncoder, n: int, seed: int = 1, split: str = "train") -> LatentData:
    """n captioned one-object scenes, encoded once: images by the autoencoder, captions by the text tower."""
    b = world(ae.image_size).sample(n, seed=seed, split=split)
    latents = torch.cat([ae.encode(b.images[i:i + 2048]) for i in range(0, n, 2048)])
    unique = sorted(set(b.captions))
    index = {c: i for i, c in enumerate(unique)}
    return LatentData(latents, torch.tensor([index[c] for c in b.captions]), encoder(unique), encoder(""), unique)


def text_eps_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, text: TextCondition,
                  null: TextCondition, p_uncond: float, generator: torch.Generator,
                  snr_gamma: float | None = None) -> torch.Tensor:
    """The conditioned noise-prediction loss with condition dropout (the classifier-free guidance recipe).

    Each caption becomes the empty prompt with probability ``p_uncond``; then as :func:`eps_loss`:
    t uniform in [0, T), x_t = add_noise(x0, eps, t), MSE between eps and model(x_t, t, text).
    With ``snr_gamma`` each example's error is weighted by :func:`min_snr_weights` (Min-SNR).
    """
    text = condition_dropout(text, null, p_uncond, generator)
    B = x0.shape[0]
    t = torch.randint(0, schedule.num_train_timesteps, (B,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    pred = model(schedule.add_noise(x0, noise, t), t, text)
    if snr_gamma is None:
        return F.mse_loss(pred, noise)
    per_example = ((pred - noise) ** 2).flatten(1).mean(dim=1)             # (B,)
    return (min_snr_weights(schedule, t, snr_gamma) * per_example).mean()


def train_denoiser(model: TextUNet, schedule: NoiseSchedule, data: LatentData, steps: int, batch_size: int = 128,
                   lr: float = 2e-3, p_uncond: float = 0.1, seed: int = 0, ema_decay: float | None = 0.995,
                   snr_gamma: float | None = None, progress: bool = True) -> tuple[nn.Module, History]:
    """Train ``model`` on ``data``; return (the EMA model in eval mode, or the model itself, and the history).

    ``snr_gamma``: Min-SNR loss weighting (see :func:`text_eps_loss`); None weights every t alike.
    """
    emas, hist = train_denoiser_emas(model, schedule, data, steps, batch_size=batch_size, lr=lr, p_uncond=p_uncond,
                                     seed=seed, ema_decays=(ema_decay,) if ema_decay else (), snr_gamma=snr_gamma,
                                     progress=progress)
    return (emas[ema_decay] if ema_decay else model.eval()), hist


def train_denoiser_emas(model: TextUNet, schedule: NoiseSchedule, data: LatentData, steps: int,
                        batch_size: int = 128, lr: float = 2e-3, p_uncond: float = 0.1, seed: int = 0,
                        ema_decays: Sequence[float] = (0.995,), snr_gamma: float | None = None,
                        progress: bool = True) -> tuple[dict[float, nn.Module], History]:
    """:func:`train_denoiser` keeping one exponential moving average of the weights per decay in
    ``ema_decays`` (``ema = d * ema + (1 - d) * weights`` after every step); returns
    ({decay: that average in eval mode}, the history).

    The averages only read the weights, so one run gives the model each decay would have given
    alone, at the cost of a few copies of a small network.
    """
    for d in ema_decays:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 < d < 1.0:
            raise ValueError(f"ema_decays must hold numbers in (0, 1), got {ema_decays!r}")
    emas = {float(d): AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d)) for d in ema_decays}

    def loss_fn(m: nn.Module, g: torch.Generator) -> torch.Tensor:
        for ema in emas.values():
            ema.update_parameters(m)
        idx = torch.randint(0, len(data.latents), (batch_size,), generator=g)
        return text_eps_loss(m, schedule, data.latents[idx], data.texts.index(data.caption[idx]), data.null,
                             p_uncond, g, snr_gamma)

    hist = fit(model, loss_fn, steps=steps, lr=lr, seed=seed, warmup=min(100, steps - 1), cosine=True, grad_clip=1.0,
               progress=progress, desc="text-to-image denoiser")
    for ema in emas.values():
        ema.update_parameters(model)
    return {d: ema.module.eval() for d, ema in emas.items()}, hist


def train_text2image(cfg: T2IConfig | None = None, ae_steps: int = 2000, steps: int = 4000, batch_size: int = 64,
                     n_train: int = 20_000, ae_latent_noise: float = 0.05, ae_edge_weight: float = 0.0,
                     snr_gamma: float | None = None, seed: int = 0, progress: bool = True,
                     stage1: tuple | None = None, ema_decays: Sequence[float] = (0.995,)) -> tuple[TextToImage, dict]:
    """Both stages; returns the model and {"ae_history", "history", "ae_seconds", "seconds", "ae_cpu_seconds",
    "cpu_seconds", "denoisers"} (wall and CPU time of each stage; CPU time counts every thread).

    The model's denoiser is the weights' moving average with the first of ``ema_decays``;
    "denoisers" holds one per decay ({decay: U-Net}, see :func:`train_denoiser_emas`).

    ``stage1`` = (autoencoder state, its history, its seconds[, its CPU seconds]) from an earlier run
    of stage 1 with the same config, seed and number of threads skips retraining it (stage 1 is then
    deterministic).
    """
    cfg = cfg or T2IConfig()
    seed_everything(seed)
    ae = cfg.autoencoder()
    if stage1 is None:
        t0, c0 = time.perf_counter(), time.process_time()
        ae_hist = train_autoencoder(ae, steps=ae_steps, latent_noise=ae_latent_noise, edge_weight=ae_edge_weight,
                                    seed=seed, progress=progress)
        ae_seconds, ae_cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        ae.load_state_dict(stage1[0])
        ae_hist, ae_seconds = stage1[1], stage1[2]
        ae_cpu = stage1[3] if len(stage1) > 3 else None
        ae.eval()
    encoder = text_encoder()
    data = encode_dataset(ae, encoder, n_train, seed=seed + 1)
    seed_everything(seed)
    unet = cfg.denoiser()
    schedule = cfg.schedule()
    t0, c0 = time.perf_counter(), time.process_time()
    denoisers, hist = train_denoiser_emas(unet, schedule, data, steps, batch_size=batch_size, p_uncond=cfg.p_uncond,
                                          seed=seed, ema_decays=ema_decays, snr_gamma=snr_gamma, progress=progress)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    first = denoisers[float(ema_decays[0])]
    return TextToImage(ae, first, encoder, schedule, cfg), dict(ae_history=ae_hist, history=hist, ae_seconds=ae_seconds,
                                                                seconds=seconds, ae_cpu_seconds=ae_cpu, cpu_seconds=cpu,
                                                                denoisers=denoisers)

"""Text-to-image on ShapesWorld: the data, the two training stages, sampling and the measurements.

Stage 1 trains the :class:`~mmcourse.diffusion.autoencoder.AutoEncoder` (32x32x3 <-> 8x8x8).
Stage 2 trains a :class:`~mmcourse.diffusion.conditioning.TextUNet` on the latents of captioned
one-object scenes (the "train" split: the held-out colour-shape pairs never appear), conditioned
on the frozen text tower of the shipped ``clip_shapes_broad``, with the caption dropped to the
empty prompt 10% of the time (classifier-free guidance) and the noise loss Min-SNR weighted.
:func:`generate` samples with the existing DDPM/DDIM loop through
:class:`~mmcourse.diffusion.guidance.GuidedDenoiser` and decodes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data.shapes import ShapesWorld
from ..diffusion.autoencoder import AutoEncoder
from ..diffusion.conditioning import FrozenTextEncoder, TextCondition, TextUNet
from ..diffusion.guidance import GuidedDenoiser, check_guidance_scale, condition_dropout
from ..diffusion.losses import min_snr_weights
from ..diffusion.samplers import METHODS, sample
from ..diffusion.schedule import NoiseSchedule
from ..train import History, fit, seed_everything
from .judges import object_masks

CHECKPOINT = "text2image_shapes"
TEXT_TOWER = "clip_shapes_broad"
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
ONEDNN_OFF_FOR_SAMPLING = True  # see generate()
AE_OBJECT_THRESHOLD = 0.2  # autoencoder_loss weights more pixels as the object than the judges count (0.3)


def world(image_size: int = 32) -> ShapesWorld:
    """One object per scene, the six named colours (what the prompts can name)."""
    return ShapesWorld(image_size=image_size, min_objects=1, max_objects=1, colour_mode="named")


@dataclass
class T2IConfig:
    """Everything needed to rebuild the model (stored in the registry).

    ``clip_sample_range``: :func:`generate` clamps each step's predicted clean latent to
    [-r, r] (latents are standardised, so r counts standard deviations) and re-derives the noise
    from it; without it a few wild predictions at the noisiest steps tint whole backgrounds.
    """

    ae: dict = field(default_factory=lambda: dict(in_channels=3, latent_channels=8, width=128, image_size=32))
    unet: dict = field(default_factory=lambda: dict(in_channels=8, base=32, channel_mults=[1, 1], image_size=8,
                                                    context_dim=64, pooled_dim=64, num_heads=4))
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    p_uncond: float = 0.1
    clip_sample_range: float | None = 3.0

    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule.make(self.num_train_timesteps, self.beta_schedule)

    def autoencoder(self) -> AutoEncoder:
        return AutoEncoder(**self.ae)

    def denoiser(self) -> TextUNet:
        kw = dict(self.unet)
        kw["channel_mults"] = tuple(kw["channel_mults"])
        return TextUNet(**kw)


def text_encoder(name: str = TEXT_TOWER) -> FrozenTextEncoder:
    """The frozen text tower of a shipped CLIP with its tokenizer."""
    from ..clip.tasks import load_clip
    from ..clip.tokenizer import WordTokenizer

    clip = load_clip(name)
    return FrozenTextEncoder(clip.text, WordTokenizer(context_length=clip.cfg.text.context_length))


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
    pays for them (notebook 08 measures the shape labels kept with and without it). With
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
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) if ema_decay else None

    def loss_fn(m: nn.Module, g: torch.Generator) -> torch.Tensor:
        if ema is not None:
            ema.update_parameters(m)
        idx = torch.randint(0, len(data.latents), (batch_size,), generator=g)
        return text_eps_loss(m, schedule, data.latents[idx], data.texts.index(data.caption[idx]), data.null,
                             p_uncond, g, snr_gamma)

    hist = fit(model, loss_fn, steps=steps, lr=lr, seed=seed, warmup=min(100, steps - 1), cosine=True, grad_clip=1.0,
               progress=progress, desc="text-to-image denoiser")
    if ema is None:
        return model.eval(), hist
    ema.update_parameters(model)
    return ema.module.eval(), hist


# ---------------------------------------------------------------------------------------------
# The whole model and sampling
# ---------------------------------------------------------------------------------------------


@dataclass
class TextToImage:
    """The pieces of the trained model: autoencoder, denoiser, frozen text encoder, schedule."""

    ae: AutoEncoder
    unet: TextUNet
    encoder: FrozenTextEncoder
    schedule: NoiseSchedule
    cfg: T2IConfig


def check_sampler(method: str, steps: int, schedule: NoiseSchedule) -> None:
    """ValueError naming ``sampler`` or ``steps`` when they are not usable."""
    if method not in METHODS:
        raise ValueError(f"sampler must be one of {METHODS}, got {method!r}")
    T = schedule.num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, {T}] (the training steps), got {steps!r}")


@torch.no_grad()
def generate(model: TextToImage, prompts: str | list[str], guidance_scale: float = 3.0, sampler: str = "ddim",
             steps: int = 50, seed: int = 0, n: int | None = None, return_trajectory: bool = False,
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, 32, 32) in [0, 1] for the prompts (a str with ``n`` gives n samples of one prompt).

    Sampling runs in latent space with the existing :func:`mmcourse.diffusion.sample` loop on the
    guided noise prediction, then the autoencoder decodes. With ``return_trajectory`` also the
    decoded reverse trajectory (steps + 1, B, 3, 32, 32), x_T first.

    Raises ValueError naming the argument for an unknown word in a prompt (with the nearest known
    words), a negative guidance_scale, an unknown sampler or steps out of [1, T].
    """
    w = check_guidance_scale(guidance_scale)
    check_sampler(sampler, steps, model.schedule)
    if isinstance(prompts, str):
        prompts = [prompts] * (n or 1)
    elif n is not None and n != len(prompts):
        raise ValueError(f"n must be None or len(prompts) = {len(prompts)} when prompts is a list, got {n!r}")
    text = model.encoder.encode_tokens(model.encoder.tokenize(prompts, "prompt"))
    null = model.encoder("")
    denoiser = GuidedDenoiser(model.unet, text, null, w)
    shape = (len(prompts), *model.ae.latent_shape)
    r = model.cfg.clip_sample_range
    # On an 8x8 grid oneDNN's set-up per convolution costs more than the arithmetic; PyTorch's
    # own convolution is faster here (bench/results/text2image_guidance.json times both).
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn and not ONEDNN_OFF_FOR_SAMPLING
    try:
        # inference_mode also skips the bookkeeping no_grad keeps (version counters, views): one
        # image with DDIM-50 took 146 ms instead of 161 ms on one thread. Decoding happens outside
        # it, so the images returned are ordinary tensors.
        with torch.inference_mode():
            out = sample(denoiser, model.schedule, shape, steps, method=sampler,
                         generator=torch.Generator().manual_seed(seed), return_trajectory=return_trajectory,
                         clip_sample=r is not None, clip_sample_range=r or 1.0, rederive_eps=True)
    finally:
        torch.backends.mkldnn.enabled = onednn
    if not return_trajectory:
        return model.ae.decode(out)
    z, traj = out
    decoded = torch.stack([model.ae.decode(step) for step in traj])
    return model.ae.decode(z), decoded


def load_text2image(name: str = CHECKPOINT) -> TextToImage:
    """The shipped model (hash-checked) in eval mode."""
    from ..weights import load

    state, e = load(name)
    cfg = T2IConfig(**{k: v for k, v in e.config.items() if k in T2IConfig.__dataclass_fields__})
    ae, unet = cfg.autoencoder(), cfg.denoiser()
    ae.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("ae.")})
    unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
    return TextToImage(ae.eval(), unet.eval(), text_encoder(), cfg.schedule(), cfg)


def state_dict(model: TextToImage) -> dict[str, torch.Tensor]:
    """One flat state dict: "ae.*" and "unet.*" (the text tower stays in its own checkpoint)."""
    out = {f"ae.{k}": v for k, v in model.ae.state_dict().items()}
    out.update({f"unet.{k}": v for k, v in model.unet.state_dict().items()})
    return {k: v.contiguous() for k, v in out.items()}


def train_text2image(cfg: T2IConfig | None = None, ae_steps: int = 2000, steps: int = 4000, batch_size: int = 64,
                     n_train: int = 20_000, ae_latent_noise: float = 0.05, ae_edge_weight: float = 0.0,
                     snr_gamma: float | None = None, seed: int = 0, progress: bool = True,
                     stage1: tuple[dict, History, float] | None = None) -> tuple[TextToImage, dict]:
    """Both stages; returns the model and {"ae_history", "history", "ae_seconds", "seconds"}.

    ``stage1`` = (autoencoder state, its history, its seconds) from an earlier run of stage 1 with
    the same config, seed and number of threads skips retraining it (stage 1 is then deterministic).
    """
    cfg = cfg or T2IConfig()
    seed_everything(seed)
    ae = cfg.autoencoder()
    if stage1 is None:
        t0 = time.perf_counter()
        ae_hist = train_autoencoder(ae, steps=ae_steps, latent_noise=ae_latent_noise, edge_weight=ae_edge_weight,
                                    seed=seed, progress=progress)
        ae_seconds = time.perf_counter() - t0
    else:
        ae.load_state_dict(stage1[0])
        ae_hist, ae_seconds = stage1[1], stage1[2]
        ae.eval()
    encoder = text_encoder()
    data = encode_dataset(ae, encoder, n_train, seed=seed + 1)
    seed_everything(seed)
    unet = cfg.denoiser()
    schedule = cfg.schedule()
    t0 = time.perf_counter()
    unet, hist = train_denoiser(unet, schedule, data, steps, batch_size=batch_size, p_uncond=cfg.p_uncond, seed=seed,
                                snr_gamma=snr_gamma, progress=progress)
    seconds = time.perf_counter() - t0
    return TextToImage(ae, unet, encoder, schedule, cfg), dict(ae_history=ae_hist, history=hist, ae_seconds=ae_seconds,
                                                               seconds=seconds)


def config_dict(cfg: T2IConfig) -> dict:
    return asdict(cfg)


def load_results(name: str) -> dict:
    """A stored measurement, ``bench/results/<name>.json``."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no stored result {name!r} ({path} is missing)")
    return json.loads(path.read_text())


def ground_and_segment(images: torch.Tensor, phrase: str, glip=None, sam=None) -> dict:
    """Find what ``phrase`` names in each generated picture with notebook 07's GLIP, then cut it
    out with notebook 06's SAM, the GLIP box as SAM's box prompt.

    images: (B, 3, 32, 32) in [0, 1], one object each. Both models were trained on 64 x 64
    ShapesWorld scenes, whose geometry scales with the image size, so GLIP sees each picture
    upsampled 2x and its box is scaled back; SAM resizes the input itself. Returns the box per
    image (B, 4) xyxy in 32-pixel coordinates (NaN where GLIP found nothing), GLIP's score (B,),
    SAM's mask (B, 32, 32) bool, and the IoU of that mask with the judges' object pixels (B,).
    """
    from ..glip.predict import grounding_predict
    from ..glip.tasks import load_glip
    from ..sam.tasks import load_sam, mask_iou
    from .judges import object_masks

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"phrase must be a non-empty string such as 'yellow cross', got {phrase!r}")
    glip = load_glip() if glip is None else glip
    sam = load_sam() if sam is None else sam
    B, _, H, W = images.shape
    scale = glip.cfg.img_size / H
    big = F.interpolate(images, size=(glip.cfg.img_size, glip.cfg.img_size), mode="bilinear", align_corners=False)
    prompt = phrase.strip().rstrip(".") + "."
    boxes = torch.full((B, 4), float("nan"))
    scores = torch.zeros(B)
    masks = torch.zeros(B, H, W, dtype=torch.bool)
    with torch.no_grad():
        for i in range(B):
            found = grounding_predict(glip, big[i].clamp(0, 1), prompt)
            if len(found["scores"]) == 0:
                continue
            boxes[i] = found["boxes"][0].float() / scale  # boxes come sorted by score
            scores[i] = found["scores"][0]
            sam.set_image(images[i].clamp(0, 1))
            masks[i] = sam.predict(box=boxes[i], multimask_output=False).masks[0]
    truth, _ = object_masks(images.clamp(0, 1))
    return {"boxes": boxes, "scores": scores, "masks": masks, "iou": mask_iou(masks, truth)}

"""The text-to-image model: its config, its pieces, the shipped checkpoint.

:class:`T2IConfig` (stored in the registry) builds the :class:`~mmcourse.diffusion.autoencoder.AutoEncoder`
(32x32x3 <-> 8x8x8), the :class:`~mmcourse.diffusion.conditioning.TextUNet` denoiser and the noise
schedule; the text tower is the frozen one of the shipped ``clip_shapes_broad``
(:func:`text_encoder`). :class:`TextToImage` holds the four pieces; :func:`load_text2image` loads
the shipped checkpoint; :func:`world` is the ShapesWorld the model is trained and judged on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..data.shapes import ShapesWorld
from ..diffusion.autoencoder import AutoEncoder
from ..diffusion.conditioning import FrozenTextEncoder, TextUNet
from ..diffusion.schedule import NoiseSchedule

CHECKPOINT = "text2image_shapes"
TEXT_TOWER = "clip_shapes_broad"


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


@dataclass
class TextToImage:
    """The pieces of the trained model: autoencoder, denoiser, frozen text encoder, schedule."""

    ae: AutoEncoder
    unet: TextUNet
    encoder: FrozenTextEncoder
    schedule: NoiseSchedule
    cfg: T2IConfig


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


def config_dict(cfg: T2IConfig) -> dict:
    return asdict(cfg)

"""Sampling the text-to-image model: prompts -> guided DDIM/DDPM in latent space -> decoded images.

:func:`generate` checks its arguments (ValueError naming the argument), encodes the prompts with
the frozen text tower, runs the existing :func:`mmcourse.diffusion.sample` loop on the guided noise
prediction of :class:`~mmcourse.diffusion.guidance.GuidedDenoiser`, and decodes the latents.
"""

from __future__ import annotations

import numpy as np
import torch

from ..diffusion.guidance import GuidedDenoiser, check_guidance_scale, guided_ddim_sample
from ..diffusion.samplers import METHODS, sample
from ..diffusion.schedule import NoiseSchedule
from .model import TextToImage

ONEDNN_OFF_FOR_SAMPLING = True  # see generate()


def check_sampler(method: str, steps: int, schedule: NoiseSchedule) -> None:
    """ValueError naming ``sampler`` or ``steps`` when they are not usable."""
    if method not in METHODS:
        raise ValueError(f"sampler must be one of {METHODS}, got {method!r}")
    T = schedule.num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, {T}] (the training steps), got {steps!r}")


def check_seed(seed: object) -> int:
    """``seed`` as an int; ValueError naming ``seed`` unless it is an int >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def check_prompts(prompts: object, n: object = None) -> list[str]:
    """The prompts as a list (a str with ``n`` gives n copies); ValueError naming ``prompts`` or ``n``.

    A prompt must be a non-empty string: the empty prompt is the unconditional input, which
    ``guidance_scale=0`` already asks for (with any prompt).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be None or a positive int, got {n!r}")
    if isinstance(prompts, str):
        prompts = [prompts] * (n or 1)
    elif not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a str or a non-empty list of str, got {prompts!r}")
    elif n is not None and n != len(prompts):
        raise ValueError(f"n must be None or len(prompts) = {len(prompts)} when prompts is a list, got {n!r}")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompts must be non-empty strings such as 'a red circle' (guidance_scale=0 gives "
                             f"the unconditional model), got {p!r}")
    return list(prompts)


@torch.no_grad()
def generate(model: TextToImage, prompts: str | list[str], guidance_scale: float = 3.0, sampler: str = "ddim",
             steps: int = 50, seed: int = 0, n: int | None = None, return_trajectory: bool = False,
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, 32, 32) in [0, 1] for the prompts (a str with ``n`` gives n samples of one prompt).

    Sampling runs in latent space with the existing :func:`mmcourse.diffusion.sample` loop on the
    guided noise prediction, then the autoencoder decodes. With ``return_trajectory`` also the
    decoded reverse trajectory (steps + 1, B, 3, 32, 32), x_T first.

    Raises ValueError naming the argument for an empty or unknown-word prompt (with the nearest
    known words), a guidance_scale that is not a finite number >= 0, an unknown sampler, steps out
    of [1, T], a seed that is not an int >= 0 and n that is not a positive int.
    """
    w = check_guidance_scale(guidance_scale)
    check_sampler(sampler, steps, model.schedule)
    check_seed(seed)
    prompts = check_prompts(prompts, n)
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


@torch.no_grad()
def reverse_process(model: TextToImage, prompt: str, guidance_scale: float, steps: int = 50, seed: int = 0
                    ) -> dict[str, torch.Tensor]:
    """One prompt's guided DDIM run, step by step: what :func:`generate` computes, kept and decoded.

    Returns {"t": the timesteps (steps,), "x_t": the decoded latents from x_T to x_0
    (steps + 1, 3, 32, 32), "x0_hat": each step's decoded prediction of the clean latent
    (steps, 3, 32, 32)}; "x_t"[-1] is ``generate(model, prompt, guidance_scale, "ddim", steps, seed)``.
    """
    from ..diffusion.samplers import timesteps

    [prompt] = check_prompts(prompt)
    xs, x0s = guided_trajectories(model, [prompt], guidance_scale, steps, seed)
    return {"t": timesteps(model.schedule, steps), "x_t": model.ae.decode(xs[:, 0]), "x0_hat": model.ae.decode(x0s[:, 0])}


@torch.no_grad()
def guided_trajectories(model: TextToImage, prompts: list[str], guidance_scale: float, steps: int = 50,
                        seed: int = 0, n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided DDIM runs of several prompts in one batch, ``n`` samples of prompt i from the noise of
    seed ``seed + i`` (so prompt i's runs are ``generate(model, prompt_i, guidance_scale, "ddim",
    steps, seed + i, n=n)``'s, and with n = 1 :func:`reverse_process`'s): the latent trajectories
    (steps + 1, P * n, *latent) and each step's predicted clean latents (steps, P * n, *latent),
    prompt 0's n samples first."""
    w = check_guidance_scale(guidance_scale)
    check_sampler("ddim", steps, model.schedule)
    check_seed(seed)
    prompts = check_prompts(prompts)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (samples per prompt), got {n!r}")
    text = model.encoder.encode_tokens(model.encoder.tokenize([p for p in prompts for _ in range(n)], "prompt"))
    x_T = torch.cat([torch.randn((n, *model.ae.latent_shape), generator=torch.Generator().manual_seed(seed + i))
                     for i in range(len(prompts))])
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn and not ONEDNN_OFF_FOR_SAMPLING
    try:
        _, xs, x0s = guided_ddim_sample(model.unet, text, model.encoder(""), w, model.schedule, x_T, steps,
                                        model.cfg.clip_sample_range)
    finally:
        torch.backends.mkldnn.enabled = onednn
    return xs, x0s


@torch.no_grad()
def cross_attention_maps(model: TextToImage, prompt: str, guidance_scale: float, steps: int = 50, seed: int = 0,
                         at: tuple[int, ...] = (10, 25, 45)) -> dict:
    """Which latent positions read which words, at a few steps of one prompt's guided DDIM run.

    At each step index in ``at`` (0 = the first, noisiest step), the prompted pass of the U-Net
    on that step's x_t records the weights of its cross-attention layers at full resolution
    (8x8: the first down block and the last up block), averaged over heads and over the layers.
    Returns {"tokens": the prompt's real tokens, <start> and <end> included (L,), "t": the
    timesteps (len(at),), "maps": (len(at), L, 8, 8), each position's weights summing to 1 over
    the L tokens}.
    """
    from ..diffusion.conditioning import recorded_cross_attention
    from ..diffusion.samplers import timesteps

    w = check_guidance_scale(guidance_scale)
    check_sampler("ddim", steps, model.schedule)
    check_seed(seed)
    [prompt] = check_prompts(prompt)
    if not at or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < steps for i in at):
        raise ValueError(f"at must hold step indices in [0, steps = {steps}), got {at!r}")
    tokens = model.encoder.tokenize([prompt], "prompt")
    text = model.encoder.encode_tokens(tokens)
    x_T = torch.randn((1, *model.ae.latent_shape), generator=torch.Generator().manual_seed(seed))
    _, xs, _ = guided_ddim_sample(model.unet, text, model.encoder(""), w, model.schedule, x_T, steps,
                                  model.cfg.clip_sample_range)
    ts = timesteps(model.schedule, steps)
    side = model.ae.latent_shape[-1]
    real = text.mask[0]
    maps = []
    for i in at:
        with recorded_cross_attention(model.unet) as rec:
            model.unet(xs[i], ts[i:i + 1], text)
        full = [p[0].mean(dim=0) for _, p in rec if p.shape[2] == side * side]   # (N, L) per layer
        maps.append(torch.stack(full).mean(dim=0)[:, real].T.reshape(-1, side, side))
    itos = model.encoder.tokenizer.itos
    return {"tokens": [itos[j] for j in tokens[0][real].tolist()], "t": ts[list(at)], "maps": torch.stack(maps)}

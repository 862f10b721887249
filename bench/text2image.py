"""Text-to-image measurements behind notebook 08: ``python -m bench text2image``.

Stored in bench/results/:

- ``text2image_space.json``: pixel space at 16x16 against latent space (32x32x3 -> 8x8x8):
  whether the course's shape judge (the shipped 32x32 ViT) can judge each (agreement with
  ShapesWorld's labels on real scenes, 16x16 scenes upsampled), and the cost of one training
  step and one guided sampling step of the same denoiser on each.
- ``text2image_autoencoders.json``: how many numbers per 4x4 patch the shape judge needs: the
  judge on real scenes blurred by a Gaussian, the best linear code (a per-patch PCA) with k numbers,
  and learned autoencoders (``train_autoencoder``, 2,000 steps, width 64) with 4, 8 and 16 latent
  channels, and with 16 channels but a GroupNorm + SiLU before each 1x1 projection (Stable
  Diffusion's ``conv_norm_out``), so that no straight linear path is left.
- ``text2image_guidance.json``: the shipped model at w in {0, 1, 2, 3, 4, 8} (3: the scale chosen on validation draws) with DDIM-50:
  per-attribute accuracy on one draw of 300 seen and one of 300 held-out prompts (seed 0: the
  shape of the curve over a wide range of w; the registry's numbers come from the protocol's
  test draws, :mod:`mmcourse.text2image.evaluate`), diversity (pixel variance across seeds of
  one prompt) and the CLIP score; DDIM-50 time for one image and per image in a batch.
- ``text2image_heldout.json``: the shipped model on held-out colour-shape pairs at its chosen
  guidance scale, on the protocol's test draws (5 seeds x 400 prompts), each attribute with its
  standard error: the held-out counterpart of the registry's seen-pair numbers.
- ``text2image_guidance_gain.json``: what guidance adds over w = 1 on the registry's own test
  draws (its scale, its prompts per seed), measured prompt by prompt
  (:func:`~mmcourse.text2image.evaluate.guidance_gain`): the paired difference with its standard
  error, beside the two shares, which reproduce the registry's and the checkpoint's sha256 (rerun
  after every rebuild: the tests compare them).

One thread throughout; the load average is stored with each file (a busy machine is slower).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results"
GUIDANCE_SCALES = (0.0, 1.0, 2.0, 3.0, 4.0, 8.0)


def _store(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")


def _median_ms(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def space() -> dict:
    """Pixel 16x16 against the shipped latents (8x8x8): judge agreement and per-step costs."""
    from mmcourse.data.shapes import ShapesWorld
    from mmcourse.diffusion.conditioning import TextCondition
    from mmcourse.text2image.judges import Judges
    from mmcourse.text2image.model import T2IConfig

    judges = Judges.load()
    out: dict = {"date": str(date.today()), "threads": 1, "loadavg_before": round(os.getloadavg()[0], 2)}
    agree = {}
    for size in (16, 32):
        b = ShapesWorld(image_size=size).sample(2000, seed=5, split="test")
        x = b.images if size == 32 else F.interpolate(b.images, size=32, mode="bicubic", align_corners=False).clamp(0, 1)
        agree[f"{size}px" + (" upsampled (bicubic)" if size == 16 else "")] = round(
            float((judges.shape(x) == b.shape[:, 0]).float().mean()), 4)
    out["shape_judge_agreement"] = agree

    cfg = T2IConfig()
    costs = {}
    c = cfg.ae["latent_channels"]
    for name, (channels, side) in {"pixel 16x16x3": (3, 16), f"latent 8x8x{c}": (c, 8)}.items():
        kw = dict(cfg.unet, in_channels=channels, image_size=side)
        kw["channel_mults"] = tuple(kw["channel_mults"])
        from mmcourse.diffusion.conditioning import TextUNet

        torch.manual_seed(0)
        unet = TextUNet(**kw)
        opt = torch.optim.AdamW(unet.parameters())
        B = 64
        x, t = torch.randn(B, channels, side, side), torch.randint(0, 1000, (B,))
        text = TextCondition(torch.randn(B, 16, 64), torch.ones(B, 16, dtype=torch.bool), torch.randn(B, 64))

        def train_step() -> None:
            loss = F.mse_loss(unet(x, t, text), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        with torch.no_grad():
            x2, t2, text2 = x[:2], t[:2], text.index(slice(0, 2))
            fwd = _median_ms(lambda: unet(x2, t2, text2), 15)
        costs[name] = {"train_step_ms_batch64": round(_median_ms(train_step, 5), 1),
                       "guided_step_ms_one_image": round(fwd, 2), "numbers_per_image": channels * side * side}
    out["denoiser_cost"] = costs
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def autoencoders(steps: int = 2000, width: int = 64, n_test: int = 1000) -> dict:
    """Numbers per patch against the shape judge: blur, PatchPCA, learned autoencoders."""
    import torchvision.transforms.functional as TF
    from torch import nn

    from mmcourse.diffusion.autoencoder import AutoEncoder, PatchPCA
    from mmcourse.diffusion.models import _groups
    from mmcourse.text2image.judges import Judges
    from mmcourse.text2image.model import world
    from mmcourse.text2image.train import train_autoencoder

    judges = Judges.load()
    out: dict = {"date": str(date.today()), "threads": 1, "loadavg_before": round(os.getloadavg()[0], 2),
                 "n_test": n_test, "test": "world(32).sample(n_test, seed=7, split='test')"}
    b = world().sample(n_test, seed=7, split="test")
    want = judges.shape(b.images)
    out["judge_vs_labels_real"] = round(float((want == b.shape[:, 0]).float().mean()), 4)

    def kept(x: torch.Tensor) -> float:
        return round(float((judges.shape(x.clamp(0, 1)) == want).float().mean()), 4)

    out["blur_kept"] = {str(s): kept(TF.gaussian_blur(b.images, 5, s)) for s in (0.4, 0.6, 0.8, 1.0)}
    train = world().sample(5000, seed=0, split="train").images
    out["pca_kept"] = {}
    for k in (4, 8, 12, 16, 24):
        pca = PatchPCA(k).fit(train)
        out["pca_kept"][str(k)] = kept(pca.decode(pca.encode(b.images)))
    learned = {}
    for name, channels, norm_out in (("4 channels", 4, False), ("8 channels", 8, False), ("16 channels", 16, False),
                                     ("16 channels, GroupNorm + SiLU before the 1x1 projections", 16, True)):
        torch.manual_seed(0)
        ae = AutoEncoder(latent_channels=channels, width=width)
        if norm_out:  # no straight linear path left from pixels to latents and back
            ae.encoder[-1] = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), ae.encoder[-1])
            ae.decoder[-2] = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), ae.decoder[-2])
        t0 = time.perf_counter()
        train_autoencoder(ae, steps=steps, seed=0, progress=False)
        with torch.no_grad():
            r = ae.decode(ae.encode(b.images))
        learned[name] = {"kept": kept(r), "mse": round(float(((r - b.images) ** 2).mean()), 5),
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(name, learned[name], flush=True)
    out["learned"] = {"steps": steps, "width": width, "batch_size": 32, "runs": learned}
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def one_draw(model, judges, n_prompts: int, guidance_scales, split: str = "test", seed: int = 0) -> dict:
    """Per guidance scale: the share of n_prompts prompts of one draw (``prompt_set(n, seed, split)``,
    sampled with the same seed, DDIM-50) with each attribute right, shape and colour, and all four."""
    from mmcourse.text2image.evaluate import ATTRIBUTES, attribute_outcomes
    from mmcourse.text2image.prompts import prompt_set

    prompts, labels = prompt_set(n_prompts, seed=seed, split=split)
    table = {}
    for w in guidance_scales:
        ok = attribute_outcomes(model, judges, prompts, labels, float(w), seed)
        row = {a: float(ok[:, i].float().mean()) for i, a in enumerate(ATTRIBUTES)}
        row.update(shape_and_colour=float(ok[:, :2].all(dim=1).float().mean()), all=float(ok.all(dim=1).float().mean()))
        table[str(float(w))] = row
    return table


def guidance(n_prompts: int = 300, n_seeds: int = 8, n_diversity_prompts: int = 16) -> dict:
    """The shipped model across guidance scales, seen and held-out prompts."""
    from mmcourse.protocol import mean
    from mmcourse.text2image.judges import Judges
    from mmcourse.text2image.model import load_text2image
    from mmcourse.text2image.prompts import prompt_set
    from mmcourse.text2image.sampling import generate

    model, judges = load_text2image(), Judges.load()
    out: dict = {"date": str(date.today()), "threads": 1, "loadavg_before": round(os.getloadavg()[0], 2),
                 "n_prompts": n_prompts, "sampler": "ddim", "steps": 50}
    t0 = time.perf_counter()
    out["seen"] = one_draw(model, judges, n_prompts, GUIDANCE_SCALES, split="test")
    out["heldout"] = one_draw(model, judges, n_prompts, GUIDANCE_SCALES, split="heldout")
    prompts, _ = prompt_set(n_diversity_prompts, seed=5, split="test")
    diversity, clip = {}, {}
    for w in GUIDANCE_SCALES:
        var, score = [], []
        for p in prompts:
            x = generate(model, p, w, steps=50, seed=1, n=n_seeds)
            var.append(float(x.var(dim=0).mean()))
            score.append(float(judges.clip_score(x, [p] * n_seeds).mean()))
        # the prompts are the independent units (a prompt's n_seeds pictures share it), so the
        # standard error is over the n_diversity_prompts per-prompt means
        diversity[str(w)], clip[str(w)] = round(statistics.mean(var), 5), mean(score).to_dict()
    out["diversity_pixel_variance"] = diversity
    out["clip_score"] = clip
    out["sweep_seconds"] = round(time.perf_counter() - t0, 1)
    import mmcourse.text2image.sampling as sampling

    sampling.ONEDNN_OFF_FOR_SAMPLING = False
    out["ddim50_ms_one_image_onednn"] = round(
        _median_ms(lambda: generate(model, "a large purple diamond at the bottom right", 4.0, steps=50), 9), 1)
    sampling.ONEDNN_OFF_FOR_SAMPLING = True
    one = _median_ms(lambda: generate(model, "a large purple diamond at the bottom right", 4.0, steps=50), 9)
    batch = _median_ms(lambda: generate(model, "a large purple diamond at the bottom right", 4.0, steps=50, n=64), 3)
    out["ddim50_ms_one_image"] = round(one, 1)
    out["ddim50_ms_per_image_batch64"] = round(batch / 64, 2)
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def heldout() -> dict:
    """Held-out pairs at the registry's guidance scale on the protocol's test draws."""
    from mmcourse.text2image.evaluate import REPORT_PROMPTS_PER_SEED, guidance_sweep, sweep_to_json

    n_per_seed = REPORT_PROMPTS_PER_SEED["test"]
    from mmcourse.text2image.judges import Judges
    from mmcourse.text2image.model import load_text2image
    from mmcourse.weights import entry

    w = float(entry("text2image_shapes").metrics["guidance_scale"])
    out: dict = {"date": str(date.today()), "threads": 1, "loadavg_before": round(os.getloadavg()[0], 2),
                 "guidance_scale": w, "part": "test", "n_per_seed": n_per_seed}
    t0 = time.perf_counter()
    sweep = guidance_sweep(load_text2image(), Judges.load(), [w], part="test", split="heldout",
                           n_per_seed=n_per_seed)
    out["heldout"] = sweep_to_json(sweep)[str(w)]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def guidance_gain() -> dict:
    """Shape and colour at the registry's w against w = 1 on the registry's test draws, paired."""
    from mmcourse.protocol import SEEDS_PER_PART
    from mmcourse.text2image.evaluate import guidance_gain as gain
    from mmcourse.text2image.judges import Judges
    from mmcourse.text2image.model import load_text2image
    from mmcourse.weights import entry

    row = entry("text2image_shapes")
    w = float(row.metrics["guidance_scale"])
    n_per_seed = int(row.errors["w1_shape_and_colour"]["n"]) // SEEDS_PER_PART   # the draws the registry measured
    out: dict = {"date": str(date.today()), "threads": 1, "loadavg_before": round(os.getloadavg()[0], 2),
                 "checkpoint_sha256": row.sha256, "guidance_scale": w, "part": "test", "n_per_seed": n_per_seed}
    t0 = time.perf_counter()
    out.update({k: e.to_dict() for k, e in gain(load_text2image(), Judges.load(), w, "test", n_per_seed).items()})
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def run() -> None:
    torch.set_num_threads(1)
    s = space()
    _store("text2image_space", s)
    print(json.dumps(s, indent=1))
    _store("text2image_autoencoders", autoencoders())
    g = guidance()
    _store("text2image_guidance", g)
    _store("text2image_heldout", heldout())
    _store("text2image_guidance_gain", guidance_gain())
    print(json.dumps({k: v for k, v in g.items() if k not in ("seen", "heldout")}, indent=1))
    for split in ("seen", "heldout"):
        for w, row in g[split].items():
            print(split, w, {k: round(v, 3) for k, v in row.items()})


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    parts = sys.argv[1:] or ["space", "autoencoders", "guidance", "heldout", "gain"]
    if "space" in parts:
        _store("text2image_space", space())
    if "autoencoders" in parts:
        _store("text2image_autoencoders", autoencoders())
    if "guidance" in parts:
        _store("text2image_guidance", guidance())
    if "heldout" in parts:
        _store("text2image_heldout", heldout())
    if "gain" in parts:
        _store("text2image_guidance_gain", guidance_gain())

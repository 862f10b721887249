"""Notebook 08's prompt widget: the callback logic (:func:`prompt_view`, plain and tested) and the
controls that call it (:func:`prompt_explorer`)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import torch

from ..data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES
from .prompts import ATTRIBUTES, parse_prompt
from .model import TextToImage
from .sampling import generate

STRIP_FRAMES = 8  # frames of the reverse trajectory shown under the image


@dataclass
class PromptView:
    """The answer to one prompt: a picture (or None), the judges' verdict per attribute and a message."""

    png: bytes | None
    image: torch.Tensor | None          # (3, 32, 32)
    verdict: dict[str, bool | None]
    judged: dict[str, str]
    message: str


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    return img.permute(1, 2, 0).clamp(0, 1).numpy()


def strip_indices(num_steps: int, frames: int = STRIP_FRAMES) -> list[int]:
    """Which of the num_steps + 1 trajectory entries to show: evenly spaced, x_T first, x_0 last."""
    return sorted(set(np.linspace(0, num_steps, min(frames, num_steps + 1)).round().astype(int).tolist()))


def verdict_text(verdict: dict[str, bool | None], judged: dict[str, str]) -> str:
    """One line per attribute: ✓/✗ with what the judges saw, or "not asked"."""
    lines = []
    for a in ATTRIBUTES:
        v = verdict.get(a)
        mark = "–" if v is None else ("✓" if v else "✗")
        lines.append(f"{mark} {a}: judged {judged.get(a, '?')}" + ("  (not asked)" if v is None else ""))
    return "\n".join(lines)


@torch.no_grad()
def prompt_view(model: TextToImage, judges, prompt: str, guidance_scale: float = 3.0, sampler: str = "ddim",
                steps: int = 50, seed: int = 0) -> PromptView:
    """Generate one image for ``prompt`` and judge it; a bad prompt or setting gives a message, not an exception."""
    import matplotlib.pyplot as plt

    from ..viz import figure_png

    try:
        asked = parse_prompt(prompt, model.encoder.tokenizer)
        image, traj = generate(model, prompt, guidance_scale, sampler, steps, seed, return_trajectory=True)
    except ValueError as err:
        return PromptView(None, None, {}, {}, str(err))
    got = judges.labels(image)[0].tolist()
    names = (SHAPES, COLOUR_NAMES, SIZES, POSITIONS)
    judged = {a: (names[i][got[i]] if got[i] >= 0 else "no object") for i, a in enumerate(ATTRIBUTES)}
    verdict = judges.verdict(image, [asked])[0]
    clip = float(judges.clip_score(image, [prompt])[0]) if prompt.strip() else float("nan")

    idx = strip_indices(steps)
    fig = plt.figure(figsize=(7.2, 2.9))
    grid = fig.add_gridspec(2, len(idx), height_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(_to_hwc(image[0]))
    ax.set_title(f"{prompt!r}\nw = {guidance_scale:g}, {sampler.upper()}-{steps}, seed {seed}", fontsize=9)
    ax.axis("off")
    for k, i in enumerate(idx):
        a = fig.add_subplot(grid[1, k])
        a.imshow(_to_hwc(traj[i, 0]))
        a.set_title("x_T" if i == 0 else ("x_0" if i == steps else f"step {i}"), fontsize=8)
        a.axis("off")
    fig.tight_layout()
    message = verdict_text(verdict, judged) + f"\nCLIP score {clip:.3f}"
    return PromptView(figure_png(fig), image[0], verdict, judged, message)


def prompt_explorer(model: TextToImage, judges, prompt: str = "a large purple diamond at the bottom right",
                    guidance_scale: float | None = None):
    """Prompt box, guidance scale, sampler, steps, seed and a generate button -> image, strip, verdict.

    ``guidance_scale``: the slider's start; default the shipped checkpoint's, chosen on validation draws.
    """
    import ipywidgets as W

    from ..weights import entry
    from .model import CHECKPOINT

    if guidance_scale is None:
        guidance_scale = entry(CHECKPOINT).metrics["guidance_scale"]
    text = W.Text(value=prompt, description="prompt", layout=W.Layout(width="460px"))
    scale = W.FloatSlider(value=guidance_scale, min=0.0, max=8.0, step=0.5, description="guidance w",
                          continuous_update=False)
    sampler = W.Dropdown(options=["ddim", "ddpm"], value="ddim", description="sampler")
    steps = W.IntSlider(value=50, min=1, max=200, description="steps", continuous_update=False)
    seed = W.IntText(value=0, description="seed", layout=W.Layout(width="160px"))
    button = W.Button(description="generate", button_style="primary")
    image = W.Image(format="png", layout=W.Layout(width="640px"))
    message = W.HTML()
    text.add_class("mmcourse-prompt")
    scale.add_class("mmcourse-guidance")
    button.add_class("mmcourse-generate")
    image.add_class("mmcourse-generated")
    message.add_class("mmcourse-verdict")

    def on_generate(_=None) -> None:
        v = prompt_view(model, judges, text.value, scale.value, sampler.value, steps.value, seed.value)
        if v.png is not None:
            image.value = v.png
        message.value = f"<pre>{html.escape(v.message)}</pre>"

    button.on_click(on_generate)
    on_generate()
    return W.VBox([text, W.HBox([scale, sampler]), W.HBox([steps, seed, button]), message, image])

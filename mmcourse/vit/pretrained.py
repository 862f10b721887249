"""Optional: classify a photo with real pretrained ViT weights from a local file (never downloaded).

The course runs offline, so it ships no ImageNet weights. If you have a ViT checkpoint on disk,
point the environment variable ``MMCOURSE_VIT_WEIGHTS`` at it and notebook 03 loads it into
:class:`mmcourse.vit.VisionTransformer` (our code, not timm's) and labels a photo with it.
``HOW_TO_GET`` explains how to make such a file on a machine with internet access.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .convert import from_hf_vit, from_timm
from .model import VisionTransformer

ENV_VAR = "MMCOURSE_VIT_WEIGHTS"
SUGGESTED_MODEL = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"  # 5.7 M parameters, 22 MB, ImageNet-1k head
HOW_TO_GET = f"""\
No pretrained weights found: set {ENV_VAR} to a local .safetensors file to run this cell.
To make one, on a machine with internet access:

    pip install timm safetensors
    python -c "import timm, safetensors.torch as st; \\
m = timm.create_model('{SUGGESTED_MODEL}', pretrained=True); \\
st.save_file(m.state_dict(), 'vit_tiny_patch16_224.safetensors')"

copy the file here and start Jupyter with
    {ENV_VAR}=/path/to/vit_tiny_patch16_224.safetensors make lab
(transformers' google/vit-base-patch16-224 model.safetensors works too.)"""

# The augreg timm ViTs and google/vit-* were trained on images scaled to [-1, 1].
MEAN, STD = 0.5, 0.5


def weights_path() -> Path | None:
    """The file named by ``MMCOURSE_VIT_WEIGHTS`` if it is set and exists, else None."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value and Path(value).is_file() else None


def load_pretrained(path: str | Path) -> VisionTransformer:
    """Load a timm or transformers ViT state dict saved as safetensors into our ViT (eval mode).

    The key names tell which library wrote it; head counts follow the real models' 64 channels
    per head (ViT-Ti/S/B/L). A transformers ``config.json`` next to a transformers file is read
    (heads, layer-norm eps), as :func:`mmcourse.clip.convert.load_hf_clip_file` does.
    """
    import json

    from safetensors.torch import load_file

    if not isinstance(path, (str, Path)):
        raise ValueError(f"path must be a file path (str or Path), got {type(path).__name__}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file: expected a timm or transformers ViT .safetensors")
    sd = load_file(str(path))
    if "patch_embed.proj.weight" in sd:
        return from_timm(sd)
    if any(k.startswith(("vit.", "embeddings.")) for k in sd):
        beside = Path(path).with_name("config.json")
        return from_hf_vit(sd, json.loads(beside.read_text()) if beside.is_file() else None)
    raise ValueError(f"{path} does not look like a timm or transformers ViT (first keys: {list(sd)[:4]})")


def preprocess(photo: np.ndarray, size: int) -> torch.Tensor:
    """An RGB photo (H, W, 3) uint8 -> (1, 3, size, size): centre square crop, resize, scale to [-1, 1]."""
    from skimage import transform

    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be an RGB array (H, W, 3), got shape {photo.shape}")
    h, w, _ = photo.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = photo[top : top + s, left : left + s]
    x = transform.resize(square, (size, size), anti_aliasing=True).astype(np.float32)  # [0, 1]
    return (torch.from_numpy(x).permute(2, 0, 1)[None] - MEAN) / STD


def imagenet_labels() -> list[str] | None:
    """The 1,000 ImageNet class names, read from the text files timm ships, else None.

    The files are read without importing timm (whose torchvision import can fail beside a CPU
    build of torch).
    """
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.origin:
        return None
    info = Path(spec.origin).parent / "data" / "_info"
    try:
        synsets = (info / "imagenet_synsets.txt").read_text().split()
        lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines() if "\t" in line)
    except OSError:
        return None
    return [lemmas.get(s, s).split(",")[0] for s in synsets]


@torch.no_grad()
def top_k(model: VisionTransformer, x: torch.Tensor, k: int = 5, labels: list[str] | None = None) -> list[tuple[str, float]]:
    """The k most probable classes of one image x (1, 3, S, S) as (name, probability) pairs."""
    p = model(x).softmax(-1)[0]
    values, idx = p.topk(min(k, p.numel()))
    names = labels if labels is not None and len(labels) == p.numel() else None
    return [(names[i] if names else f"class {i}", float(v)) for v, i in zip(values.tolist(), idx.tolist())]

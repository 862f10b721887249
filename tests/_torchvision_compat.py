"""Let the reference libraries import torchvision next to the CPU build of torch.

timm, open_clip and segment-anything import torchvision at import time (for transforms, which
the tests never use). The torchvision wheel that matches torch 2.13.0 on PyPI is built for CUDA:
its compiled ops fail to load beside the CPU torch, and torchvision then stops at import because
it registers a fake kernel for ``torchvision::nms``, an op that no longer exists.

When (and only when) the compiled ops cannot load, this declares the two op schemas that
torchvision registers unconditionally, so the pure-Python parts import. The op bodies stay
missing: calling ``torchvision.ops.nms`` would still fail, and nothing in the tests does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_lib = None


def install() -> None:
    global _lib
    spec = importlib.util.find_spec("torchvision")
    if spec is None or _lib is not None or not spec.origin:
        return
    so = next(Path(spec.origin).parent.glob("_C*.so"), None)
    try:
        if so is not None:
            torch.ops.load_library(str(so))
            return  # the real ops are there; nothing to do
    except OSError:
        pass
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

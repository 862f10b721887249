"""A small convolutional network to compare with the ViT at a similar parameter count.

Convolutions build two assumptions into the architecture (归纳偏置, inductive bias): *locality*
(a 3x3 kernel sees only neighbouring pixels) and *translation equivariance* (the same kernel
slides everywhere). A ViT has neither: any patch may attend to any other from the first layer,
and it must learn from data that nearby patches matter more. The comparison in notebook 03
measures what those assumptions are worth as the training set grows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class CNNConfig:
    img_size: int = 32
    in_chans: int = 3
    num_classes: int = 5
    width: int = 32     # channels of the first stage; each later stage doubles them
    stages: int = 3     # each stage: two 3x3 convs, then a 2x2 max-pool (halves the resolution)

    def __post_init__(self) -> None:
        for name in ("img_size", "in_chans", "num_classes", "width", "stages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.img_size % 2**self.stages:
            raise ValueError(f"img_size {self.img_size} must be divisible by 2**stages = {2**self.stages}")

    def to_dict(self) -> dict:
        return asdict(self)


class SmallCNN(nn.Module):
    """Conv stages -> global average pool -> linear head: (B, C, S, S) -> logits (B, num_classes).

    Each stage is (3x3 conv, BatchNorm, GELU) twice, then a 2x2 max-pool. BatchNorm is the CNN's
    usual companion: without it this network trains several times slower with the ViT's recipe,
    which would make the comparison about optimisation rather than inductive bias.
    """

    def __init__(self, cfg: CNNConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = cfg or CNNConfig()
        if overrides:
            cfg = CNNConfig(**{**cfg.to_dict(), **overrides})
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, c = cfg.in_chans, cfg.width
        for _ in range(cfg.stages):
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                nn.MaxPool2d(2),
            ]
            c_in, c = c, 2 * c
        self.features = nn.Sequential(*layers)      # (B, c_in, S / 2**stages, S / 2**stages)
        self.head = nn.Linear(c_in, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.in_chans, cfg.img_size, cfg.img_size):
            raise ValueError(f"x must have shape (B, {cfg.in_chans}, {cfg.img_size}, {cfg.img_size}), got {tuple(x.shape)}")
        return self.head(self.features(x).mean(dim=(2, 3)))

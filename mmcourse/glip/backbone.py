"""The image side: a small CNN that turns a 64 x 64 scene into a stride-4 feature map.

ShapesWorld objects are 13-20 pixels wide in a 64 x 64 scene. A dense detector predicts from grid
locations, and FCOS-style centre sampling makes a location positive only within 1.5 strides of an
object's centre: at stride 8 (a ViT with 8 x 8 patches) an object gets 3.7 positive locations
on average, a third of the objects at most 2, and neighbouring cells mix two objects; at stride 4
it gets 7.6 (measured by :func:`mmcourse.glip.evaluate.positives_per_object` on 500 test scenes,
stored in bench/results/glip_stride.json). Two strided 3 x 3 convolutions reach stride 4, two
more widen the receptive field, and a learned position embedding tells each location where it is
(captions say "at the top left").
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3 x 3 convolution, GroupNorm (batch-size independent, like GLIP's heads) and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.GroupNorm(8, c_out),
        nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """Images (B, 3, S, S) in [0, 1] -> features (B, D, S/4, S/4).

    Args:
        img_size: S (a multiple of 4). dim: D, the output width (a multiple of 8).
    """

    stride = 4

    def __init__(self, img_size: int = 64, dim: int = 64) -> None:
        super().__init__()
        if img_size % self.stride:
            raise ValueError(f"img_size must be a multiple of {self.stride}, got {img_size}")
        self.img_size = img_size
        self.stem = nn.Sequential(
            conv_block(3, 32, stride=2),        # stride 2: edges and colour
            conv_block(32, dim, stride=2),      # stride 4
            conv_block(dim, dim, dilation=2),   # receptive field ~ 30 px: a whole object
            conv_block(dim, dim, dilation=4),   # ~ 46 px: its neighbours too
        )
        g = img_size // self.stride
        self.pos_embed = nn.Parameter(torch.randn(1, dim, g, g) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.img_size, self.img_size):
            raise ValueError(f"images must be (B, 3, {self.img_size}, {self.img_size}), got {tuple(images.shape)}")
        return self.stem(images - 0.5) + self.pos_embed

"""A segmenter that learns nothing: the flood fill from a click, the baseline for SAM's clicks.

ShapesWorld paints each object in one colour on a low-saturation background (plus mild pixel noise
and soft edges), so "the connected pixels of the clicked colour" is a natural non-learned answer to
a click: whatever SAM adds beyond it is what it learned about objects."""

from __future__ import annotations

import numpy as np
import torch

FLOOD_TOLERANCES = (0.1, 0.2, 0.3, 0.4, 0.5)    # the grid a notebook chooses the tolerance from, on val scenes


def flood_fill(images: torch.Tensor, clicks: torch.Tensor, tolerance: float = 0.4) -> torch.Tensor:
    """The connected region of the clicked colour: every pixel whose RGB lies within ``tolerance``
    (Euclidean distance) of the clicked pixel's and is joined to the click through such pixels
    (4-connected, ``scipy.ndimage.label``). The default tolerance is the one notebook 06 chooses
    from ``FLOOD_TOLERANCES`` on validation scenes.

    images (B, 3, H, W) in [0, 1]; clicks (B, 2) xy pixel coordinates -> masks (B, H, W) bool.
    """
    from scipy.ndimage import label

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if clicks.shape != (images.shape[0], 2):
        raise ValueError(f"clicks must have shape ({images.shape[0]}, 2), got {tuple(clicks.shape)}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
    B, _, H, W = images.shape
    xy = clicks.round().long()
    if bool(((xy < 0) | (xy[:, :1] >= W) | (xy[:, 1:] >= H)).any()):
        raise ValueError(f"clicks must lie inside the {W} x {H} image, got {clicks.tolist()}")
    b = torch.arange(B)
    ref = images[b, :, xy[:, 1], xy[:, 0]]                                    # (B, 3) the clicked colour
    close = ((images - ref[:, :, None, None]).norm(dim=1) <= tolerance).numpy()   # (B, H, W)
    out = np.zeros((B, H, W), dtype=bool)
    for i in range(B):
        regions, _ = label(close[i])                                          # 4-connected components
        out[i] = regions == regions[xy[i, 1], xy[i, 0]]
    return torch.from_numpy(out)

"""Notebook 08's image grids with labelled rows: text at 9 pt (legible at the displayed size)."""

from __future__ import annotations

from typing import Sequence

import torch

FONT_PT = 9


def image_rows(rows: Sequence[torch.Tensor], row_labels: Sequence[str], col_titles: Sequence[str] | None = None,
               cell: float = 0.85, suptitle: str | None = None, label_width: float = 0.9):
    """A grid with one row per (N, 3, H, W) tensor in ``rows``, its label left of it; returns the figure.

    ``col_titles``: one title per column (above the first row), or None. Every text is FONT_PT.
    """
    import matplotlib.pyplot as plt

    if len(rows) != len(row_labels) or not rows:
        raise ValueError(f"rows and row_labels must have the same non-zero length, got {len(rows)} and {len(row_labels)}")
    ncols = max(len(r) for r in rows)
    if col_titles is not None and len(col_titles) != ncols:
        raise ValueError(f"col_titles must have one title per column ({ncols}), got {len(col_titles)}")
    top = (0.3 if col_titles is not None else 0.05) + (0.3 if suptitle else 0.0)
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(label_width + cell * ncols, cell * len(rows) + top),
                             gridspec_kw=dict(left=label_width / (label_width + cell * ncols), right=0.99,
                                              bottom=0.02, top=1 - top / (cell * len(rows) + top),
                                              wspace=0.06, hspace=0.06))
    for r, (images, label) in enumerate(zip(rows, row_labels)):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).numpy())
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=FONT_PT)
        axes[r][0].set_ylabel(label, fontsize=FONT_PT, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=FONT_PT, y=1 - 0.08 / (cell * len(rows) + top))
    return fig

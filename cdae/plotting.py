"""Shared plotting helpers: one figure style, image grids, and saving figures to
:func:`cdae.paths.figures_dir`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdae.data.images import from_unit_range, to_numpy
from cdae.paths import figures_dir


def use_style() -> None:
    """Seaborn's clean style with readable font sizes; call once at the top of a notebook."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="deep")


def save_figure(fig: Any, name: str, dpi: int = 150) -> Path:
    """Save ``fig`` as ``<figures_dir()>/<name>.png`` (tight bounding box); return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def to_display(image: Any) -> np.ndarray:
    """Convert one image to an (H, W) or (H, W, C) array in [0, 1] for ``imshow``.

    Accepts uint8 in [0, 255], or float in [-1, 1] (model space), as numpy or torch,
    channels-first (C, H, W) or channels-last.
    """
    array = to_numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.min() < 0:  # model space [-1, 1]; otherwise already [0, 1]
        array = from_unit_range(array.astype(np.float32)) / 255.0
    array = np.clip(array, 0.0, 1.0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def image_grid(
    images: Sequence[Any],
    nrows: int,
    ncols: int,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell_size: float = 1.1,
    cmap: str = "gray",
    title: str | None = None,
) -> Any:
    """Plot ``images`` (row-major, ``nrows * ncols`` of them) in a labelled grid.

    Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    if len(images) != nrows * ncols:
        raise ValueError(f"image_grid needs {nrows * ncols} images, got {len(images)}")
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_size * ncols + 0.6, cell_size * nrows + 0.4), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.imshow(to_display(images[k]), cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    for c, label in enumerate(col_labels or []):
        axes[0, c].set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def captioned_grid(
    cells: Sequence[Sequence[tuple[Any, str]]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    cell_size: float = 1.55,
) -> Any:
    """A grid where ``cells[r][c] = (image or None, caption)``; a None image is a grey blank
    (e.g. "no ground truth"), the caption sits under the image. Returns the ``Figure``."""
    import matplotlib.pyplot as plt

    nrows, ncols = len(cells), len(cells[0])
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(cell_size * ncols + 1.0, cell_size * nrows + 0.6))
    flat = [cell for row in cells for cell in row]
    for ax, (image, text) in zip(axes.flat, flat, strict=True):
        if image is not None:
            ax.imshow(to_display(image), cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.set_facecolor("0.9")
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
        ax.set_xlabel(text, fontsize=7, labelpad=2)
    for ax, label in zip(axes[:, 0], row_labels, strict=True):
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    for ax, label in zip(axes[0], col_labels, strict=True):
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

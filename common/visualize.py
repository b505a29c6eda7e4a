"""Image grids for people: masked input | raw output | composite | ground truth."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLUMNS = (("input", "masked input"), ("output", "raw output"), ("composite", "composite"),
           ("target", "ground truth"))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float images to uint8 [0, 255]."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample_grid(outputs: Mapping[str, np.ndarray], max_rows: int = 8, gap: int = 2) -> np.ndarray:
    """One uint8 image: a row per sample, the four columns of COLUMNS, white gaps."""
    columns = [to_uint8(np.asarray(outputs[key])[:max_rows]) for key, _ in COLUMNS]
    rows, height, width, _ = columns[0].shape
    grid = np.full((rows * (height + gap) - gap, len(columns) * (width + gap) - gap, 3), 255,
                   np.uint8)
    for c, images in enumerate(columns):
        for r in range(rows):
            top, left = r * (height + gap), c * (width + gap)
            grid[top:top + height, left:left + width] = images[r]
    return grid


def save_sample_grid(outputs: Mapping[str, np.ndarray], path: str, title: str = "",
                     max_rows: int = 8) -> None:
    """Saves the grid as a PNG with column titles."""
    rows = min(max_rows, len(outputs["input"]))
    # A figure with its own Agg canvas: no pyplot, so importing the suite never
    # changes the backend of a notebook or a GUI session.
    fig = Figure(figsize=(2.2 * len(COLUMNS), 2.2 * rows + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, len(COLUMNS), squeeze=False)
    for c, (key, label) in enumerate(COLUMNS):
        images = to_uint8(np.asarray(outputs[key])[:rows])
        for r in range(rows):
            axes[r, c].imshow(images[r], interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[0, c].set_title(label, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)

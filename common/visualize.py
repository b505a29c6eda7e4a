"""Image grids for people: masked input | raw output | composite | ground truth."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

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


def save_run_curves(runs: Mapping[str, Sequence[dict]], loss_keys: Mapping[str, str],
                    metric: str, path: str, *, loss_label: str, loss_title: str,
                    metric_label: str, metric_title: str) -> None:
    """Two panels of metrics.jsonl records against steps, one line per run: each run's
    training loss `loss_keys[name]` (log scale; runs without a key draw none) and its
    held-out `metric` at every evaluation."""
    fig = Figure(figsize=(10, 3.5))
    FigureCanvasAgg(fig)
    loss_axis, metric_axis = fig.subplots(1, 2)
    for name, records in runs.items():
        key = loss_keys.get(name)
        if key:
            train = [r for r in records if r.get("split") == "train" and key in r]
            loss_axis.plot([r["step"] for r in train], [r[key] for r in train],
                           label=f"{name} ({key})")
        evals = [r for r in records if r.get("split") == "eval" and metric in r]
        metric_axis.plot([r["step"] for r in evals], [r[metric] for r in evals], "o-",
                         label=name)
    loss_axis.set(xlabel="step", ylabel=loss_label, yscale="log", title=loss_title)
    metric_axis.set(xlabel="step", ylabel=metric_label, title=metric_title)
    for axis in (loss_axis, metric_axis):
        axis.legend(fontsize=6)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)

"""Figures a person would rather look at than read: LF | IQT | HF, loss curves."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iqt.io_utils import atomic_path  # noqa: E402

PLANES = ("axial (x–y)", "coronal (x–z)", "sagittal (y–z)")


def _planes(volume: np.ndarray, z_scale: float) -> list[tuple[np.ndarray, float]]:
    """Central axial, coronal and sagittal sections with their display aspect."""
    x, y, z = (s // 2 for s in volume.shape)
    return [(volume[:, :, z].T, 1.0), (volume[:, y, :].T, z_scale), (volume[x, :, :].T, z_scale)]


def save_comparison(path: str | os.PathLike, columns: dict[str, tuple[np.ndarray, float]],
                    title: str = "") -> None:
    """One column per named volume, one row per plane.

    columns: name → (volume (x, y, z), slice spacing / in-plane spacing), so that
    thick LF slices are drawn at their true physical height.
    """
    names = list(columns)
    fig, axes = plt.subplots(3, len(names), figsize=(3.2 * len(names), 9.0), squeeze=False)
    vmax = max(float(np.percentile(v, 99.5)) for v, _ in columns.values()) or 1.0
    for col, name in enumerate(names):
        volume, z_scale = columns[name]
        for row, (section, aspect) in enumerate(_planes(volume, z_scale)):
            ax = axes[row, col]
            ax.imshow(section, cmap="gray", origin="lower", vmin=0.0, vmax=vmax, aspect=aspect,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
            if col == 0:
                ax.set_ylabel(PLANES[row])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def save_loss_curves(path: str | os.PathLike, records: list[dict]) -> None:
    """Training and validation loss against step, on a log scale."""
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for split, style in (("train", "-"), ("validation", "o-")):
        points = [(r["step"], r["loss"]) for r in records if r.get("split") == split and r.get("loss")]
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, style, label=split, markersize=3)
    ax.set_xlabel("step"), ax.set_ylabel("MSE loss"), ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3), ax.legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

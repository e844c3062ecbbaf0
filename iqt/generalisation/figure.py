"""The benchmark's figure of one case: coronal and sagittal planes of the whole brain, where the slices show.

The coronal plane is the central one; the sagittal plane cuts the left hemisphere (`SAGITTAL_AT`),
not the midline, where a brain-extracted scan holds little but CSF.

Columns LF | cubic | IQT | truth, then the absolute errors of cubic and IQT after
each one's affine intensity fit (`scores.affine_fit`), all on the truth's
brain-mean scale; thick LF slices at their physical height, the radiological
convention and orientation letters of `iqt.figures`.
"""
from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from iqt.figures import CAPTION_CHARS_PER_INCH, VIEWS, draw_section, intensity_window, oriented_section, save_png
from iqt.generalisation.scores import affine_fit

if TYPE_CHECKING:
    from iqt.generalisation.benchmark import Scan

RAS = ("R", "A", "S")
PANEL_INCHES = 2.6
SAGITTAL_AT = 0.35   # the sagittal plane's position from the left edge: through a hemisphere, not the midline


def _columns(scan: "Scan", volumes: dict[str, np.ndarray], factor: int, voxel_mm: float) -> dict:
    """name -> (volume, voxel sizes, 'image' or 'error')."""
    hf_mm, lf_mm = (voxel_mm,) * 3, (voxel_mm, voxel_mm, voxel_mm * factor)
    lf_scaled = scan.lf / float(scan.lf[scan.lf_brain].mean())
    columns = {f"LF ({voxel_mm * factor:.3g} mm slices)": (lf_scaled, lf_mm, "image"),
               "cubic spline": (volumes["cubic"], hf_mm, "image"),
               "IQT": (volumes["IQT"], hf_mm, "image"),
               "HF truth": (scan.truth, hf_mm, "image")}
    for name in ("cubic", "IQT"):
        error = np.abs(affine_fit(scan.truth, volumes[name], scan.brain) - scan.truth) * scan.brain
        columns[f"|{name} - truth|, fitted"] = (error, hf_mm, "error")
    return columns


def save_case_figure(path: str | os.PathLike, scan: "Scan", volumes: dict[str, np.ndarray], factor: int,
                     voxel_mm: float, title: str = "") -> None:
    """Writes the case's PNG: 2 rows (coronal, sagittal) × 6 columns (module docstring)."""
    columns = _columns(scan, volumes, factor, voxel_mm)
    low, high = intensity_window(scan.truth)
    error_high = float(np.percentile(columns["|cubic - truth|, fitted"][0][scan.brain], 99.5)) or 1.0
    views = VIEWS[1:]   # coronal and sagittal: the planes that cut across the slices
    index = {"coronal": None, "sagittal": int(SAGITTAL_AT * scan.truth.shape[0])}
    fig, axes = plt.subplots(len(views), len(columns), squeeze=False,
                             figsize=(PANEL_INCHES * len(columns), PANEL_INCHES * len(views) + 1.0))
    for col, (name, (volume, sizes, kind)) in enumerate(columns.items()):
        for row, view in enumerate(views):
            ax = axes[row, col]
            draw_section(ax, *oriented_section(volume, sizes, RAS, view, index[view[0]]), view,
                         *((low, high, "gray") if kind == "image" else (0.0, error_high, "magma")))
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(view[0])
    caption = textwrap.fill(f"{title}. Images on the brain-mean scale, window [{low:.2g}, {high:.2g}] from the "
                            f"truth; errors after each estimate's affine intensity fit, 0 to {error_high:.2g}",
                            width=int(CAPTION_CHARS_PER_INCH * PANEL_INCHES * len(columns)))
    fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)

"""Figures a person would rather look at than read: LF | IQT | HF, loss curves.

`save_volume_comparison` is the figure of an enhanced volume: one column per
estimate (LF, cubic, IQT, the HF truth), one row per anatomical plane, in
millimetres (thick LF slices at their physical height), in the radiological
convention (the patient's right on the screen's left) with orientation letters,
every panel in one intensity window.
"""
from __future__ import annotations

import os
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iqt.io_utils import atomic_path  # noqa: E402

PLANES = ("axial (x–y)", "coronal (x–z)", "sagittal (y–z)")



def save_png(fig, path: str | os.PathLike) -> None:
    """Writes `fig` to `path` atomically as a PNG and closes it, written or not."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)

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
    save_png(fig, path)


# (plane, world axis it cuts, the letter on the screen's left, the letter at the top)
VIEWS = (("axial", "S", "R", "A"), ("coronal", "A", "R", "S"), ("sagittal", "R", "A", "S"))
CAPTION_CHARS_PER_INCH = 15   # a 9-point caption, wrapped to the figure's width
OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
_WORLD_AXIS = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}


def _array_axis(axcodes: Sequence[str], letter: str) -> int:
    """The array axis that runs along the world axis of `letter` (R/L, A/P or S/I)."""
    return next(k for k, code in enumerate(axcodes) if _WORLD_AXIS[code] == _WORLD_AXIS[letter])


def oriented_section(volume: np.ndarray, voxel_mm: Sequence[float], axcodes: Sequence[str],
                     view: tuple[str, str, str, str], index: int | None = None
                     ) -> tuple[np.ndarray, tuple[float, float]]:
    """The section of `view` at array `index` along its fixed axis (default: the central one), rows
    bottom to top and columns left to right on screen.

    axcodes: the direction each array axis runs toward (nibabel's `aff2axcodes`,
    e.g. ('R', 'A', 'S')). Returns (section, (width mm, height mm)).
    """
    _, fixed, left, up = view
    k_fixed, k_h, k_v = (_array_axis(axcodes, letter) for letter in (fixed, left, up))
    n = volume.shape[k_fixed]   # the central section, the same anatomy however the axis is stored
    if index is None:
        index = (n - 1) // 2 if axcodes[k_fixed] in "RAS" else n // 2
    section = np.take(volume, index, axis=k_fixed)
    rest = [k for k in range(3) if k != k_fixed]
    section = np.transpose(section, (rest.index(k_v), rest.index(k_h)))
    if axcodes[k_h] == left:       # the index grows toward the screen's left: mirror
        section = section[:, ::-1]
    if axcodes[k_v] != up:         # the index grows downward on screen: mirror
        section = section[::-1, :]
    return section, (volume.shape[k_h] * voxel_mm[k_h], volume.shape[k_v] * voxel_mm[k_v])


def intensity_window(volume: np.ndarray) -> tuple[float, float]:
    """(low, high) display window: from min(0, 0.5th percentile) to the 99.5th percentile."""
    low, high = (float(v) for v in np.percentile(volume, [0.5, 99.5]))
    low = min(0.0, low)
    return low, high if high > low else low + 1.0


def _label_edges(ax, left: str, up: str) -> None:
    style = dict(transform=ax.transAxes, color="yellow", fontsize=10, fontweight="bold")
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, OPPOSITE[left], ha="right", va="center", **style)
    ax.text(0.5, 0.98, up, ha="center", va="top", **style)
    ax.text(0.5, 0.02, OPPOSITE[up], ha="center", va="bottom", **style)


def draw_section(ax, section: np.ndarray, size_mm: tuple[float, float], view: tuple[str, str, str, str],
                 vmin: float, vmax: float, cmap: str = "gray") -> None:
    """One panel: `section` (from `oriented_section`) at its size in mm, no ticks, orientation letters."""
    width, height = size_mm
    ax.imshow(section, cmap=cmap, origin="lower", extent=(0, width, 0, height), vmin=vmin, vmax=vmax,
              interpolation="nearest")
    ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
    _label_edges(ax, view[2], view[3])


def save_volume_comparison(path: str | os.PathLike, columns: dict[str, tuple[np.ndarray, Sequence[float]]],
                           axcodes: Sequence[str], *, slice_axis: int = 2, window_from: str | None = None,
                           title: str = "") -> None:
    """Columns of volumes over one field of view, rows axial, coronal, sagittal.

    columns: name -> (volume (x, y, z), its voxel sizes in mm); the volumes may
    differ in slice count along `slice_axis` (LF vs HF). axcodes: the world
    direction of each array axis (the same for every column). The intensity
    window is that of the column `window_from` (default: the first).
    """
    names = list(columns)
    low, high = intensity_window(columns[window_from or names[0]][0])
    slice_letters = f"{axcodes[slice_axis]}–{OPPOSITE[axcodes[slice_axis]]}"
    panels = {(row, col): oriented_section(*columns[name], axcodes, view)
              for col, name in enumerate(names) for row, view in enumerate(VIEWS)}
    heights = [max(0.25, h / w) for _, (w, h) in (panels[(row, 0)] for row in range(len(VIEWS)))]
    fig, axes = plt.subplots(len(VIEWS), len(names), squeeze=False, gridspec_kw={"height_ratios": heights},
                             figsize=(3.0 * len(names), 3.0 * sum(heights) + 1.2))
    for col, name in enumerate(names):
        for row, view in enumerate(VIEWS):
            ax = axes[row, col]
            draw_section(ax, *panels[(row, col)], view, low, high)
            if row == 0:
                ax.set_title(name, fontsize=10)
            if col == 0:
                ax.set_ylabel(view[0])
    caption = textwrap.fill(f"slice axis: {slice_letters} (array axis {slice_axis}); slices drawn at their "
                            f"physical thickness; one window [{low:.3g}, {high:.3g}] from "
                            f"{window_from or names[0]}", width=int(CAPTION_CHARS_PER_INCH * 3.0 * len(names)))
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def save_enhancement_figure(path: str | os.PathLike, lf: np.ndarray, iqt: np.ndarray, factor: int,
                            hf_voxel_mm: Sequence[float], affine: np.ndarray, *, cubic: np.ndarray | None = None,
                            truth: np.ndarray | None = None, title: str = "") -> None:
    """LF | cubic | IQT | HF truth (the last two and cubic when given), slice axis last.

    hf_voxel_mm and affine: of the HF grid (the slice axis's spacing is r times
    finer than the LF's). The window is the truth's, else the LF's.
    """
    import nibabel as nib

    hf_mm = np.asarray(hf_voxel_mm, float)
    lf_mm = hf_mm * [1.0, 1.0, factor]
    lf_name = f"LF ({lf_mm[2]:.3g} mm slices)"
    columns = {lf_name: (lf, lf_mm)}
    if cubic is not None:
        columns["cubic spline"] = (cubic, hf_mm)
    columns[f"IQT (×{factor} slices)"] = (iqt, hf_mm)
    if truth is not None:
        columns["HF truth"] = (truth, hf_mm)
    save_volume_comparison(path, columns, nib.aff2axcodes(affine), slice_axis=2,
                           window_from="HF truth" if truth is not None else lf_name, title=title)


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
    save_png(fig, path)

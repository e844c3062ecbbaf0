"""A subject: a skull-stripped HF image and its GM, WM, CSF probability maps on one grid.

The one subject type of the library: loaded from NIfTI files (`load_subject`),
stored in and decoded from a dataset record (`iqt.data.records`), sampled for
training patches (`iqt.data.patches`) and evaluated whole (`iqt.evaluation`).
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from simulators import TISSUES
from iqt.data.nifti import Volume, check_same_grid, load_volume, voxel_sizes_from_affine
from iqt.errors import UserError

OVERSHOOT = 0.1        # interpolated maps may stray this far outside [0, 1]; it is clipped
TISSUE_LEVELS = 255    # stored maps: probability x 255, as uint8
BRAIN_TISSUE_SUM = 0.5  # a voxel is brain where GM + WM + CSF exceeds this


@dataclasses.dataclass(frozen=True, eq=False)
class Subject:
    """One subject's HF image and tissue maps on one grid.

    image: (x, y, z) float32, in scanner units or divided by `scale` (stored).
    tissue: (x, y, z, 3) GM, WM, CSF probabilities, float32 in [0, 1], or uint8
      (x `TISSUE_LEVELS`) as stored, which the patch sampler keeps.
    affine: (4, 4) voxel -> world mm.
    scale: what the image was divided by (1: not normalised).
    tissue_means: (3,) mean GM, WM, CSF intensity (`simulators.tissue_means`), once known.
    brain_means: (3,) each tissue's part of the mean LF brain intensity
      (`simulators.brain_means_by_tissue`), once known.
    """

    subject_id: str
    image: np.ndarray
    tissue: np.ndarray
    affine: np.ndarray
    scale: float = 1.0
    tissue_means: np.ndarray | None = None
    brain_means: np.ndarray | None = None

    @property
    def voxel_sizes_mm(self) -> tuple[float, float, float]:
        return voxel_sizes_from_affine(self.affine)

    @functools.cached_property
    def brain(self) -> np.ndarray:
        """Brain voxels (x, y, z) bool: GM + WM + CSF > `BRAIN_TISSUE_SUM`."""
        if self.tissue.dtype == np.uint8:
            return self.tissue.sum(axis=-1, dtype=np.uint16) > BRAIN_TISSUE_SUM * TISSUE_LEVELS
        return self.tissue.sum(axis=-1) > BRAIN_TISSUE_SUM


def tissue_probability(volume: Volume, name: str, path: str | os.PathLike) -> np.ndarray:
    """A tissue map as probabilities in [0, 1].

    Maps stored as integers 0-255 (e.g. the MNI152 maps) are divided by 255;
    values are then clipped to [0, 1] (overshoots up to `OVERSHOOT` come from
    interpolation; anything further out is a `UserError`).
    """
    data = volume.data
    stored_as_integers = np.issubdtype(volume.header.get_data_dtype(), np.integer)
    if stored_as_integers and float(data.max()) > 1.0:
        data = data / np.float32(255.0)
    low, high = float(data.min()), float(data.max())
    if low < -OVERSHOOT or high > 1.0 + OVERSHOOT:
        raise UserError(f"{name} {path} holds values from {low:g} to {high:g}; expected "
                        f"probabilities in [0, 1] (or integers 0-255)")
    return np.clip(data, 0.0, 1.0).astype(np.float32)


def load_subject(subject_id: str, image_path: str | os.PathLike,
                 gm_path: str | os.PathLike | None = None,
                 wm_path: str | os.PathLike | None = None,
                 csf_path: str | os.PathLike | None = None) -> Subject:
    """Loads an image and its three tissue maps; all must share one grid."""
    paths = dict(zip(TISSUES, (gm_path, wm_path, csf_path)))
    missing = [t for t, p in paths.items() if p is None]
    if missing:
        raise UserError(f"subject {subject_id}: no {', '.join(missing)} map given; "
                        f"the GM, WM and CSF probability maps are all required")
    image = load_volume(image_path, name=f"subject {subject_id} image")
    names = {t: f"subject {subject_id} {t} map" for t in TISSUES}
    maps = {t: load_volume(paths[t], name=names[t]) for t in TISSUES}
    check_same_grid(image, {f"{names[t]} {paths[t]}": maps[t] for t in TISSUES})
    tissue = np.stack([tissue_probability(maps[t], names[t], paths[t]) for t in TISSUES], axis=-1)
    return Subject(subject_id=subject_id, image=image.data, tissue=tissue,
                   affine=image.affine)

"""A subject: a skull-stripped HF image and its GM, WM, CSF probability maps on one grid."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from iqt.data.nifti import Volume, check_same_grid, load_volume, voxel_sizes_from_affine
from iqt.errors import UserError

TISSUES = ("gm", "wm", "csf")
OVERSHOOT = 0.1  # interpolated maps may stray this far outside [0, 1]; it is clipped


@dataclasses.dataclass(frozen=True, eq=False)
class Subject:
    """`image` float32 (x, y, z); `tissue` float32 (x, y, z, 3) = (gm, wm, csf) in [0, 1]."""

    subject_id: str
    image: np.ndarray
    tissue: np.ndarray
    affine: np.ndarray

    @property
    def voxel_sizes_mm(self) -> tuple[float, float, float]:
        return voxel_sizes_from_affine(self.affine)


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
        raise UserError(f"subject {subject_id}: no {', '.join(missing).upper()} map given; "
                        f"the GM, WM and CSF probability maps are all required")
    image = load_volume(image_path, name=f"subject {subject_id} image")
    names = {t: f"subject {subject_id} {t.upper()} map" for t in TISSUES}
    maps = {t: load_volume(paths[t], name=names[t]) for t in TISSUES}
    check_same_grid(image, {f"{names[t]} {paths[t]}": maps[t] for t in TISSUES})
    tissue = np.stack([tissue_probability(maps[t], names[t], paths[t]) for t in TISSUES], axis=-1)
    return Subject(subject_id=subject_id, image=image.data, tissue=tissue,
                   affine=image.affine)

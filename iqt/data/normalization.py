"""Intensity normalisation and tissue statistics (docs/architecture.md, 'Arrays and units').

Two scales, one per side of the network:

- HF volumes are stored divided by their robust scale, the 99th percentile of
  their brain voxels (`normalise`), so datasets share one range.
- The network's input, a low-field image, is divided by its own mean brain
  intensity (`lf_scale`), and the network's output is multiplied back. The
  same rule holds in training (where the simulator knows this mean before the
  noise, `simulators.lf_brain_mean`), in evaluation and in `launch.infer`.

Tissue means, which feed the simulator's contrast change, are `simulators.tissue_means`.
"""
from __future__ import annotations

import numpy as np

from iqt.errors import UserError

ROBUST_PERCENTILE = 99.0


def brain_mask(image: np.ndarray, tissue: np.ndarray | None = None) -> np.ndarray:
    """Brain voxels (bool, same shape as `image`): image > 0, or any tissue > 0 if given.

    The images are skull-stripped, so the background is exactly 0; with
    tissue maps (x, y, z, 3), the brain is where any tissue is present.
    """
    if tissue is None:
        return np.asarray(image) > 0
    return np.any(np.asarray(tissue) > 0, axis=-1)


def robust_scale(image: np.ndarray, mask: np.ndarray, *, name: str = "the image") -> float:
    """The 99th percentile of `image` inside `mask` (image intensity units).

    `name` says which image in error messages (e.g. its path).
    """
    values = np.asarray(image)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise UserError(f"the brain mask of {name} is empty (no voxel above 0); is it blank?")
    scale = float(np.percentile(values, ROBUST_PERCENTILE))
    if not scale > 0:
        raise UserError(f"the {ROBUST_PERCENTILE:g}th percentile of {name} in the brain is {scale:g}; "
                        f"it must be positive to normalise intensities")
    return scale


def normalise(image: np.ndarray, mask: np.ndarray, *,
              name: str = "the image") -> tuple[np.ndarray, float]:
    """(image / robust_scale, robust_scale): brain intensities mostly in [0, 1]."""
    scale = robust_scale(image, mask, name=name)
    return (np.asarray(image, dtype=np.float32) / np.float32(scale)).astype(np.float32), scale


def lf_scale(lf: np.ndarray, mask: np.ndarray, *, name: str = "the low-field input") -> float:
    """The mean of a low-field image inside its brain `mask` (intensity units), > 0."""
    values = np.asarray(lf, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise UserError(f"the brain mask of {name} is empty (no voxel above 0); is it blank?")
    scale = float(values.mean())
    if not scale > 0:
        raise UserError(f"the mean brain intensity of {name} is {scale:g}; it must be positive "
                        f"to normalise intensities")
    return scale

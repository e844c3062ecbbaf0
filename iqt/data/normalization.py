"""Intensity normalisation and tissue statistics (docs/architecture.md, 'Arrays and units').

Every HF volume is divided by its robust scale, the 99th percentile of its
brain voxels; inference does the same to a low-field input and multiplies the
network's output back. Tissue means feed the simulator's contrast change.
"""
from __future__ import annotations

import numpy as np

from iqt.errors import UserError

ROBUST_PERCENTILE = 99.0
TISSUE_THRESHOLD = 0.9


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


def tissue_means(image: np.ndarray, tissue: np.ndarray,
                 threshold: float = TISSUE_THRESHOLD) -> np.ndarray:
    """Mean intensity of GM, WM, CSF, float32 (3,), over voxels where each map > threshold.

    Fallback: a tissue with no voxel above `threshold` gets its
    probability-weighted mean, sum(p * I) / sum(p); a tissue absent
    altogether (all p = 0) gets 0.
    """
    image = np.asarray(image, dtype=np.float64)
    means = np.zeros(3, dtype=np.float64)
    for t in range(3):
        p = np.asarray(tissue[..., t], dtype=np.float64)
        core = p > threshold
        if core.any():
            means[t] = image[core].mean()
        elif p.sum() > 0:
            means[t] = float((p * image).sum() / p.sum())
    return means.astype(np.float32)

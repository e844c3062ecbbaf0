"""The tissue classes and their mean intensities, which set the contrast change and noise level.

Tissue maps are probabilities stacked last in the order of `TISSUES`. A
subject's tissue means are computed once over the whole volume, so that a small
patch gets the same contrast change as the volume it came from (docs/method.md §3).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from simulators.errors import SimulatorInputError

TISSUES = ("GM", "WM", "CSF")   # the order of the last axis of every tissue array
TISSUE_THRESHOLD = 0.9          # a voxel counts towards a tissue's mean where its probability exceeds this
_NEEDED = ("GM", "WM")          # their means set the noise level and the WM/GM contrast


def tissue_means(image: np.ndarray, tissue: Optional[np.ndarray],
                 threshold: float = TISSUE_THRESHOLD) -> np.ndarray:
    """Mean intensity of GM, WM, CSF, float32 (3,): image (x, y, z), tissue (x, y, z, 3) in [0, 1].

    Each tissue's mean is taken over the voxels where its probability exceeds
    `threshold` (0 to 1, default 0.9). A tissue with no such voxel (a small crop,
    a thin structure) gets its probability-weighted mean Σ p·I / Σ p; CSF absent
    altogether gets 0 (its mean is not used), GM or WM absent altogether is an
    error. Without tissue maps all three are the mean over the foreground
    (voxels above the volume's mean intensity).
    """
    image = np.asarray(image, np.float64)
    if tissue is None:
        return np.full(3, image[image > image.mean()].mean(), np.float32)
    means = np.zeros(3)
    for t, name in enumerate(TISSUES):
        p = np.asarray(tissue[..., t], np.float64)
        core = p > threshold
        if core.any():
            means[t] = image[core].mean()
        elif p.sum() > 0:
            means[t] = (p * image).sum() / p.sum()
        elif name in _NEEDED:
            raise SimulatorInputError(
                f"the {name} map is 0 everywhere, so the mean {name} intensity is unknown: the volume holds "
                f"no {name}, or the maps are not GM, WM, CSF probability maps in that order")
    return means.astype(np.float32)

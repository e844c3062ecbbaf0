"""Interpolation along the slices: the baselines IQT is compared with.

HF slice i is read at LF coordinate (i − (r − 1)/2) / r, the inverse of the
slice convention (LF slice j sits at HF index r·j + (r − 1)/2,
docs/architecture.md), with scipy's B-splines of order 0 (nearest), 1 (linear)
or 3 (cubic), continued as constants beyond the outer slice centres.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from simulators import lf_slice_centres

INTERPOLATION_ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


def slice_interpolation_matrix(n_lf: int, factor: int, order: int) -> np.ndarray:
    """(n_lf, n_lf · factor) matrix M such that hf = lf @ M interpolates along the slices.

    HF slice i is read at LF coordinate (i − (r − 1)/2) / r (scipy spline of
    `order`, constant continuation beyond the outer slice centres).
    """
    positions = (np.arange(n_lf * factor) - lf_slice_centres(1, factor)[0]) / factor   # inverse convention
    identity = np.eye(n_lf)
    return np.stack([ndimage.map_coordinates(identity[j], positions[None], order=order, mode="nearest")
                     for j in range(n_lf)])


def interpolate_slices(lf: np.ndarray, factor: int, order: int) -> np.ndarray:
    """(..., n_lf) → (..., n_lf · factor) float32, interpolated along the last axis."""
    matrix = slice_interpolation_matrix(lf.shape[-1], factor, order)
    return np.tensordot(np.asarray(lf, np.float64), matrix, axes=([-1], [0])).astype(np.float32)

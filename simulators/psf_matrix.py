"""A blur followed by point sampling along one axis, as one (n_in, n_out) weight matrix.

Output sample j sits at position `centres[j]` of the input grid (in input voxel
units, possibly fractional) and equals sum_i W[i, j] · input[i], where column j
holds the continuous PSF evaluated at the offsets (i - centres[j]) · voxel_mm of
the taps within a static half-width, normalised to sum to 1. Blurring and
keeping every r-th slice is then a single matmul. Taps that fall outside the
input are folded back by an edge mode, named as in `scipy.ndimage`:

    reflect   d c b a | a b c d | d c b a   (half-sample symmetric)
    mirror      d c b | a b c d | c b a     (whole-sample symmetric)
    nearest   a a a a | a b c d | d d d d
    constant  0 0 0 0 | a b c d | 0 0 0 0
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

EDGE_MODES = ("reflect", "mirror", "nearest", "constant")
MIN_HALF_WIDTH_VOXELS = 0.5   # so that a half-integer centre always has its two neighbours


def fold_indices(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Maps integer positions onto [0, n) by `mode`; -1 marks a zero ('constant') tap."""
    index = np.asarray(index, np.int64)
    if mode == "nearest":
        return np.clip(index, 0, n - 1)
    if mode == "reflect":
        k = np.mod(index, 2 * n)
        return np.where(k < n, k, 2 * n - 1 - k)
    if mode == "mirror":
        if n == 1:
            return np.zeros_like(index)
        k = np.mod(index, 2 * n - 2)
        return np.where(k < n, k, 2 * n - 2 - k)
    if mode == "constant":
        return np.where((index >= 0) & (index < n), index, -1)
    raise ValueError(f"unknown edge mode {mode!r}; expected one of {EDGE_MODES}")


def fold_matrix(first: int, count: int, n: int, mode: str) -> np.ndarray:
    """(count, n) 0/1 matrix sending virtual tap `first + v` to its input index."""
    folded = fold_indices(np.arange(first, first + count), n, mode)
    return (folded[:, None] == np.arange(n)[None, :]).astype(np.float32)


def psf_weight_matrix(psf: Callable[[jax.Array], jax.Array], centres: np.ndarray, n_in: int,
                      voxel_mm: float, half_width_mm: float, mode: str) -> jax.Array:
    """(n_in, len(centres)) weights of `psf(offset_mm)` sampled at `centres`.

    `centres` and `half_width_mm` are static (numpy / float); `psf` may depend on
    traced parameters, so the matrix is differentiable in them.
    """
    centres = np.asarray(centres, np.float64)
    half_width = max(half_width_mm / voxel_mm, MIN_HALF_WIDTH_VOXELS)   # voxels
    first = math.floor(centres.min() - half_width)
    taps = np.arange(first, math.ceil(centres.max() + half_width) + 1)
    offsets = taps[:, None] - centres[None, :]                            # voxels
    inside = np.abs(offsets) <= half_width + 1e-9
    offsets_mm = jnp.asarray(offsets * voxel_mm, jnp.float32)
    weights = jnp.where(inside, psf(offsets_mm), 0.0)
    weights = weights / jnp.sum(weights, axis=0, keepdims=True)
    fold = jnp.asarray(fold_matrix(first, len(taps), n_in, mode))
    return jnp.matmul(fold.T, weights, precision=jax.lax.Precision.HIGHEST)

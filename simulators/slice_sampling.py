"""Slice-axis sampling: blur by the slice profile, keep one LF slice per r HF slices.

The convention (docs/architecture.md): LF slice j covers HF slices r·j … r·j + r − 1
and is centred at HF index r·j + (r − 1)/2. Its value is the slice profile centred
there, as normalised weights over the HF slices within the profile's static
half-width. The slice spacing is r · hf_voxel_mm; the gap is the spacing minus
`slice_thickness_mm` (negative for overlapping slices).

A training patch of Z HF slices comes with m margin slices on each side (HF
indices −m … Z + m − 1) so that every LF slice's profile is complete; m is the
smallest margin that holds every tap within the half-width.
"""
from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from simulators.psf_matrix import MIN_HALF_WIDTH_VOXELS, psf_weight_matrix
from simulators.slice_profile import slice_profile

_HIGHEST = jax.lax.Precision.HIGHEST


def lf_slice_centres(n_lf: int, factor: int) -> np.ndarray:
    """HF index of the centre of each LF slice: r·j + (r − 1)/2, shape (n_lf,)."""
    return factor * np.arange(n_lf, dtype=np.float64) + (factor - 1) / 2.0


def margin_hf_slices(half_width_mm: float, hf_voxel_mm: float, factor: int) -> int:
    """HF slices needed on each side of a patch for a profile of `half_width_mm`."""
    half_width = max(half_width_mm / hf_voxel_mm, MIN_HALF_WIDTH_VOXELS)
    return max(0, math.floor(half_width - (factor - 1) / 2.0 + 1e-9))


def slice_sampling_matrix(profile: str, theta: Mapping[str, jax.Array], *, n_hf: int,
                          n_lf: int, factor: int, margin: int, hf_voxel_mm: float,
                          half_width_mm: float, edge_mode: str) -> jax.Array:
    """(n_hf, n_lf) weights mapping HF slices to LF slices for one sample.

    Input slice i is HF index i − `margin` of the convention; taps beyond the
    input are folded back by `edge_mode` (see `simulators.psf_matrix`).
    """
    centres = lf_slice_centres(n_lf, factor) + margin

    def psf(offset_mm: jax.Array) -> jax.Array:
        return slice_profile(profile, offset_mm, theta)

    return psf_weight_matrix(psf, centres, n_hf, hf_voxel_mm, half_width_mm, edge_mode)


def sample_slices(volume: jax.Array, weights: jax.Array) -> jax.Array:
    """(..., n_hf) @ (n_hf, n_lf) → (..., n_lf)."""
    return jnp.matmul(volume, weights, precision=_HIGHEST)

"""Optional in-plane blur: a Gaussian of FWHM `inplane_fwhm_mm` along x and y.

Low-field in-plane resolution is often coarser than the reconstruction grid; this
blurs without changing the grid. The blur is separable: one (n, n) weight matrix
per axis, built like the slice-sampling matrix, with the edges folded back by the
edge mode (a training patch has no in-plane margin, so patch borders see the
folded image rather than the true neighbours).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulators.psf_matrix import psf_weight_matrix
from simulators.slice_profile import gaussian_profile

_HIGHEST = jax.lax.Precision.HIGHEST


def inplane_blur_matrix(fwhm_mm: jax.Array, n: int, voxel_mm: float, half_width_mm: float,
                        edge_mode: str) -> jax.Array:
    """(n, n) Gaussian blur weights along one in-plane axis."""
    def psf(offset_mm: jax.Array) -> jax.Array:
        return gaussian_profile(offset_mm, fwhm_mm)

    return psf_weight_matrix(psf, np.arange(n), n, voxel_mm, half_width_mm, edge_mode)


def blur_inplane(volume: jax.Array, fwhm_mm: jax.Array, voxel_mm: float, half_width_mm: float,
                 edge_mode: str) -> jax.Array:
    """Blurs a (X, Y, ...) array along its first two axes; same shape out."""
    nx, ny = volume.shape[:2]
    wx = inplane_blur_matrix(fwhm_mm, nx, voxel_mm, half_width_mm, edge_mode)
    wy = inplane_blur_matrix(fwhm_mm, ny, voxel_mm, half_width_mm, edge_mode)
    volume = jnp.einsum("xy...,xa->ay...", volume, wx, precision=_HIGHEST)
    return jnp.einsum("xy...,yb->xb...", volume, wy, precision=_HIGHEST)

"""A smooth multiplicative bias field (receive-coil inhomogeneity).

log b(x) = bias_x·u_x + bias_y·u_y + bias_z·u_z, with u = (position − centre) /
`bias_field_length_mm`: `bias_x` is the change of log-intensity over that length
along x (0.1 ≈ 10 %). Positions are in mm, relative to the centre of the
simulated array (a patch or a whole volume): on a patch the field is the local,
first-order view of a head-sized field. It multiplies the LF image before noise.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from simulators.slice_sampling import lf_slice_centres


def voxel_positions_mm(n: int, voxel_mm: float) -> np.ndarray:
    """Positions (mm) of n voxel centres relative to their middle, shape (n,)."""
    return (np.arange(n) - (n - 1) / 2.0) * voxel_mm


def lf_slice_positions_mm(n_lf: int, factor: int, hf_voxel_mm: float) -> np.ndarray:
    """Positions (mm) of LF slice centres relative to the middle of the r·n_lf HF slices."""
    return (lf_slice_centres(n_lf, factor) - (factor * n_lf - 1) / 2.0) * hf_voxel_mm


def bias_field(shape: tuple[int, int, int], factor: int, hf_voxel_mm: float,
               length_mm: float, theta: Mapping[str, jax.Array]) -> jax.Array:
    """The field b (> 0) on the LF grid `shape` = (X, Y, n_lf)."""
    nx, ny, n_lf = shape
    ux = jnp.asarray(voxel_positions_mm(nx, hf_voxel_mm) / length_mm, jnp.float32)
    uy = jnp.asarray(voxel_positions_mm(ny, hf_voxel_mm) / length_mm, jnp.float32)
    uz = jnp.asarray(lf_slice_positions_mm(n_lf, factor, hf_voxel_mm) / length_mm, jnp.float32)
    log_b = (theta["bias_x"] * ux[:, None, None] + theta["bias_y"] * uy[None, :, None]
             + theta["bias_z"] * uz[None, None, :])
    return jnp.exp(log_b)

"""Slice profiles: the point-spread function of a 2-D acquisition along the slice axis.

Offsets and widths are in millimetres. Two profiles:

- `gaussian`: a Gaussian whose FWHM is the slice thickness (the reference method,
  docs/method.md §3);
- `rect_gaussian`: the ideal rectangular slice of width `slice_thickness_mm`
  convolved with a Gaussian of FWHM `slice_edge_fwhm_mm` (soft slice edges, as an
  imperfect RF excitation gives).

Profiles are unnormalised; the weight matrices built from them normalise their
discrete weights. Everything is smooth in the widths, so `jax.grad` flows.
"""
from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp

PROFILES = ("gaussian", "rect_gaussian")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))   # ≈ 2.3548
MIN_SIGMA_MM = 1e-3   # floor that keeps a zero-width Gaussian finite and differentiable


def sigma_mm(fwhm_mm: jax.Array | float) -> jax.Array:
    """Standard deviation (mm) of a Gaussian of FWHM `fwhm_mm`, smoothly floored."""
    sigma = jnp.asarray(fwhm_mm, jnp.float32) / FWHM_PER_SIGMA
    return jnp.sqrt(sigma**2 + MIN_SIGMA_MM**2)


def gaussian_profile(offset_mm: jax.Array, fwhm_mm: jax.Array) -> jax.Array:
    """exp(-offset² / 2σ²) with σ = FWHM / 2.3548; any shape, broadcast."""
    return jnp.exp(-0.5 * (offset_mm / sigma_mm(fwhm_mm)) ** 2)


def rect_gaussian_profile(offset_mm: jax.Array, thickness_mm: jax.Array,
                          edge_fwhm_mm: jax.Array) -> jax.Array:
    """A box of width `thickness_mm` convolved with a Gaussian of FWHM `edge_fwhm_mm`."""
    sigma = sigma_mm(edge_fwhm_mm)
    half = 0.5 * thickness_mm
    return (jax.scipy.special.ndtr((offset_mm + half) / sigma)
            - jax.scipy.special.ndtr((offset_mm - half) / sigma))


def slice_profile(name: str, offset_mm: jax.Array, theta: Mapping[str, jax.Array]) -> jax.Array:
    """The named profile at `offset_mm` for one sample's scalar parameters."""
    if name == "gaussian":
        return gaussian_profile(offset_mm, theta["slice_thickness_mm"])
    if name == "rect_gaussian":
        return rect_gaussian_profile(offset_mm, theta["slice_thickness_mm"],
                                     theta["slice_edge_fwhm_mm"])
    raise ValueError(f"unknown slice profile {name!r}; expected one of {PROFILES}")


def half_width_mm(name: str, thickness_mm: float, edge_fwhm_mm: float,
                  truncate_sigmas: float) -> float:
    """Static half-width (mm) beyond which the profile is cut: `truncate_sigmas` σ
    past the Gaussian's centre, or past the box edge for `rect_gaussian`."""
    def sigma(fwhm):   # `sigma_mm` in plain floats
        return math.hypot(fwhm / FWHM_PER_SIGMA, MIN_SIGMA_MM)

    if name == "gaussian":
        return truncate_sigmas * sigma(thickness_mm)
    if name == "rect_gaussian":
        return 0.5 * thickness_mm + truncate_sigmas * sigma(edge_fwhm_mm)
    raise ValueError(f"unknown slice profile {name!r}; expected one of {PROFILES}")

"""Thermal noise at a target SNR: σ = tissue mean / SNR (σ comes from `contrast`).

- `gaussian` (reference): I + σ·n, n ~ N(0, 1) i.i.d.
- `rician`: the magnitude of a complex image with Gaussian noise in both
  channels, |I + σ·n₁ + i·σ·n₂|. Its mean exceeds I at low SNR (Rician bias),
  as real magnitude MR images do.
- `none`: no noise (for tests and ablations).

The noise is reparameterised (σ times a standard normal drawn from the key), so
the output is differentiable in σ and hence in the SNR.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NOISE_MODELS = ("gaussian", "rician", "none")


def add_noise(key: jax.Array, image: jax.Array, sigma: jax.Array, model: str) -> jax.Array:
    """`image` plus noise of standard deviation `sigma` (per channel), same shape."""
    if model == "none":
        return image
    if model == "gaussian":
        return image + sigma * jax.random.normal(key, image.shape, image.dtype)
    if model == "rician":
        real, imaginary = jax.random.normal(key, (2,) + image.shape, image.dtype)
        return jnp.hypot(image + sigma * real, sigma * imaginary)
    raise ValueError(f"unknown noise model {model!r}; expected one of {NOISE_MODELS}")

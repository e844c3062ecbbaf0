"""Small phantoms and configs shared by the simulator tests."""
from __future__ import annotations

import jax
import numpy as np
from scipy import ndimage as ndi

import simulators
from simulators import distributions as dist


def smooth_volume(shape, seed: int = 0, sigma=None) -> np.ndarray:
    """Random smooth float32 array scaled to max |v| = 1 (default σ: 1 voxel, 3 along the last axis)."""
    sigma = (1.0,) * (len(shape) - 1) + (3.0,) if sigma is None else sigma
    rng = np.random.default_rng(seed)
    v = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (v / np.abs(v).max()).astype(np.float32)


def smooth_tissue(shape, seed: int = 1) -> np.ndarray:
    """Smooth random GM/WM/CSF probabilities (sum to 1), shape + (3,), float32."""
    logits = np.stack([4.0 * smooth_volume(shape, seed + k) for k in range(3)], axis=-1)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def plain_config(factor: int = 8, **fields):
    """The published T1w protocol (fixed widths) with contrast and noise off unless `fields` say otherwise."""
    config = simulators.default_config("T1w", factor, protocol="published")
    config.contrast = "none"
    config.noise = "none"
    config.update(fields)
    return config


def set_fixed(config, **values):
    for name, value in values.items():
        config.parameters[name] = dist.fixed(value)
    return config


def batch_of(params: dict, batch: int) -> dict:
    """Per-sample parameters: scalars broadcast to shape (batch,)."""
    return {k: np.full((batch,), v, np.float32) for k, v in params.items()}


def draw(key, config, batch: int) -> dict:
    """`sample_parameters` under one jit (faster to compile than op-by-op)."""
    return jax.jit(lambda k: simulators.sample_parameters(k, config, batch))(key)


def simulate(key, hf, tissue, tissue_means, params, config):
    """`simulate_batch` under one jit, as a training step would call it."""
    return jax.jit(lambda *a: simulators.simulate_batch(*a, config))(
        key, hf, tissue, tissue_means, params)

"""Image-quality metrics inside the brain mask (docs/method.md §6).

    RMSE = sqrt(mean over the mask of (estimate - reference)²)
    PSNR = 10 · log10(max(reference in the mask)² / MSE)                      [dB]
    SSIM = mean over the mask of the SSIM map, the map computed slice by slice
           (2-D over x, y for each z) with Gaussian weights, sigma 2.5 voxels

The brain mask is where the reference (ground truth) is non-zero, unless one
is given. Arrays are `(..., x, y, z)`: the last three axes are a volume, any
leading axes a batch, and the result has the leading shape (a scalar for one
volume). NumPy inputs are computed in float64 with NumPy; JAX arrays (traced
or not) with `jax.numpy`, so the same functions run inside `jax.jit`.

The SSIM map is that of `skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=2.5, use_sample_covariance=False)` on each x–y
slice: Gaussian windows truncated at 3.5 sigma, 'reflect' boundaries,
K1 = 0.01, K2 = 0.03, and `data_range` = max - min of the reference volume.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

SSIM_SIGMA = 2.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_VOLUME_AXES = (-3, -2, -1)


def _array_module(*arrays):
    """`jax.numpy` if any input is a JAX array (or tracer), else NumPy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _as_float(xp, *arrays):
    dtype = np.float64 if xp is np else jnp.result_type(float)
    return [xp.asarray(a, dtype=dtype) for a in arrays]


def brain_mask(reference):
    """The default mask: voxels where the reference is non-zero."""
    return reference != 0


def _masked_mean(xp, values, mask):
    """Mean of `values` over the mask's voxels, per volume; NaN for an empty mask."""
    count = xp.sum(mask, axis=_VOLUME_AXES)
    total = xp.sum(xp.where(mask, values, 0.0), axis=_VOLUME_AXES)
    return xp.where(count > 0, total / xp.maximum(count, 1), xp.nan)


def _mask_or_default(xp, reference, mask):
    mask = brain_mask(reference) if mask is None else xp.asarray(mask, dtype=bool)
    return xp.broadcast_to(mask, reference.shape)


def mse(reference, estimate, mask=None):
    """Mean squared error inside the mask, per volume (intensity units squared)."""
    xp = _array_module(reference, estimate, mask)
    reference, estimate = _as_float(xp, reference, estimate)
    return _masked_mean(xp, (estimate - reference) ** 2, _mask_or_default(xp, reference, mask))


def rmse(reference, estimate, mask=None):
    """Root mean squared error inside the mask, per volume (intensity units)."""
    xp = _array_module(reference, estimate, mask)
    return xp.sqrt(mse(reference, estimate, mask))


def psnr(reference, estimate, mask=None):
    """Peak signal-to-noise ratio in dB, the peak being the reference's maximum in the mask."""
    xp = _array_module(reference, estimate, mask)
    reference, estimate = _as_float(xp, reference, estimate)
    mask = _mask_or_default(xp, reference, mask)
    peak = xp.max(xp.where(mask, reference, -xp.inf), axis=_VOLUME_AXES)
    with np.errstate(divide="ignore"):  # a perfect estimate has PSNR = inf
        return 10.0 * xp.log10(peak ** 2 / mse(reference, estimate, mask))


@functools.lru_cache(maxsize=32)
def gaussian_window_matrix(n: int, sigma: float = SSIM_SIGMA,
                           truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """(n, n) matrix W with W @ v = scipy's 1-D Gaussian filter of v ('reflect' boundaries)."""
    window = ndimage.gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect", truncate=truncate)
    window.flags.writeable = False
    return window


def _gaussian_xy(xp, image):
    """Gaussian-weighted local mean over x and y of every slice of (..., x, y, z)."""
    for axis in (-3, -2):
        window = xp.asarray(gaussian_window_matrix(image.shape[axis]), dtype=image.dtype)
        image = xp.moveaxis(xp.tensordot(window, image, axes=([1], [image.ndim + axis])), 0, axis)
    return image


def data_range_of(reference):
    """max - min of each reference volume: the dynamic range SSIM's constants scale with."""
    xp = _array_module(reference)
    return xp.max(reference, axis=_VOLUME_AXES) - xp.min(reference, axis=_VOLUME_AXES)


def ssim_map(reference, estimate, data_range=None):
    """The SSIM of every voxel, slice by slice over (x, y); shape of the inputs."""
    xp = _array_module(reference, estimate, data_range)
    reference, estimate = _as_float(xp, reference, estimate)
    if data_range is None:
        data_range = data_range_of(reference)
    data_range = xp.asarray(data_range, dtype=reference.dtype)[..., None, None, None]
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_r, mu_e = _gaussian_xy(xp, reference), _gaussian_xy(xp, estimate)
    var_r = _gaussian_xy(xp, reference * reference) - mu_r ** 2
    var_e = _gaussian_xy(xp, estimate * estimate) - mu_e ** 2
    cov = _gaussian_xy(xp, reference * estimate) - mu_r * mu_e
    return ((2 * mu_r * mu_e + c1) * (2 * cov + c2)
            / ((mu_r ** 2 + mu_e ** 2 + c1) * (var_r + var_e + c2)))


def ssim(reference, estimate, mask=None, data_range=None):
    """Mean SSIM inside the mask, per volume (dimensionless, at most 1)."""
    xp = _array_module(reference, estimate, mask, data_range)
    reference, estimate = _as_float(xp, reference, estimate)
    return _masked_mean(xp, ssim_map(reference, estimate, data_range),
                        _mask_or_default(xp, reference, mask))


def all_metrics(reference, estimate, mask=None) -> dict[str, float]:
    """{'rmse', 'psnr', 'ssim'} of one volume pair, as Python floats."""
    return {"rmse": float(rmse(reference, estimate, mask)),
            "psnr": float(psnr(reference, estimate, mask)),
            "ssim": float(ssim(reference, estimate, mask))}

"""Image-quality metrics inside the brain mask (docs/method.md §6), and two artefact scores.

    RMSE = sqrt(mean over the mask of (estimate - reference)²)
    PSNR = 10 · log10(max(reference in the mask)² / MSE)                      [dB]
    SSIM = mean over the mask of the SSIM map, the map computed slice by slice
           (2-D over x, y for each z) with Gaussian weights, sigma 2.5 voxels

Arrays are `(..., x, y, z)`: the last three axes are a volume, any leading axes
a batch, and the result has the leading shape (a scalar for one volume). NumPy
inputs are computed in float64 with NumPy; JAX arrays (traced or not) with
`jax.numpy`, so the same functions run inside `jax.jit`.

The SSIM map is that of `skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=2.5, use_sample_covariance=False)` on each x–y
slice: Gaussian windows truncated at 3.5 sigma, 'reflect' boundaries,
K1 = 0.01, K2 = 0.03.

Two definitions differ only in the mask and in what SSIM is computed on:

- ours (`all_metrics`): the mask is the one given (the evaluation passes the
  brain of the tissue maps), else reference != 0; SSIM is computed on the
  estimate as it is (background errors near the brain's edge count), with
  `data_range` = max - min of the whole reference volume.
- reference (`reference_metrics`), as in the published code (Lin et al.,
  Medical Image Analysis 87:102807, 2023): the mask is reference != 0; both
  volumes are multiplied by the mask before SSIM (the estimate's background is
  zeroed), with `data_range` = max - min of the reference inside the mask.
  RMSE and PSNR have the same formulas in both, on their own mask.

The artefact scores (`slice_periodic_power`, `slice_periodic_rmse`, `tile_seam_score`) are NumPy only.
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


# --- the published code's definitions --------------------------------------------------------

def reference_ssim(reference, estimate):
    """SSIM as the published code computes it (NumPy, one volume or a batch).

    Mask M = reference != 0; SSIM map of (reference · M, estimate · M), slice by
    slice, with data_range = max - min of the reference inside M; averaged in M.
    That is the range the published code asks for; it passes it to skimage as
    `dynamic_range`, a keyword skimage does not read (it reads `data_range`),
    so its numbers may rest on skimage's default range for floats instead.
    """
    reference, estimate = (np.asarray(a, np.float64) for a in (reference, estimate))
    mask = brain_mask(reference)
    inside = np.where(mask, reference, np.nan)
    data_range = np.nanmax(inside, axis=_VOLUME_AXES) - np.nanmin(inside, axis=_VOLUME_AXES)
    return ssim(reference * mask, estimate * mask, mask=mask, data_range=data_range)


def reference_metrics(reference, estimate) -> dict[str, float]:
    """{'psnr_ref', 'ssim_ref', 'rmse_ref'} of one volume pair: the published definitions."""
    return {"psnr_ref": float(psnr(reference, estimate)),
            "ssim_ref": float(reference_ssim(reference, estimate)),
            "rmse_ref": float(rmse(reference, estimate))}


# --- artefact scores ----------------------------------------------------------------------------

def _default_mask(truth: np.ndarray, mask) -> np.ndarray:
    return np.broadcast_to(truth != 0 if mask is None else np.asarray(mask, bool), truth.shape)


def _slice_error_spectrum(truth, estimate, factor: int, mask) -> tuple[np.ndarray, np.ndarray, int]:
    """(P(m) for m = 0 … n - 1, the harmonic bins k · n / r, the mask's voxel count)."""
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    n, factor = truth.shape[-1], int(factor)
    if factor < 1 or n % factor:
        raise ValueError(f"the slice count {n} must be a multiple of the factor {factor}")
    mask = _default_mask(truth, mask)
    error = np.where(mask, estimate - truth, 0.0)
    power = np.sum(np.abs(np.fft.fft(error, axis=-1)) ** 2, axis=tuple(range(error.ndim - 1)))
    return power, np.arange(1, factor) * (n // factor), int(mask.sum())


def slice_periodic_power(truth, estimate, factor: int, mask=None) -> float:
    """Share of the error's power along the slices at the LF slice frequency and its harmonics.

    The error e = (estimate - truth), set to 0 outside the mask (default:
    truth != 0), is Fourier transformed along the slice axis (the last, n
    slices, n a multiple of r = `factor`) for every line of the other axes.
    With P(m) = sum over lines of |DFT(e)(m)|², m = 0 … n - 1 (both signs of
    each frequency), the score is

        sum of P(m) over m = k · n / r, k = 1 … r - 1   /   sum of P(m) over m = 1 … n - 1,

    the bins at k / r cycles per HF slice, k ≥ 1 (higher harmonics alias onto
    these or onto DC). The DC bin is left out of both sums, so a per-line mean
    error (a bias) does not count; removing each line's mean first would give
    the same number. A value in [0, 1]; white noise scores about
    (r - 1) / (n - 1); NaN when the error has no power outside DC (beyond
    rounding: 1e-20 of the total). A share: an estimate with a large
    broadband error can score low while its periodic error is large in
    absolute terms (see `slice_periodic_rmse`).
    """
    power, harmonics, _ = _slice_error_spectrum(truth, estimate, factor, mask)
    total = float(power[1:].sum())
    if total <= 1e-20 * float(power.sum()) or total == 0.0:   # nothing but rounding beside DC
        return float("nan")
    return float(power[harmonics].sum()) / total


def slice_periodic_rmse(truth, estimate, factor: int, mask=None) -> float:
    """The RMS, over the mask's voxels, of the error's component at the slice frequency and harmonics.

    sqrt(sum of P(m) over the harmonic bins / (n · voxels in the mask)), with P
    and the bins of `slice_periodic_power` (by Parseval, the part of the error's
    sum of squares those bins carry); intensity units, comparable with RMSE.
    """
    power, harmonics, count = _slice_error_spectrum(truth, estimate, factor, mask)
    return float(np.sqrt(power[harmonics].sum() / (power.size * count))) if count else float("nan")


def _step_sizes(volume: np.ndarray, mask: np.ndarray, borders: np.ndarray) -> tuple[float, float]:
    """Mean |v[..., i] - v[..., i - 1]| over pairs (i - 1, i) at `borders` and elsewhere, in the mask."""
    steps = np.abs(np.diff(volume, axis=-1))
    inside = mask[..., 1:] & mask[..., :-1]
    at_border = np.zeros(volume.shape[-1] - 1, bool)
    at_border[borders - 1] = True
    seam, rest = inside & at_border, inside & ~at_border
    return steps[seam].mean() if seam.any() else np.nan, steps[rest].mean() if rest.any() else np.nan


def tile_seam_score(truth, estimate, borders_hf, mask=None) -> float:
    """How much more the estimate jumps between adjacent slices at tile borders than the truth does.

    For a volume v (..., n slices) and HF border indices b (a tile starts at
    slice b), seam(v) = mean |v[..., b] - v[..., b - 1]| over the borders,
    rest(v) = the same mean over every other adjacent pair, both over the
    pairs whose two voxels are in the mask (default truth != 0). The score is

        (seam(estimate) / rest(estimate)) / (seam(truth) / rest(truth)),

    1.0 when seams are no more visible than in the truth (the truth scores
    exactly 1). NaN without borders (a single tile along the slices).
    """
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    borders = np.unique(np.asarray(list(borders_hf), int))
    n = truth.shape[-1]
    if borders.size == 0:
        return float("nan")
    if borders.min() < 1 or borders.max() > n - 1:
        raise ValueError(f"tile borders must lie in 1 … {n - 1}, got {borders.tolist()}")
    mask = _default_mask(truth, mask)
    seam_e, rest_e = _step_sizes(estimate, mask, borders)
    seam_t, rest_t = _step_sizes(truth, mask, borders)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((seam_e / rest_e) / (seam_t / rest_t))

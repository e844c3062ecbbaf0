"""What the generalisation benchmark measures of one HF estimate against the truth, inside the brain.

Every estimate and the truth are first put on the scale of their own brain mean
(each divided by the mean of its brain voxels; for an estimate, the mean of the
LF brain it came from, since that is all a real scan offers), so that IQT and
interpolation are compared on equal terms; then:

- `psnr`, `ssim`: `iqt.metrics` ('ours': SSIM slice by slice with Gaussian
  weights; PSNR's peak and SSIM's data range from the truth): contrast counts.
- `psnr_fit`, `ssim_fit`: the same after the affine intensity fit a·estimate + b
  that best matches the truth in the brain (least squares): structure only. A
  network that restores contrast gains in the first pair and not in the second.
- `periodic_rmse`: the RMS of the error's component at the LF slice frequency
  and its harmonics (`iqt.metrics.slice_periodic_rmse`), after the fit.
- `texture_x`, `texture_y`, `texture_z`: per axis, the error's power at the
  network's up-sampling periods against the neighbouring frequencies
  (`texture_ratio`). A grid texture that repeats every 2, 4, ... voxels raises
  it; an error without such structure scores about 1. `texture` is the larger
  of the two in-plane axes: along the slices the up-sampling periods divide the
  slice spacing (2 of 6 or 8), so there they are part of `periodic_rmse`.
- `edge_sharpness`: the estimate's gradient along the slices against the truth's,
  at the truth's strongest slice-axis edges (`edge_sharpness`): 1 is as sharp as
  the truth, cubic splines from thick slices score well below.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from iqt import metrics

TEXTURE_NEIGHBOURS = 4     # frequency bins on each side (beyond the adjacent one) that a peak is held against
EDGE_QUANTILE = 0.9        # `edge_sharpness` looks at the truth's strongest 10 % slice-axis gradients


def brain_scaled(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """`volume` divided by the mean of its `brain` voxels (float64)."""
    volume = np.asarray(volume, np.float64)
    mean = float(volume[brain].mean())
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError("the volume's brain mean is not positive")
    return volume / mean


def affine_fit(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """a·estimate + b with (a, b) the least-squares fit of the estimate to the truth over `mask`."""
    x, y = np.asarray(estimate, np.float64)[mask], np.asarray(truth, np.float64)[mask]
    design = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    return a * np.asarray(estimate, np.float64) + b


def _peak_bins(n: int, period: int) -> list[int]:
    """The DFT bins (of n) at m / period cycles per voxel, m = 1 … period // 2."""
    return sorted({int(round(m * n / period)) for m in range(1, period // 2 + 1)} - {0})


def texture_ratio(error: np.ndarray, axis: int, periods: Sequence[int]) -> float:
    """Mean over the peaks at `periods` (voxels) along `axis` of the error's power at the peak / the
    median power of its neighbouring bins (`TEXTURE_NEIGHBOURS` on each side beyond the adjacent ones).

    The power is |DFT along `axis`|² summed over every line of the other axes;
    1 for an error without periodic structure at those periods."""
    error = np.moveaxis(np.asarray(error, np.float64), axis, -1)
    n = error.shape[-1]
    power = np.sum(np.abs(np.fft.rfft(error, axis=-1)) ** 2, axis=tuple(range(error.ndim - 1)))
    ratios = []
    for period in periods:
        if period < 2 or period > n // 2:
            continue
        for k in _peak_bins(n, period):
            near = [j for d in range(2, TEXTURE_NEIGHBOURS + 2) for j in (k - d, k + d) if 1 <= j < power.size]
            if near:
                ratios.append(power[k] / max(float(np.median(power[near])), 1e-300))
    return float(np.mean(ratios)) if ratios else float("nan")


def edge_sharpness(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray) -> float:
    """sum |∂z estimate| / sum |∂z truth| over the mask's voxels where |∂z truth| is in its top 10 %
    (∂z: central differences along the last, slice axis)."""
    grad_t = np.abs(np.gradient(np.asarray(truth, np.float64), axis=-1))[mask]
    grad_e = np.abs(np.gradient(np.asarray(estimate, np.float64), axis=-1))[mask]
    edges = grad_t >= np.quantile(grad_t, EDGE_QUANTILE)
    return float(grad_e[edges].sum() / max(grad_t[edges].sum(), 1e-300))


def estimate_scores(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray, factor: int,
                    periods: Sequence[int]) -> dict[str, float]:
    """Every score of one estimate; truth and estimate (x, y, z) on their brain-mean scale, z a
    multiple of `factor`; `periods`: the network's up-sampling periods in HF voxels."""
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    data_range = float(truth.max() - truth.min())
    fitted = affine_fit(truth, estimate, mask)
    error = np.where(mask, fitted - truth, 0.0)
    texture = [texture_ratio(error, axis, periods) for axis in range(3)]
    return {"psnr": float(metrics.psnr(truth, estimate, mask)),
            "ssim": float(metrics.ssim(truth, estimate, mask, data_range)),
            "psnr_fit": float(metrics.psnr(truth, fitted, mask)),
            "ssim_fit": float(metrics.ssim(truth, fitted, mask, data_range)),
            "periodic_rmse": metrics.slice_periodic_rmse(truth, fitted, factor, mask),
            "texture_x": texture[0], "texture_y": texture[1], "texture_z": texture[2],
            "texture": float(np.nanmax(texture[:2])),
            "edge_sharpness": edge_sharpness(truth, fitted, mask)}

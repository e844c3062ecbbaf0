"""N4 bias-field correction (Tustison et al. 2010) with SimpleITK.

The smooth multiplicative field is fitted by `N4BiasFieldCorrectionImageFilter`
on a shrunk copy of the image (voxels about `SHRINK_TO_MM` wide), inside a
head mask, and then evaluated on the full-resolution grid:

    corrected = image / exp(log_field)
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

SHRINK_TO_MM = 4.0          # fit the field on voxels about this wide (it is smooth)
ITERATIONS = (50, 50)   # per fitting level; more levels fit anatomy as well as the field
CONTROL_POINTS = 4          # B-spline control points per axis at the first level
CONVERGENCE = 1e-3         # tighter fits the anatomy too (CV 3.8 % vs 2.8 % in the tests)


def _image(data: np.ndarray, voxel_sizes_mm) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in voxel_sizes_mm))
    return image


def shrink_factors(voxel_sizes_mm, shape, to_mm: float = SHRINK_TO_MM) -> tuple[int, int, int]:
    """Per-axis shrink factors giving voxels about `to_mm` wide, keeping at least 8 voxels."""
    return tuple(int(max(1, min(round(to_mm / s), n // 8))) for s, n in zip(voxel_sizes_mm, shape))


def n4_correct(data: np.ndarray, voxel_sizes_mm, head_mask: np.ndarray, *, shrink_to_mm: float = SHRINK_TO_MM,
               iterations=ITERATIONS, control_points: int = CONTROL_POINTS) -> tuple[np.ndarray, np.ndarray, dict]:
    """(corrected image, bias field, parameters): float32 (x, y, z) arrays on `data`'s grid.

    The field is 1 on average inside `head_mask`, so the corrected image keeps
    the input's intensity scale; outside the mask the field is extrapolated.
    """
    data = np.asarray(data, dtype=np.float32)
    fit_mask = np.asarray(head_mask, dtype=bool) & (data > 0)   # N4 works on log intensities
    image = _image(np.maximum(data, 0.0), voxel_sizes_mm)
    factors = shrink_factors(voxel_sizes_mm, data.shape, shrink_to_mm)
    small = sitk.Shrink(image, factors)
    small_mask = sitk.Shrink(_image(fit_mask.astype(np.uint8), voxel_sizes_mm), factors)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.SetNumberOfControlPoints([int(control_points)] * 3)
    corrector.SetConvergenceThreshold(CONVERGENCE)
    corrector.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(image)).transpose(2, 1, 0)
    log_field = log_field - log_field[fit_mask].mean()
    field = np.exp(log_field).astype(np.float32)
    parameters = {"shrink_factors": list(factors), "iterations": [int(i) for i in iterations],
                  "control_points": int(control_points), "convergence": CONVERGENCE,
                  "fitted_voxels": int(fit_mask.sum()),
                  "field_range": [float(field[fit_mask].min()), float(field[fit_mask].max())]}
    return (data / field).astype(np.float32), field, parameters

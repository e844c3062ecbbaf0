"""Brain extraction offline on a CPU: thresholds, morphology, the largest component.

1. Head: Otsu's threshold of the smoothed scan, holes filled, the largest component.
2. Tissue: the lower of two Otsu thresholds (three classes) of the head's own
   voxels: brain tissue and scalp above it; CSF, skull and air below.
3. Brain core: the tissue eroded by `erode_mm`, which cuts the thin bridges to
   the scalp, then its largest component, dilated back inside the tissue.
4. Brain: the core closed by `close_mm` (taking in sulcal CSF) and its holes
   filled slice by slice (the ventricles), inside the head.

Erosion and dilation are by physical distance (Maurer's Euclidean distance map
with the voxel sizes), so thick slices are handled as what they are.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_multiotsu, threshold_otsu

from iqt.errors import UserError

SMOOTH_MM = 1.0
ERODE_MM = 3.0
CLOSE_MM = 6.0


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def _dilate(mask: np.ndarray, mm: float, sizes) -> np.ndarray:
    """Voxels within `mm` of the mask (Euclidean, in mm; Maurer's distance map, as scipy's EDT but faster)."""
    if not mask.any():
        return mask.copy()
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.uint8))
    image.SetSpacing(tuple(float(s) for s in sizes))
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    return mask | (sitk.GetArrayViewFromImage(distance).transpose(2, 1, 0) <= mm)


def _erode(mask: np.ndarray, mm: float, sizes) -> np.ndarray:
    """Voxels more than `mm` from the outside of the mask."""
    return ~_dilate(~mask, mm, sizes)


def _fill_holes_by_slice(mask: np.ndarray, slice_axis: int) -> np.ndarray:
    moved = np.moveaxis(mask, slice_axis, 0)
    filled = np.stack([ndimage.binary_fill_holes(s) for s in moved])
    return np.moveaxis(filled, 0, slice_axis)


def smooth(data: np.ndarray, voxel_sizes_mm, sigma_mm: float = SMOOTH_MM) -> np.ndarray:
    """Gaussian smoothing by `sigma_mm` along each axis (float32)."""
    sigma = [sigma_mm / float(s) for s in voxel_sizes_mm]
    return ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), sigma)


def head_mask(data: np.ndarray, voxel_sizes_mm, slice_axis: int = 2) -> np.ndarray:
    """The head (bool): above Otsu's threshold, holes filled (the scalp's inside too), the largest component."""
    smoothed = smooth(data, voxel_sizes_mm)
    if not np.ptp(smoothed) > 0:
        raise UserError("the scan is uniform (every voxel has the same intensity); it holds no head")
    foreground = smoothed > threshold_otsu(smoothed)
    return _largest_component(_fill_holes_by_slice(ndimage.binary_fill_holes(foreground), slice_axis))


def extract_brain(data: np.ndarray, voxel_sizes_mm, slice_axis: int = 2, *, head: np.ndarray | None = None,
                  erode_mm: float = ERODE_MM, close_mm: float = CLOSE_MM) -> tuple[np.ndarray, dict]:
    """(brain mask (bool, `data`'s shape), parameters) of a head scan."""
    sizes = np.asarray(voxel_sizes_mm, dtype=np.float64)
    head = head_mask(data, sizes, slice_axis) if head is None else np.asarray(head, dtype=bool)
    smoothed = smooth(data, sizes)
    threshold = float(threshold_multiotsu(smoothed[head], classes=3)[0])
    tissue = head & (smoothed > threshold)
    core = _largest_component(_erode(tissue, erode_mm, sizes))
    if not core.any():
        raise UserError(f"no brain found: nothing is left of the tissue above {threshold:.4g} after an "
                        f"erosion by {erode_mm:g} mm; pass a brain mask with --mask")
    core = _dilate(core, erode_mm, sizes) & tissue
    brain = _erode(_dilate(core, close_mm, sizes), close_mm, sizes)
    brain = _fill_holes_by_slice(ndimage.binary_fill_holes(brain), slice_axis) & head
    parameters = {"method": "otsu+morphology", "smooth_mm": SMOOTH_MM, "tissue_threshold": threshold,
                  "erode_mm": erode_mm, "close_mm": close_mm, "head_voxels": int(head.sum()),
                  "brain_voxels": int(brain.sum())}
    return brain, parameters


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A ∩ B| / (|A| + |B|) of two masks."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return float(2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b)))


def has_nonzero_background(data: np.ndarray, slice_axis: int = 2, border: int = 2) -> bool:
    """Whether most voxels of the in-plane border are not zero (the scan is not skull-stripped).

    Looks at the outermost `border` voxels around every slice.
    """
    slices = np.moveaxis(np.asarray(data), slice_axis, -1)
    frame = np.ones(slices.shape[:2], dtype=bool)
    frame[border:-border, border:-border] = False
    edges = slices[frame]                      # (border voxels, slices)
    return bool(np.count_nonzero(edges) > 0.5 * edges.size)

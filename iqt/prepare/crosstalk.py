"""Cross-talk correction for T1w: every slice's histogram matched to a central slice.

In an interleaved multi-slice acquisition, excitations of neighbouring slices
saturate each other, so slices differ in brightness (and contrast) in a
pattern that has nothing to do with anatomy. As in the published study, each
slice's brain voxels are mapped so that their histogram equals that of one
reference slice (the slice with the largest brain area, near the centre),
with scikit-image's `match_histograms`; voxels outside the brain are left alone.

The assumption is that the brain looks alike in every slice. It holds near
the reference; farther away true differences between slices are matched away
too. Measured on the MNI152 template in 5 mm slices with ±20 % slice gains:
slice means within 2 % of the truth's up to 2 slices (10 mm) from the
reference, 4 to 18 % off beyond. Slices with less brain than a quarter of the
reference's (the lowest and highest) are left alone, since matching them to a
central slice would change them far more than any cross-talk does.
"""
from __future__ import annotations

import numpy as np
from skimage.exposure import match_histograms

from iqt.errors import UserError

MIN_AREA_FRACTION = 0.25  # slices with less brain than this fraction of the reference's are left alone


def reference_slice(mask: np.ndarray, slice_axis: int) -> int:
    """The slice index with the most brain voxels."""
    areas = np.count_nonzero(np.moveaxis(np.asarray(mask, dtype=bool), slice_axis, -1), axis=(0, 1))
    if not areas.any():
        raise UserError("the brain mask is empty; cross-talk correction needs brain voxels")
    return int(np.argmax(areas))


def correct_crosstalk(data: np.ndarray, mask: np.ndarray, slice_axis: int,
                      reference: int | None = None) -> tuple[np.ndarray, dict]:
    """(corrected image float32, parameters): each slice's brain histogram → the reference's."""
    mask = np.asarray(mask, dtype=bool)
    reference = reference_slice(mask, slice_axis) if reference is None else int(reference)
    image = np.moveaxis(np.array(data, dtype=np.float32), slice_axis, -1)   # a copy, slices last
    brain = np.moveaxis(mask, slice_axis, -1)
    target = image[..., reference][brain[..., reference]]
    matched = []
    for k in range(image.shape[-1]):
        inside = brain[..., k]
        if k == reference or np.count_nonzero(inside) < MIN_AREA_FRACTION * target.size:
            continue
        before = float(image[..., k][inside].mean())
        image[..., k][inside] = match_histograms(image[..., k][inside], target)
        matched.append({"slice": k, "mean_before": before, "mean_after": float(image[..., k][inside].mean())})
    parameters = {"reference_slice": reference, "method": "skimage.exposure.match_histograms",
                  "min_area_fraction": MIN_AREA_FRACTION, "slices_matched": len(matched), "slices": matched}
    return np.moveaxis(image, -1, slice_axis), parameters

"""A head-like scan around a skull-stripped brain, for tests and benchmarks.

Around the brain (image > 0) shells are laid by their distance d from it (mm):
CSF (0 < d ≤ 2), skull (2 < d ≤ 8), scalp fat (8 < d ≤ 14, bright in T1w),
then air; Rician noise covers everything, so the background is not zero, as
in a magnitude image from a scanner.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# (outer distance from the brain in mm, intensity / the brain's 99th percentile)
SHELLS_T1W = ((2.0, 0.12), (8.0, 0.04), (14.0, 0.75))
NOISE = 0.02        # noise sd / the brain's 99th percentile


def synthetic_head(brain_image: np.ndarray, voxel_sizes_mm, *, pad_mm: float = 20.0, noise: float = NOISE,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(head scan, brain mask): `brain_image` padded by `pad_mm` with shells, air and noise.

    Both are on the padded grid (the padding is `round(pad_mm / voxel size)` voxels per side).
    """
    sizes = np.asarray(voxel_sizes_mm, dtype=np.float64)
    pad = [(int(round(pad_mm / s)),) * 2 for s in sizes]
    image = np.pad(np.asarray(brain_image, dtype=np.float32), pad)
    brain = image > 0
    scale = float(np.percentile(image[brain], 99))
    distance = ndimage.distance_transform_edt(~brain, sampling=sizes)
    inner = 0.0
    for outer, level in SHELLS_T1W:
        image[(distance > inner) & (distance <= outer)] = level * scale
        inner = outer
    rng = np.random.default_rng(seed)
    sd = noise * scale
    noisy = np.hypot(image + rng.normal(0, sd, image.shape), rng.normal(0, sd, image.shape))
    return noisy.astype(np.float32), brain

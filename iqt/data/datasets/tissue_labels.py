"""Tissue maps from a FreeSurfer `aparc+aseg` segmentation (hard 0/1 probabilities).

Label -> tissue (FreeSurferColorLUT numbers):

| tissue | labels |
| --- | --- |
| GM | 3, 42 (cerebral cortex), 1000-1035, 2000-2035 (cortical parcels, ctx-lh/rh-*), 8, 47 (cerebellar cortex), 10, 49 (thalamus), 11, 50 (caudate), 12, 51 (putamen), 13, 52 (pallidum), 17, 53 (hippocampus), 18, 54 (amygdala), 26, 58 (accumbens), 80 (non-WM hypointensities) |
| WM | 2, 41 (cerebral WM), 7, 46 (cerebellar WM), 16 (brain stem), 28, 60 (ventral DC), 77 (WM hypointensities), 85 (optic chiasm), 192, 251-255 (corpus callosum) |
| CSF | 4, 43 (lateral ventricles), 5, 44 (inferior lateral ventricles), 14, 15 (3rd, 4th ventricle), 24 (CSF), 31, 63 (choroid plexus), 72 (5th ventricle) |

Every other label (0 = unknown/background, vessels 30/62, ...) is no tissue.
"""
from __future__ import annotations

import numpy as np

GM_LABELS = (3, 42, 8, 47, 10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54, 26, 58, 80,
             *range(1000, 1036), *range(2000, 2036))
WM_LABELS = (2, 41, 7, 46, 16, 28, 60, 77, 85, 192, 251, 252, 253, 254, 255)
CSF_LABELS = (4, 43, 5, 44, 14, 15, 24, 31, 63, 72)


def tissue_from_aseg(labels: np.ndarray) -> np.ndarray:
    """(x, y, z) integer labels -> (x, y, z, 3) float32 (gm, wm, csf) in {0, 1}."""
    labels = np.rint(np.asarray(labels)).astype(np.int32)
    maps = [np.isin(labels, group) for group in (GM_LABELS, WM_LABELS, CSF_LABELS)]
    return np.stack(maps, axis=-1).astype(np.float32)

"""The embedded default data: the MNI152 2009a template shipped inside nilearn.

The T1 image and its GM and WM probability maps are read from the installed
`nilearn` package's own data files; nothing is downloaded and no nilearn
function is called. CSF is what is left of the brain:

    CSF = clip(brain_mask - GM - WM, 0, 1),   brain_mask = T1 > 0

so GM + WM + CSF = max(GM + WM, brain_mask) <= 1 provided GM + WM <= 1. The
shipped maps satisfy GM + WM <= 1 already; to guarantee it, any voxel where
GM + WM > 1 has both rescaled by 1 / (GM + WM) (a no-op for nilearn 0.14.1).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from iqt.data.nifti import check_same_grid, load_volume
from iqt.data.subject import Subject, tissue_probability
from iqt.errors import UserError

TEMPLATE_ID = "mni152_2009a"
_FILE_PATTERN = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


def template_path(kind: str) -> Path:
    """Path of nilearn's shipped MNI152 2009a file; `kind` is 't1', 'gm' or 'wm'.

    Found without importing nilearn (whose import is slow and not needed).
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise UserError("the nilearn package is not installed; it ships the default MNI152 "
                        "template (pip install nilearn)")
    return Path(spec.origin).parent / "datasets" / "data" / _FILE_PATTERN.format(kind)


def csf_from_brain(brain_mask: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """CSF probability as the brain left over by GM and WM, clipped to [0, 1]."""
    return np.clip(brain_mask.astype(np.float32) - gm - wm, 0.0, 1.0).astype(np.float32)


def _cap_sum_at_one(gm: np.ndarray, wm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescales GM and WM where their sum exceeds 1, so that GM + WM <= 1."""
    total = gm + wm
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1.0), 1.0).astype(np.float32)
    return gm * scale, wm * scale


@functools.lru_cache(maxsize=1)
def load_template() -> Subject:
    """The MNI152 2009a T1 (197, 233, 189) at 1 mm with (gm, wm, csf) maps.

    Cached: the returned arrays are shared, so treat them as read-only.
    """
    t1 = load_volume(template_path("t1"), name="MNI152 T1 template")
    gm_volume = load_volume(template_path("gm"), name="MNI152 GM map")
    wm_volume = load_volume(template_path("wm"), name="MNI152 WM map")
    check_same_grid(t1, {"MNI152 GM map": gm_volume, "MNI152 WM map": wm_volume})
    gm, wm = _cap_sum_at_one(tissue_probability(gm_volume, "MNI152 GM map", template_path("gm")),
                             tissue_probability(wm_volume, "MNI152 WM map", template_path("wm")))
    csf = csf_from_brain(t1.data > 0, gm, wm)
    tissue = np.stack([gm, wm, csf], axis=-1)
    for array in (t1.data, tissue):
        array.flags.writeable = False
    return Subject(subject_id=TEMPLATE_ID, image=t1.data, tissue=tissue, affine=t1.affine)

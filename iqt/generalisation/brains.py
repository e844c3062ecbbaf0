"""The benchmark's evaluation brains: Colin27 (anatomy never trained on) and the template's test slab.

Colin27 is one subject scanned 27 times and averaged (Holmes et al., "Enhancement
of MR images using registration for signal averaging", J Comput Assist Tomogr
22(2):324-333, 1998): sharp individual folding, unlike the smooth population
average the demo trains on. Debian's package `mricron-data` ships it brain-extracted
at 0.5 mm (`ch2better.nii.gz`). It is an **evaluation brain only**: no config,
dataset or test trains on it, or the generalisation figures mean nothing.

A brain here is a `Brain`: the HF truth on the run's HF voxel size, axes in RAS
order (x = R-L, y = A-P, z = S-I, the slice axis of an axial acquisition, last),
background 0, and its brain mask. Colin27 is block-averaged from 0.5 mm when
the run's voxel is a whole multiple of it (1 mm: 2 × 2 × 2 blocks) and resampled
with an anti-aliasing filter otherwise (`skimage.transform.rescale`).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.measure import block_reduce
from skimage.transform import rescale

import simulators
from iqt.data.nifti import load_volume, voxel_sizes_from_affine
from iqt.errors import UserError

COLIN27_FILE = "ch2better.nii.gz"
COLIN27_PACKAGE = "mricron-data"
COLIN27_SYSTEM_DIR = Path("/usr/share/mricron/templates")    # where Debian's package installs it
COLIN27_HINT = (f"install Debian's {COLIN27_PACKAGE} (apt-get install {COLIN27_PACKAGE}) or pass "
                f"--colin27 PATH/{COLIN27_FILE}")
_OBLIQUE_TOLERANCE = 1e-3    # off-axis share of a voxel axis above which a grid counts as oblique
_ISOTROPIC_TOLERANCE = 0.01  # relative difference of voxel sizes allowed in an 'isotropic' grid
_MARGIN_VOXELS = 2           # background kept around the brain's bounding box
TEMPLATE_BRAIN_THRESHOLD = 0.5   # the template's brain: tissue sum at least this (the training target's)


@dataclasses.dataclass(frozen=True)
class Brain:
    """An HF evaluation brain. image (x, y, z) float32, RAS order, slice (S-I) axis last, 0 outside
    `brain` (bool, same shape); voxel_mm: its isotropic voxel size."""

    name: str
    image: np.ndarray
    brain: np.ndarray
    voxel_mm: float

    @property
    def affine(self) -> np.ndarray:
        """A RAS affine of this grid (origin at the first voxel), for figures and files."""
        return np.diag([self.voxel_mm] * 3 + [1.0])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "iqt" / "colin27"


def _fetch_package(cache: Path) -> Path | None:
    """Unpacks Debian's package into `cache` with apt-get download and dpkg -x; the file, or None."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="iqt-colin27-") as folder:
        try:
            subprocess.run(["apt-get", "download", COLIN27_PACKAGE], cwd=folder, check=True,
                           capture_output=True, timeout=300)
            debs = sorted(Path(folder).glob(f"{COLIN27_PACKAGE}_*.deb"))
            if not debs:
                return None
            unpacked = Path(folder) / "root"
            subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True,
                           timeout=300)
        except (OSError, subprocess.SubprocessError):
            return None
        found = unpacked / COLIN27_SYSTEM_DIR.relative_to("/") / COLIN27_FILE
        if not found.is_file():
            return None
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, cache / f".{COLIN27_FILE}.part")
        os.replace(cache / f".{COLIN27_FILE}.part", cache / COLIN27_FILE)
    return cache / COLIN27_FILE


def find_colin27(path: str | os.PathLike | None = None, fetch: bool = True) -> Path:
    """The Colin27 file: `path`, else Debian's installed package, else a cached copy, else (with
    `fetch`) Debian's package downloaded with apt-get and unpacked into the cache."""
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"--colin27 {path} does not exist (or is not a file)")
        return Path(path)
    for candidate in (COLIN27_SYSTEM_DIR / COLIN27_FILE, _cache_dir() / COLIN27_FILE):
        if candidate.is_file():
            return candidate
    fetched = _fetch_package(_cache_dir()) if fetch else None
    if fetched is None:
        raise UserError(f"Colin27 ({COLIN27_FILE}) was not found: {COLIN27_HINT}")
    return fetched


def to_ras(data: np.ndarray, affine: np.ndarray, name: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """`data` with its axes reordered and flipped to R, A, S (no resampling); its voxel sizes (mm).
    An oblique grid, which would need resampling, is a `UserError`."""
    linear = np.asarray(affine, float)[:3, :3]
    unit = np.abs(linear) / np.linalg.norm(linear, axis=0)
    if np.any(np.sort(unit, axis=0)[:2] > _OBLIQUE_TOLERANCE):
        raise UserError(f"{name} is oblique (its voxel axes are not the scanner's); resample it to an "
                        f"axis-aligned grid first")
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(data, ornt)
    sizes = voxel_sizes_from_affine(affine)
    return np.ascontiguousarray(ras), tuple(float(sizes[int(k)]) for k in np.argsort(ornt[:, 0]))


def resample_to(image: np.ndarray, voxel_mm: float, target_mm: float, name: str) -> np.ndarray:
    """An isotropic volume from `voxel_mm` to the coarser `target_mm`: block means for a whole ratio,
    else anti-aliased linear resampling."""
    ratio = target_mm / voxel_mm
    if ratio < 1 - _ISOTROPIC_TOLERANCE:
        raise UserError(f"{name} has {voxel_mm:g} mm voxels, coarser than the run's {target_mm:g} mm: a truth "
                        f"cannot be finer than its source")
    if abs(ratio - round(ratio)) < 1e-6:
        k = int(round(ratio))
        crop = tuple(slice(0, (s // k) * k) for s in image.shape)
        return block_reduce(image[crop], (k, k, k), np.mean).astype(np.float32)
    return rescale(image, 1.0 / ratio, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def crop_to_brain(image: np.ndarray, brain: np.ndarray, margin: int = _MARGIN_VOXELS):
    """(image, brain) cut to the brain's bounding box plus `margin` voxels."""
    if not brain.any():
        raise UserError("the evaluation brain is empty after resampling")
    box = tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + margin + 1) for i in np.nonzero(brain))
    return image[box], brain[box]


def colin27(path: str | os.PathLike, hf_voxel_mm: float) -> Brain:
    """Colin27 from a brain-extracted NIfTI file, on `hf_voxel_mm` isotropic voxels (RAS, S-I last).

    The brain is where the brain-extracted image is > 0, resampled as a fraction and kept at ≥ 0.5."""
    volume = load_volume(path, name="Colin27")
    data, sizes = to_ras(volume.data, volume.affine, f"Colin27 {path}")
    if max(sizes) - min(sizes) > _ISOTROPIC_TOLERANCE * max(sizes):
        raise UserError(f"Colin27 {path} has anisotropic voxels {sizes} mm; the benchmark needs an "
                        f"isotropic brain")
    data = np.maximum(data, 0.0)
    image = resample_to(data, sizes[0], hf_voxel_mm, f"Colin27 {path}")
    brain = resample_to((data > 0).astype(np.float32), sizes[0], hf_voxel_mm, f"Colin27 {path}") >= 0.5
    image, brain = crop_to_brain(np.where(brain, image, 0.0).astype(np.float32), brain)
    return Brain("colin27", image, brain, float(hf_voxel_mm))


def template_test_slab() -> Brain:
    """The in-distribution reference: the MNI152 template's held-out test slab at 1 mm, as the
    training target sees it (the image times the tissue sum, where that sum is ≥ 0.5)."""
    from iqt.data import template   # here: importing it reads nilearn's package data lazily
    from iqt.data.datasets.iqt_template import SLABS_Y

    subject = template.load_template()
    start, stop = SLABS_Y["test"]
    tissue = subject.tissue[:, start:stop]
    brain = np.asarray(simulators.tissue_sum(tissue)) >= TEMPLATE_BRAIN_THRESHOLD
    image = np.asarray(simulators.hf_object(subject.image[:, start:stop], tissue, TEMPLATE_BRAIN_THRESHOLD),
                       np.float32)
    data, _ = to_ras(image, subject.affine, "the MNI152 template")
    mask, _ = to_ras(brain, subject.affine, "the MNI152 template")
    image, brain = crop_to_brain(data, mask)
    return Brain("template_test", image, brain, float(voxel_sizes_from_affine(subject.affine)[0]))

"""The voxel-size check against a training run, and in-plane resampling to its voxels.

A run was trained on HF voxels `sim.hf_voxel_mm` wide, simulating LF slices
`sim.factor · sim.hf_voxel_mm` apart (its `config.json`). A scan whose slice
spacing is more than `TOLERANCE` away from that is refused (or, if allowed, a
warning); the in-plane axes are resampled to `sim.hf_voxel_mm` with SimpleITK.
The slice axis is never resampled: enhancing it is the network's job.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from iqt import config_io
from iqt.data.nifti import voxel_sizes_from_affine
from iqt.errors import UserError

TOLERANCE = 0.15        # largest relative difference from the training spacing
FWHM_PER_SD = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclasses.dataclass(frozen=True)
class TrainingGrid:
    """The voxels a run was trained on: in-plane size and LF slice spacing (mm), and the factor."""

    in_plane_mm: float
    slice_mm: float
    factor: int

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike) -> "TrainingGrid | None":
        """The run's training grid from its config.json (None if it names no `sim.hf_voxel_mm`)."""
        sim = config_io.load_config(workdir).get("sim", {})
        if "hf_voxel_mm" not in sim or "factor" not in sim:
            return None
        hf_mm, factor = float(sim["hf_voxel_mm"]), int(sim["factor"])
        return cls(in_plane_mm=hf_mm, slice_mm=factor * hf_mm, factor=factor)


def relative_difference(value: float, expected: float) -> float:
    return abs(float(value) - float(expected)) / float(expected)


def check_spacing(voxel_sizes_mm, slice_axis: int, grid: TrainingGrid, *, allow_mismatch: bool = False,
                  check_in_plane: bool = False, name: str = "the scan") -> list[str]:
    """A one-line warning (in a list; empty if none); a mismatch over `TOLERANCE` is a `UserError` unless allowed.

    The slice spacing is always checked; the in-plane voxel sizes only with
    `check_in_plane` (they are not checked when the scan is resampled in-plane).
    """
    sizes = [float(s) for s in voxel_sizes_mm]
    problems = []
    slice_mm = sizes[slice_axis]
    if relative_difference(slice_mm, grid.slice_mm) > TOLERANCE:
        problems.append(f"{name} has slices {slice_mm:.3g} mm apart but the run was trained at "
                        f"x{grid.factor} on {grid.in_plane_mm:.3g} mm voxels (slice spacing "
                        f"{grid.slice_mm:.3g} mm, {relative_difference(slice_mm, grid.slice_mm):.0%} off, "
                        f"more than {TOLERANCE:.0%})")
    in_plane = [s for a, s in enumerate(sizes) if a != slice_axis]
    if check_in_plane and any(relative_difference(s, grid.in_plane_mm) > TOLERANCE for s in in_plane):
        shown = " x ".join(f"{s:.3g}" for s in in_plane)
        problems.append(f"{name} has in-plane voxels {shown} mm but the run was trained on "
                        f"{grid.in_plane_mm:.3g} mm (more than {TOLERANCE:.0%} off; launch.prepare resamples "
                        f"them)")
    if problems and not allow_mismatch:
        raise UserError("; ".join(problems) + "; " + advice(slice_mm, grid))
    return [f"warning: {'; '.join(problems)}"] if problems else []


def advice(slice_mm: float, grid: TrainingGrid) -> str:
    """What to do about a scan whose slices are `slice_mm` apart, for a run of `grid`."""
    factor = round(float(slice_mm) / grid.in_plane_mm)
    if factor < 2:
        return (f"its slices are no coarser than the run's {grid.in_plane_mm:.3g} mm voxels, so there is "
                f"nothing along them for IQT to enhance")
    return (f"a run trained at x{factor} on {grid.in_plane_mm:.3g} mm voxels fits it (launch.train with "
            f"--config.sim.factor={factor}), or pass --allow_spacing_mismatch to enhance it with this run anyway")


def _sitk_image(data: np.ndarray, voxel_sizes_mm) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in voxel_sizes_mm))
    return image


def resample_in_plane(data: np.ndarray, affine: np.ndarray, slice_axis: int, target_mm: float, *,
                      interpolator=sitk.sitkLinear) -> tuple[np.ndarray, np.ndarray]:
    """(data, affine) with the in-plane axes resampled to `target_mm`, the slice axis untouched.

    The new grid covers the same field of view (its first and last voxel
    edges stay where they were, to within half a new voxel); downsampling is
    preceded by a Gaussian of FWHM sqrt(target² − size²) to avoid aliasing.
    """
    sizes = np.asarray(voxel_sizes_from_affine(affine))
    new_sizes = np.where(np.arange(3) == slice_axis, sizes, float(target_mm))
    shape = np.asarray(data.shape)
    new_shape = np.maximum(1, np.round(shape * sizes / new_sizes)).astype(int)
    offset = (new_sizes - sizes) / 2.0     # in old-grid mm: the new first voxel centre
    blur_voxels = np.sqrt(np.maximum(new_sizes ** 2 - sizes ** 2, 0.0)) / FWHM_PER_SD / sizes
    if interpolator != sitk.sitkNearestNeighbor and np.any(blur_voxels > 0):
        data = ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), blur_voxels)
    image = _sitk_image(data, sizes)
    resampled = sitk.Resample(image, [int(n) for n in new_shape], sitk.Transform(), interpolator,
                              tuple(float(o) for o in offset), tuple(float(s) for s in new_sizes),
                              (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), 0.0, sitk.sitkFloat32)
    out = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)
    new_affine = np.array(affine, dtype=np.float64)
    unit = new_affine[:3, :3] / sizes[None, :]
    new_affine[:3, :3] = unit * new_sizes[None, :]
    new_affine[:3, 3] = affine[:3, 3] + unit @ offset
    return np.ascontiguousarray(out, dtype=np.float32), new_affine

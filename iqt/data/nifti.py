"""NIfTI volumes in and out, grid checks, and the project's slice convention.

A `Volume` is a 3D float32 array with its voxel-to-world affine (mm). Reading
checks everything a user can get wrong (missing, not NIfTI, truncated, 4D,
empty, non-finite) and raises `UserError` naming the file. Writing is float32
NIfTI-1, atomic, and keeps the source header's qform/sform codes and units.

The slice convention (docs/architecture.md): with resolution factor `r`,
low-field (LF) slice `j` is centred on high-field (HF) index `r*j + (r-1)/2`.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from iqt.errors import UserError
from iqt.io_utils import atomic_path, check_not_inputs, check_output_file

NIFTI_SUFFIXES = (".nii.gz", ".nii")
MASK_SUFFIX = "_brainmask"   # a brain mask beside its scan: SCAN_brainmask.nii.gz (launch.prepare)

GRID_TOLERANCE_MM = 1e-3
MAX_VOXELS = 2**30           # a sane limit (4 GiB as float32); far beyond any brain MRI volume
_MIN_AFFINE_CONDITION = 1e-6  # |det| / product of the voxel sizes: below it the axes are (nearly) parallel
_NUMERIC_KINDS = "biuf"       # bool, signed/unsigned integers, reals (not complex, RGB or other records)
_READ_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError,
                zlib.error, gzip.BadGzipFile)


@dataclasses.dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image: `data` float32 (x, y, z), `affine` (4, 4) voxel -> world mm."""

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header

    @property
    def voxel_sizes_mm(self) -> tuple[float, float, float]:
        """Voxel spacing along each array axis, in mm (the affine's column norms)."""
        return voxel_sizes_from_affine(self.affine)

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Axis codes such as ('R', 'A', 'S'): where each array axis points."""
        return tuple(nib.aff2axcodes(self.affine))


def voxel_sizes_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes in mm: the norms of the affine's first three columns."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return tuple(float(n) for n in norms)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _spatial_shape(shape: tuple[int, ...], name: str, path: Path) -> tuple[int, int, int]:
    """Checks a NIfTI shape; returns the 3 spatial axes (extra axes must be 1)."""
    if len(shape) < 3:
        raise UserError(f"{name} {path} has {len(shape)} axes {shape}; a 3D volume is needed")
    if 0 in shape:
        raise UserError(f"{name} {path} has a zero-length axis (shape {shape}); it holds no voxels")
    extra = shape[3:]
    if any(n != 1 for n in extra):
        raise UserError(f"{name} {path} has shape {shape}: more than one volume (axes after "
                        f"the third must have length 1); give a single 3D volume")
    return tuple(int(n) for n in shape[:3])


def _check_data_type(image, name: str, path: Path) -> None:
    dtype = np.dtype(image.get_data_dtype())
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        kind = "complex" if dtype.kind == "c" else "structured (e.g. RGB)" if dtype.fields else dtype.kind
        raise UserError(f"{name} {path} stores {kind} voxels ({dtype}); a real-valued (integer or float) "
                        f"volume is needed, e.g. the magnitude image")


def _check_size(image, shape: tuple[int, ...], name: str, path: Path) -> None:
    """The voxels the header claims: at most `MAX_VOXELS`, and no more than the file holds."""
    count = int(np.prod(shape, dtype=np.float64))
    if count > MAX_VOXELS:
        raise UserError(f"{name} {path} claims {count:.3g} voxels (shape {shape}), more than the limit "
                        f"{MAX_VOXELS:.3g}; is its header damaged?")
    needed = count * np.dtype(image.get_data_dtype()).itemsize + int(image.header.get("vox_offset", 0))
    if path.name.endswith(".gz"):
        with open(path, "rb") as f:  # gzip's trailer: the uncompressed size modulo 2**32
            f.seek(-4, os.SEEK_END)
            held = int.from_bytes(f.read(4), "little")
        if needed >= 2**32:
            return
    else:
        held = path.stat().st_size
    if held < needed:
        raise UserError(f"{name} {path} is truncated or corrupt: its header claims shape {shape} "
                        f"({needed} bytes) but the file holds {held} bytes")


def check_affine(affine: np.ndarray, name: str, path: Path | str) -> None:
    """A usable voxel → world affine: finite, with three independent axes (not singular)."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise UserError(f"{name} {path} has a non-finite affine (NaN or inf in its sform/qform); "
                        f"fix its header")
    linear = affine[:3, :3]
    scale = float(np.prod(np.linalg.norm(linear, axis=0)))
    if scale == 0.0 or abs(float(np.linalg.det(linear))) < _MIN_AFFINE_CONDITION * scale:
        raise UserError(f"{name} {path} has a singular affine (a zero voxel size or parallel axes: "
                        f"{np.round(linear, 4).tolist()}); fix its header's sform/qform")


def load_volume(path: str | os.PathLike, *, name: str = "image") -> Volume:
    """Reads a 3D NIfTI volume as float32; a trailing singleton 4th axis is dropped.

    `name` says what the file is for (e.g. 'gm map') in error messages. Refused
    before any voxel is read: a non-finite or singular affine, complex or
    structured (RGB) voxels, and a header that claims more data than the file
    holds or than `MAX_VOXELS`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{name} file {path} does not exist (or is not a file)")
    try:
        image = nib.load(path, mmap=False)
    except _READ_ERRORS as e:
        raise UserError(f"{name} {path} is not a readable NIfTI file ({_one_line(e)})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise UserError(f"{name} {path} is a {type(image).__name__}, "
                        f"not a NIfTI file (.nii or .nii.gz)")
    shape = _spatial_shape(image.shape, name, path)
    _check_data_type(image, name, path)
    _check_size(image, image.shape, name, path)
    check_affine(image.affine, name, path)
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except _READ_ERRORS as e:
        raise UserError(f"{name} {path} is truncated or corrupt: its voxels cannot be read "
                        f"({_one_line(e)})") from None
    n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if n_bad:
        raise UserError(f"{name} {path} has {n_bad} non-finite voxels (NaN or inf); "
                        f"replace them (e.g. with 0) before use")
    header = nib.Nifti1Header.from_header(image.header)
    return Volume(data=data, affine=np.array(image.affine, dtype=np.float64), header=header)


def save_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray,
                header: nib.Nifti1Header | None = None) -> None:
    """Writes `data` as a float32 NIfTI-1 file, atomically.

    The new affine, shape and dtype replace the header's; its qform/sform codes
    and xyzt units are kept (if both codes are 0 the affine is stored in the
    sform as 'aligned', since otherwise it would be lost; unknown spatial
    units become mm); scaling (scl_slope/inter) and cal_min/max are reset.
    """
    data = np.asarray(data, dtype=np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    header = nib.Nifti1Header() if header is None else nib.Nifti1Header.from_header(header)
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    if qform_code == 0 and sform_code == 0:
        sform_code = 2  # 'aligned'
    if header.get_xyzt_units()[0] == "unknown":
        header.set_xyzt_units(xyz="mm")
    image = nib.Nifti1Image(data, affine, header)
    image.set_data_dtype(np.float32)
    image.header.set_slope_inter(np.nan, np.nan)
    image.header["cal_min"], image.header["cal_max"] = 0.0, 0.0
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def check_nifti_output(path: str | os.PathLike, name: str = "--output",
                       inputs: dict[str, str | os.PathLike | None] | None = None) -> Path:
    """Before any work: `path` ends in .nii or .nii.gz, is none of `inputs` ({flag: path}), and can be written."""
    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise UserError(f"{name} {path} must end in .nii or .nii.gz")
    check_not_inputs({name: path}, [source for source in (inputs or {}).values()])
    check_output_file(path, name)
    return path


def nifti_stem(path: str | os.PathLike) -> str | None:
    """A NIfTI file's name without .nii or .nii.gz (None for another name): 'scan' for scan.nii.gz."""
    name = Path(path).name
    return next((name[:-len(s)] for s in NIFTI_SUFFIXES if name.endswith(s)), None)


def check_same_grid(reference: Volume, others: dict[str, Volume]) -> None:
    """Raises `UserError` unless every volume in `others` has `reference`'s shape and affine."""
    for name, other in others.items():
        if other.data.shape != reference.data.shape:
            raise UserError(f"{name} has shape {other.data.shape} but the image has "
                            f"{reference.data.shape}; resample it onto the image's grid")
        if not np.allclose(other.affine, reference.affine, rtol=0.0, atol=GRID_TOLERANCE_MM):
            worst = float(np.max(np.abs(other.affine - reference.affine)))
            raise UserError(f"{name} has a different affine from the image (differs by up to "
                            f"{worst:.4g} mm); resample it onto the image's grid")


def find_slice_axis(voxel_sizes_mm, slice_axis: int | None = None, *,
                    min_ratio: float = 1.5) -> int:
    """The axis the slices are stacked along: the one with clearly the largest spacing.

    Given `slice_axis` is checked and returned. Otherwise the largest spacing
    must be at least `min_ratio` times the second largest.
    """
    sizes = [float(s) for s in voxel_sizes_mm]
    if slice_axis is not None:
        if isinstance(slice_axis, bool) or slice_axis not in range(len(sizes)):
            raise UserError(f"--slice_axis must be 0, 1 or 2, got {slice_axis!r}")
        return int(slice_axis)
    order = np.argsort(sizes)
    largest, second = sizes[order[-1]], sizes[order[-2]]
    if largest < min_ratio * second:
        shown = " x ".join(f"{s:.3g}" for s in sizes)
        if largest < 1.15 * sizes[order[0]]:
            raise UserError(f"the voxels are {shown} mm, about the same along every axis: this is not a "
                            f"thick-slice scan, so IQT has no thick slices to enhance (--slice_axis N "
                            f"forces one axis)")
        raise UserError(f"cannot tell the slice axis from voxel sizes {shown} mm (no spacing is "
                        f"{min_ratio:g}x the others); pass --slice_axis N (0, 1 or 2)")
    return int(order[-1])


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise UserError(f"the resolution factor must be a positive integer, got {factor!r}")
    return int(factor)


def lf_affine_from_hf(hf_affine: np.ndarray, factor: int, slice_axis: int = 2) -> np.ndarray:
    """The LF affine: slice column x r, origin moved (r-1)/2 HF voxels along it."""
    from simulators import lf_slice_centres   # here: reading and writing NIfTI files needs no JAX

    r = _check_factor(factor)
    lf = np.array(hf_affine, dtype=np.float64)
    column = lf[:3, slice_axis].copy()
    lf[:3, slice_axis] = r * column
    lf[:3, 3] += lf_slice_centres(1, r)[0] * column   # LF slice 0 is centred on HF index (r - 1) / 2
    return lf


def hf_affine_from_lf(lf_affine: np.ndarray, factor: int, slice_axis: int = 2) -> np.ndarray:
    """The exact inverse of `lf_affine_from_hf`."""
    from simulators import lf_slice_centres

    r = _check_factor(factor)
    hf = np.array(lf_affine, dtype=np.float64)
    column = hf[:3, slice_axis] / r
    hf[:3, slice_axis] = column
    hf[:3, 3] -= lf_slice_centres(1, r)[0] * column
    return hf


def describe(volume: Volume, slice_axis: int | None = None) -> str:
    """Human-readable lines: shape, voxel sizes (mm), orientation, slice axis, intensities."""
    sizes = volume.voxel_sizes_mm
    how = "detected" if slice_axis is None else "given"
    try:
        axis = f"{find_slice_axis(sizes, slice_axis)} ({how})"
    except UserError:
        if slice_axis is not None:
            raise
        axis = "none stands out (near-isotropic voxels); pass --slice_axis N to choose one"
    data = volume.data
    return "\n".join([
        f"shape: {' x '.join(str(n) for n in data.shape)}",
        f"voxel sizes (mm): {' x '.join(f'{s:.4g}' for s in sizes)}",
        f"orientation: {''.join(volume.orientation)}",
        f"slice axis: {axis}",
        f"intensity range: {float(data.min()):.6g} to {float(data.max()):.6g}",
    ])

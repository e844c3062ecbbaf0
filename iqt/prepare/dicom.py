"""A scan in: a NIfTI file, or a folder holding one or more DICOM series.

DICOM series are read with SimpleITK's `ImageSeriesReader` (GDCM sorts the
slices by position), after `iqt.prepare.dicom_geometry` has checked that the
series is one regular stack of slices and that no slice file was left out. SimpleITK images live in LPS world coordinates with
arrays indexed (z, y, x); a `Volume` is RAS with arrays indexed (x, y, z), so

    affine = diag(-1, -1, 1, 1) · [[direction · diag(spacing), origin], [0, 1]].
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from iqt.data.nifti import Volume, load_volume
from iqt.errors import UserError
from iqt.prepare.dicom_geometry import check_all_files_read, check_slice_geometry

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DESCRIPTION, _NUMBER = "0008|103e", "0020|0011"


@dataclasses.dataclass(frozen=True)
class Series:
    """One DICOM series of a folder: its UID, number, description and sorted files."""

    uid: str
    number: str
    description: str
    files: tuple[str, ...]

    def label(self) -> str:
        return f"number {self.number or '?'} '{self.description}' ({len(self.files)} files)"


def volume_from_sitk(image: sitk.Image) -> Volume:
    """A SimpleITK 3D image → a float32 RAS `Volume` (x, y, z)."""
    data = np.ascontiguousarray(sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0))
    affine = np.eye(4)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)[None, :]
    affine[:3, 3] = image.GetOrigin()
    affine = LPS_TO_RAS @ affine
    header = nib.Nifti1Header()
    header.set_xyzt_units(xyz="mm")
    header.set_qform(affine, code=1)   # scanner coordinates
    header.set_sform(affine, code=1)
    return Volume(data=data, affine=affine, header=header)


@contextlib.contextmanager
def _quiet_itk():
    """ITK's warnings (e.g. 'No Series were found') off: the errors raised here say it in one line."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _series_of(folder: Path, uid: str) -> Series:
    files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.LoadPrivateTagsOn()
    reader.ReadImageInformation()
    tag = lambda key: reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""  # noqa: E731
    return Series(uid=uid, number=tag(_NUMBER), description=tag(_DESCRIPTION), files=files)


def list_series(folder: str | os.PathLike) -> list[Series]:
    """The DICOM series in `folder` (not its subfolders), by series number."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"input {folder} is neither a NIfTI file nor a folder of DICOM files")
    if not any(p.is_file() for p in folder.iterdir()):
        raise UserError(f"input folder {folder} is empty; it should hold the DICOM files of a series")
    with _quiet_itk():
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        if not uids:
            raise UserError(f"input folder {folder} holds no DICOM series (no file in it is a DICOM image)")
        series = [_series_of(folder, uid) for uid in uids]
    return sorted(series, key=lambda s: (int(s.number) if s.number.isdigit() else 1 << 30, s.description))


def choose_series(series: list[Series], choice: str | None, folder: Path) -> Series:
    """The series whose number, description or UID is `choice` (none needed if there is one)."""
    listing = "; ".join(s.label() for s in series)
    if choice is None:
        if len(series) == 1:
            return series[0]
        raise UserError(f"input folder {folder} holds {len(series)} DICOM series: {listing}; "
                        f"choose one with --series NUMBER (or its description)")
    matches = [s for s in series if choice in (s.number, s.description, s.uid)]
    if len(matches) != 1:
        how = "no" if not matches else "more than one"
        raise UserError(f"{how} series in {folder} is '{choice}'; the series are: {listing}")
    return matches[0]


def read_dicom_series(folder: str | os.PathLike, choice: str | None = None) -> tuple[Volume, Series]:
    """One DICOM series of `folder` as a `Volume` (and the `Series` read)."""
    folder = Path(folder)
    every_series = list_series(folder)
    series = choose_series(every_series, choice, folder)
    check_all_files_read(folder, [f for s in every_series for f in s.files])
    with _quiet_itk():
        check_slice_geometry(series.files, f"{series.label()} in {folder}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    try:
        with _quiet_itk():
            image = reader.Execute()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise UserError(f"DICOM series {series.label()} in {folder} cannot be read ({first})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1 or min(image.GetSize()) < 2:
        raise UserError(f"DICOM series {series.label()} in {folder} is not a 3D greyscale volume "
                        f"(size {image.GetSize()}); choose another series")
    return volume_from_sitk(image), series


def read_scan(path: str | os.PathLike, series: str | None = None) -> tuple[Volume, dict]:
    """A NIfTI file or a DICOM series folder → (Volume, a description of what was read)."""
    path = Path(path)
    if path.is_dir():
        volume, chosen = read_dicom_series(path, series)
        return volume, {"format": "DICOM", "folder": str(path), "series_number": chosen.number,
                        "series_description": chosen.description, "series_uid": chosen.uid,
                        "files": len(chosen.files)}
    if series is not None:
        raise UserError(f"--series chooses a DICOM series, but input {path} is not a folder")
    return load_volume(path, name="scan"), {"format": "NIfTI", "file": str(path)}

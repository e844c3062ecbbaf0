"""The enhanced volume as a new DICOM series derived from its source series, for PACS.

A PACS files an image under its patient and study, so the new series carries
the source series' patient and study attributes (`SOURCE_TAGS`), a new Series
Instance UID, Image Type DERIVED\\SECONDARY (DICOM PS3.3 C.7.6.1.1.2: pixel
values derived from another image, not acquired), a series description that
says it is IQT-enhanced and by which software version, and one MR image per
slice of the enhanced volume with its own position (PS3.3 C.7.6.2). Voxels are
stored as int16 with a rescale slope (Rescale Slope/Intercept, PS3.3 C.11.1):
GDCM stores round(value / slope), so the intensities come back within half a
slope, 1/64000 of the volume's maximum.
Written with SimpleITK's GDCM writer, one file per slice (SimpleITK's
"DICOM series from an array" recipe).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import locale
import os
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iqt.data.nifti import Volume, nifti_stem
from iqt.errors import UserError
from iqt.io_utils import check_writable_folder
from iqt.marker_files import read_json_object
from iqt.prepare.dicom import LPS_TO_RAS, choose_series, list_series

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
INT16_TOP = 32000   # the largest stored value; the volume's maximum maps to it
SOURCE_TAGS = {   # copied from the source series: who and which study the images belong to
    "0010|0010": "Patient's Name", "0010|0020": "Patient ID", "0010|0030": "Patient's Birth Date",
    "0010|0040": "Patient's Sex", "0010|1010": "Patient's Age", "0020|000d": "Study Instance UID",
    "0020|0010": "Study ID", "0008|0020": "Study Date", "0008|0030": "Study Time",
    "0008|0050": "Accession Number", "0008|1030": "Study Description", "0008|0090": "Referring Physician",
    "0020|0052": "Frame of Reference UID", "0018|0015": "Body Part Examined", "0008|0080": "Institution Name",
    "0018|0087": "Magnetic Field Strength",
}


def new_uid() -> str:
    """A globally unique DICOM UID from a random UUID (the '2.25.' root of ISO/IEC 9834-8, PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def source_tags(files: list[str]) -> dict[str, str]:
    """The `SOURCE_TAGS` present in the first file of the source series."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(files[0]))
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key) for key in SOURCE_TAGS if reader.HasMetaDataKey(key)}


def slices_last_image(volume: Volume, slice_axis: int) -> sitk.Image:
    """A RAS `Volume` as a SimpleITK (LPS) image whose third axis is `slice_axis` (one file per slice)."""
    order = [a for a in range(3) if a != slice_axis] + [slice_axis]
    data = np.transpose(volume.data, order)
    affine = LPS_TO_RAS @ volume.affine
    columns = affine[:3, :3][:, order]
    spacing = np.linalg.norm(columns, axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (columns / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return image


@contextlib.contextmanager
def kept_locale():
    """GDCM's writer switches the whole process to the C locale; put it back."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def series_tags(source: dict[str, str], description: str, series_number: int, slope: float,
                image: sitk.Image) -> dict[str, str]:
    """The tags shared by every slice of the new series."""
    now = datetime.datetime.now()
    d = image.GetDirection()
    return {**source, "0008|0060": "MR", "0008|0016": MR_IMAGE_STORAGE, "0020|000e": new_uid(),
            "0008|0008": "DERIVED\\SECONDARY", "0008|103e": description[:64], "0020|0011": str(series_number),
            "0008|0021": now.strftime("%Y%m%d"), "0008|0031": now.strftime("%H%M%S"),
            "0008|2111": description[:1024], "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6],
                                                                                            d[1], d[4], d[7])),
            "0018|0050": f"{image.GetSpacing()[2]:.4f}", "0018|0088": f"{image.GetSpacing()[2]:.4f}",
            "0028|1052": "0", "0028|1053": f"{slope:.8g}", "0028|1054": "US", "0028|0100": "16",
            "0028|0101": "16", "0028|0102": "15", "0028|0103": "1",   # signed 16-bit storage
            "0020|0052": source.get("0020|0052", new_uid())}


def write_dicom_series(volume: Volume, slice_axis: int, folder: str | os.PathLike, source: dict[str, str],
                       description: str, series_number: int) -> list[Path]:
    """Writes `volume` (RAS, non-negative) as one MR file per slice along `slice_axis` into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = slices_last_image(volume, slice_axis)
    top = float(np.max(volume.data)) if volume.data.size else 0.0
    slope = top / INT16_TOP if top > 0 else 1.0
    stored = sitk.Clamp(sitk.Cast(image, sitk.sitkFloat64), lowerBound=0.0)   # GDCM stores round(v / slope)
    tags = series_tags(source, description, series_number, slope, image)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    with kept_locale():
        for k in range(stored.GetDepth()):
            piece = stored[:, :, k]
            for key, value in tags.items():
                piece.SetMetaData(key, value)
            piece.SetMetaData("0008|0018", new_uid())
            piece.SetMetaData("0020|0013", str(k + 1))
            piece.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in
                                                      image.TransformIndexToPhysicalPoint((0, 0, k))))
            paths.append(folder / f"IQT{k + 1:04d}.dcm")
            writer.SetFileName(str(paths[-1]))
            writer.Execute(piece)
    return paths


@dataclasses.dataclass(frozen=True)
class DicomTarget:
    """Where a new series goes and what it inherits from its source series."""

    folder: Path
    source: dict[str, str]          # `SOURCE_TAGS` of the source series
    source_description: str
    source_number: str

    def description(self, factor: int) -> str:
        return f"IQT x{factor} {self.source_description} (stochastic-iqt {_version()})".strip()

    def series_number(self) -> int:
        """The source's number + 1000 (a derived series beside its source in a PACS listing)."""
        return int(self.source_number) + 1000 if self.source_number.isdigit() else 1000


def _version() -> str:
    try:
        return importlib.metadata.version("stochastic-iqt")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def _prepared_from(input_path: Path) -> tuple[str, str | None] | None:
    """(folder, series UID) of the DICOM series `launch.prepare` made `input_path` from, if its report says."""
    stem = nifti_stem(input_path)
    report = read_json_object(input_path.with_name(f"{stem}.json")) if stem else None
    source = (report or {}).get("input", {})
    if isinstance(source, dict) and source.get("format") == "DICOM" and source.get("folder"):
        return str(source["folder"]), source.get("series_uid")
    return None


def plan_dicom_output(folder: str | os.PathLike, input_path: str | os.PathLike,
                      dicom_source: str | None = None) -> DicomTarget:
    """Before any work: the source series (`dicom_source`, a folder with one series, else the
    `launch.prepare` report beside the input) and an output folder that is new or empty."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"--output_dicom {folder} exists and is not an empty folder; choose a new one")
    check_writable_folder(folder, "--output_dicom")
    found = (dicom_source, None) if dicom_source else _prepared_from(Path(input_path))
    if found is None:
        raise UserError(f"--output_dicom needs the source series: give --dicom_source FOLDER, or enhance a scan "
                        f"made by launch.prepare from DICOM (its report {Path(input_path).name}'s .json beside it)")
    series = choose_series(list_series(found[0]), found[1], Path(found[0]))
    return DicomTarget(folder, source_tags(list(series.files)), series.description, series.number)

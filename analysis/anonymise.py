"""Anonymised copies of NIfTI volumes for blinded reading.

The copy gets a fresh header that keeps only what display needs: the on-disk
data type, the voxel-to-world geometry (qform and sform with their codes,
hence the voxel sizes) and the spatial unit. Everything else is left at its
default, in particular the free-text fields where converters write the
scanner, protocol or field strength (`descrip`, `db_name`, `aux_file`,
`intent_name`), every header extension (DICOM or JSON side-cars), the slice
timing and acquisition fields (`dim_info`, `slice_*`, `toffset`) and the
repetition time that converters put in `pixdim[4]`.
"""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from analysis.errors import UserError

SCANNER_TEXT_FIELDS = ("descrip", "db_name", "aux_file", "intent_name")
NIFTI_TYPES = (nib.Nifti1Image, nib.Nifti2Image)


def load_nifti(path: str | os.PathLike) -> nib.Nifti1Image | nib.Nifti2Image:
    """Loads a NIfTI-1/2 volume; `UserError` if it is missing or not NIfTI."""
    try:
        image = nib.load(str(path))
    except (OSError, nib.filebasedimages.ImageFileError, ValueError, EOFError) as e:
        raise UserError(f"cannot read {path} as NIfTI: {' '.join(str(e).split())}") from e
    if not isinstance(image, NIFTI_TYPES):
        raise UserError(f"{path} is a {type(image).__name__}, not a NIfTI volume")
    return image


def anonymised_image(image: nib.Nifti1Image | nib.Nifti2Image
                     ) -> nib.Nifti1Image | nib.Nifti2Image:
    """A copy of `image` (same class, data and geometry) with a fresh header."""
    header = type(image.header)()
    header.set_data_dtype(image.get_data_dtype())
    try:
        data = np.asanyarray(image.dataobj)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"cannot read the voxels of {image.get_filename()}: {e}") from e
    copy = type(image)(data, image.affine, header=header)
    qform, qform_code = image.get_qform(coded=True)
    sform, sform_code = image.get_sform(coded=True)
    copy.set_qform(qform if qform is not None else image.affine, code=int(qform_code))
    copy.set_sform(sform if sform is not None else image.affine, code=int(sform_code))
    copy.header.set_xyzt_units(xyz=image.header.get_xyzt_units()[0])
    return copy


def copy_anonymised(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Writes an anonymised copy of the NIfTI file `source` to `target` (.nii.gz)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(anonymised_image(load_nifti(source)), str(target))


def scanner_fields(image: nib.Nifti1Image | nib.Nifti2Image) -> dict[str, object]:
    """The header content that may reveal the scanner: non-empty text fields,
    extensions, and acquisition timing. Empty for an anonymised image."""
    header = image.header
    found: dict[str, object] = {}
    for field in SCANNER_TEXT_FIELDS:
        if field in header and header[field].item().strip(b"\x00 "):
            found[field] = header[field].item()
    if len(header.extensions):
        found["extensions"] = [ext.get_code() for ext in header.extensions]
    for field in ("dim_info", "slice_code", "slice_start", "slice_end", "slice_duration",
                  "toffset"):
        if header[field].item() != 0:
            found[field] = header[field].item()
    if image.ndim <= 3 and header["pixdim"][4] not in (0, 1):
        found["pixdim[4]"] = float(header["pixdim"][4])
    return found

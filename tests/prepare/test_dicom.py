"""DICOM series → Volume: voxels and geometry as SimpleITK's NIfTI writer and nibabel see them."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from iqt.errors import UserError
from iqt.prepare.dicom import list_series, read_scan
from tests.prepare.helpers import oblique_image, write_dicom_series


def test_an_oblique_series_reads_back_as_the_nifti_of_the_same_slices(tmp_path):
    image = oblique_image()
    write_dicom_series(image, tmp_path / "dicom", number=3, description="T1 AX")
    sitk.WriteImage(image, str(tmp_path / "same.nii.gz"))   # ITK's own LPS → RAS
    reference = nib.load(tmp_path / "same.nii.gz")
    volume, source = read_scan(tmp_path / "dicom")
    np.testing.assert_array_equal(volume.data, np.asarray(reference.dataobj, dtype=np.float32))
    np.testing.assert_allclose(volume.affine, reference.affine, rtol=0, atol=1e-4)
    assert abs(np.linalg.det(volume.affine[:3, :3])) == pytest.approx(0.9 * 1.1 * 5.0, rel=1e-5)
    assert (source["series_number"], source["series_description"], source["files"]) == ("3", "T1 AX", 6)


def test_several_series_are_listed_and_one_is_chosen(tmp_path):
    write_dicom_series(oblique_image(seed=1), tmp_path, number=5, description="T2 AX")
    write_dicom_series(oblique_image(shape=(16, 16, 4), seed=2), tmp_path, number=2, description="T1 AX")
    assert [(s.number, s.description, len(s.files)) for s in list_series(tmp_path)] == \
        [("2", "T1 AX", 4), ("5", "T2 AX", 6)]
    with pytest.raises(UserError, match="2 DICOM series.*number 2 'T1 AX' \\(4 files\\).*--series"):
        read_scan(tmp_path)
    by_number, _ = read_scan(tmp_path, "2")
    by_name, _ = read_scan(tmp_path, "T2 AX")
    assert by_number.data.shape == (16, 16, 4) and by_name.data.shape == (24, 20, 6)
    with pytest.raises(UserError, match="no series .* is '9'"):
        read_scan(tmp_path, "9")

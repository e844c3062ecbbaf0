"""DICOM in, DICOM out: an oblique series prepared and enhanced, written back as a derived series,
read with SimpleITK and with pydicom: voxels, geometry per slice and tags."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from iqt.dicom_output import LPS_TO_RAS
from iqt.prepare.dicom import read_scan
from tests.cli_helpers import assert_user_error
from tests.prepare.helpers import make_run, oblique_image, run_module, write_dicom_series

pydicom = pytest.importorskip("pydicom")
PATIENT = {"0010|0010": "Doe^Jane", "0010|0020": "EPI-0042", "0010|0040": "F", "0020|000d": "1.2.3.4.5.6.7",
           "0008|0020": "20261207", "0008|0050": "ACC123"}
FACTOR = 4


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    source = oblique_image(shape=(24, 20, 6), spacing=(0.9, 1.1, 5.0))
    write_dicom_series(source, root / "series", number=3, description="T1 AX", tags=PATIENT)
    run = make_run(root / "run", factor=FACTOR, hf_voxel_mm=1.25)   # 5 mm slices
    prepared = root / "prepared" / "scan.nii.gz"
    result = run_module("launch.prepare", f"--input={root / 'series'}", f"--output={prepared}", "--steps=none",
                        cwd=root)
    assert result.returncode == 0, result.stderr
    result = run_module("launch.infer", f"--workdir={run}", f"--input={prepared}", "--checkpoint=latest",
                        f"--output={root / 'out' / 'iqt.nii.gz'}", f"--output_dicom={root / 'out' / 'dicom'}",
                        "--allow_spacing_mismatch", "--noprogress", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def test_the_series_holds_the_enhanced_volume_on_its_grid(enhanced):
    nifti = nib.load(enhanced / "out" / "iqt.nii.gz")
    volume, info = read_scan(enhanced / "out" / "dicom")
    assert info["files"] == 6 * FACTOR and volume.data.shape == nifti.shape
    data = np.asarray(nifti.dataobj, np.float32)
    step = data.max() / 32000
    np.testing.assert_allclose(volume.data, data, atol=step / 2 + 1e-6 * data.max())
    np.testing.assert_allclose(volume.affine, nifti.affine, atol=1e-4)


def test_pydicom_reads_the_source_patient_and_study_and_a_new_derived_series(enhanced):
    nifti = nib.load(enhanced / "out" / "iqt.nii.gz")
    data, lps = np.asarray(nifti.dataobj, np.float32), LPS_TO_RAS @ nifti.affine
    source = pydicom.dcmread(sorted((enhanced / "series").iterdir())[0])
    files = sorted((enhanced / "out" / "dicom").iterdir())
    series_uids = set()
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        assert (ds.PatientName, ds.PatientID, ds.PatientSex, ds.StudyInstanceUID, ds.AccessionNumber) == \
            ("Doe^Jane", "EPI-0042", "F", "1.2.3.4.5.6.7", "ACC123")
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.Modality == "MR"
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SeriesNumber == 1003
        assert ds.SeriesDescription.startswith(f"IQT x{FACTOR} T1 AX (stochastic-iqt ")
        assert ds.InstanceNumber == k + 1
        np.testing.assert_allclose(ds.ImagePositionPatient, lps[:3] @ [0, 0, k, 1], atol=1e-4)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], (1.1, 0.9), atol=1e-4)
        np.testing.assert_allclose(ds.pixel_array.T * float(ds.RescaleSlope), data[:, :, k],
                                   atol=float(ds.RescaleSlope) / 2 + 1e-6)
        series_uids.add(ds.SeriesInstanceUID)
    assert len(series_uids) == 1


def test_dicom_output_needs_a_source_and_a_new_folder(enhanced, tmp_path):
    run = enhanced / "run"
    plain = tmp_path / "plain.nii.gz"
    plain.write_bytes((enhanced / "prepared" / "scan.nii.gz").read_bytes())   # no report beside it
    common = (f"--workdir={run}", "--checkpoint=latest", "--allow_spacing_mismatch", "--noprogress")
    assert_user_error(run_module("launch.infer", *common, f"--input={plain}", f"--output={tmp_path / 'o.nii.gz'}",
                                 f"--output_dicom={tmp_path / 'd'}", cwd=tmp_path), "--dicom_source")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_user_error(run_module("launch.infer", *common, f"--input={plain}", f"--output={tmp_path / 'o.nii.gz'}",
                                 f"--output_dicom={tmp_path / 'full'}", f"--dicom_source={enhanced / 'series'}",
                                 cwd=tmp_path), "not an empty folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "plain.nii.gz"]

"""`python -m launch.prepare` end to end, and its error contract on real bad files."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from iqt import config_io
from launch.configs.demo import get_config
import SimpleITK as sitk

from iqt.prepare.brain import dice
from iqt.prepare.phantom import synthetic_head
from tests.cli_helpers import assert_user_error
from tests.prepare.helpers import oblique_image, run_module, thick_template, write_dicom_series


@pytest.fixture(scope="module")
def dicom_head(tmp_path_factory):
    """A DICOM series (one file per 5 mm slice) of the template inside a synthetic head, and its brain."""
    folder = tmp_path_factory.mktemp("scanner") / "series"
    image, _ = thick_template(step=2)
    head, brain = synthetic_head(image, (2.0, 2.0, 5.0))
    scan = sitk.GetImageFromArray(np.round(head * 10).astype(np.int16).transpose(2, 1, 0))
    scan.SetSpacing((2.0, 2.0, 5.0))
    write_dicom_series(scan, folder, number=4, description="T1 AX LOWFIELD")
    run = folder.parent / "run"
    run.mkdir()
    config = get_config("tiny")                       # a run trained x4 on 1.25 mm: 5 mm slices
    config.sim.factor, config.sim.hf_voxel_mm = 4, 1.25
    config_io.save_config(config, run)
    return folder, brain, run


def test_a_dicom_series_is_prepared_into_four_files(dicom_head, tmp_path):
    folder, brain, run = dicom_head
    out = tmp_path / "prepared" / "scan.nii.gz"
    result = run_module("launch.prepare", f"--input={folder}", f"--output={out}", f"--workdir={run}",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["scan.json", "scan.nii.gz", "scan.png", "scan_brainmask.nii.gz"]
    report = json.loads((out.parent / "scan.json").read_text())
    assert report["input"]["series_description"] == "T1 AX LOWFIELD" and report["input"]["files"] == brain.shape[2]
    assert [s["name"] for s in report["steps"]] == ["n4", "brain", "crosstalk", "resample"]
    assert all(s["seconds"] >= 0 and s["parameters"] for s in report["steps"])
    prepared, mask = nib.load(out), nib.load(out.parent / "scan_brainmask.nii.gz")
    assert prepared.shape == mask.shape == (round(brain.shape[0] * 2 / 1.25), round(brain.shape[1] * 2 / 1.25),
                                            brain.shape[2])
    np.testing.assert_allclose(nib.affines.voxel_sizes(prepared.affine), (1.25, 1.25, 5.0), atol=1e-6)
    data, inside = np.asarray(prepared.dataobj), np.asarray(mask.dataobj) > 0
    assert (data[~inside] == 0).all() and (data[inside] >= 0).all()


def test_steps_can_be_left_out(dicom_head, tmp_path):
    folder, brain, _ = dicom_head
    out = tmp_path / "brain_only.nii.gz"
    result = run_module("launch.prepare", f"--input={folder}", f"--output={out}", "--steps=brain",
                        "--sequence=T2w", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "brain_only.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["brain"]
    mask = np.asarray(nib.load(tmp_path / "brain_only_brainmask.nii.gz").dataobj) > 0
    assert dice(mask, brain) >= 0.9


def test_bad_inputs_follow_the_error_contract(dicom_head, tmp_path):
    folder, _, _ = dicom_head
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    for name in ("a.txt", "b.dcm"):
        (tmp_path / "notes" / name).write_text("not a DICOM file\n")
    two = tmp_path / "two"
    write_dicom_series(oblique_image(seed=1), two, number=7, description="T2 AX")
    write_dicom_series(oblique_image(shape=(16, 16, 4), seed=2), two, number=8, description="FLAIR AX")
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.float32), np.eye(4)), tmp_path / "small_mask.nii.gz")
    cases = {
        "empty folder": ([f"--input={tmp_path / 'empty'}"], ("empty",)),
        "not DICOM": ([f"--input={tmp_path / 'notes'}"], ("no DICOM series",)),
        "two series": ([f"--input={two}"], ("2 DICOM series", "number 7 'T2 AX'", "number 8 'FLAIR AX'", "--series")),
        "mask on another grid": ([f"--input={folder}", f"--mask={tmp_path / 'small_mask.nii.gz'}"],
                                 ("brain mask", "shape (10, 10, 10)")),
        "unknown step": ([f"--input={folder}", "--steps=n4,skull"], ("skull",)),
        "resample without a run": ([f"--input={folder}"], ("--workdir",)),
    }
    for case, (args, words) in cases.items():
        out = tmp_path / "out" / "prepared.nii.gz"
        assert_user_error(run_module("launch.prepare", *args, f"--output={out}", cwd=tmp_path), *words)
        assert not out.parent.exists(), case

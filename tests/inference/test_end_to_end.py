"""A real (tiny, randomly initialised) network from a work directory, through the entry points."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iqt import evaluation
from iqt.data.nifti import hf_affine_from_lf
from iqt.inference import enhance_volume, load_predictor
from tests.random_run import random_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A work directory holding the tiny demo config and one checkpoint of random weights."""
    workdir = tmp_path_factory.mktemp("run")
    _, model, state = random_run(workdir)
    return workdir, model, state


def test_the_restored_network_is_the_saved_one(run):
    workdir, model, state = run
    predictor, config = load_predictor(workdir, "latest")
    assert predictor.factor == config.sim.factor == 8
    lf = np.random.default_rng(0).random((2, 16, 16, 2), dtype=np.float32)
    expected = model.apply({"params": state.params, "batch_stats": state.batch_stats}, lf[..., None])[..., 0]
    np.testing.assert_allclose(predictor.predict_fn(lf), expected, rtol=1e-5, atol=1e-6)


def test_tiles_beyond_the_receptive_field_give_the_whole_volume_answer(run):
    workdir, _, _ = run
    predictor, _ = load_predictor(workdir)
    lf = np.random.default_rng(1).random((44, 38, 6), dtype=np.float32)
    whole = enhance_volume(lf, predictor.predict_fn, 8, tile_lf=(64, 64, 8), multiple=predictor.multiple,
                           progress=False)
    assert whole.shape == (44, 38, 48)
    tiled = enhance_volume(lf, predictor.predict_fn, 8, tile_lf=(40, 40, 8), margin_lf=(12, 12, 2),
                           multiple=predictor.multiple, batch_size=3, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_launch_infer_writes_the_enhanced_volume_and_its_figure(run, tmp_path):
    workdir, _, _ = run
    affine = np.diag([-0.9, 0.9, 7.0, 1.0])
    affine[:3, 3] = (40.0, -50.0, -30.0)
    data = np.zeros((22, 20, 5), np.float32)
    data[3:19, 4:16, :] = np.random.default_rng(2).uniform(100, 400, (16, 12, 5))
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "lf.nii.gz")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-m", "launch.infer", f"--workdir={workdir}",
                             f"--input={tmp_path / 'lf.nii.gz'}", f"--output={tmp_path / 'out' / 'iqt.nii.gz'}",
                             "--checkpoint=latest", "--noprogress"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "read only" not in result.stderr and "read_only" not in result.stderr  # orbax's notices
    out = nib.load(tmp_path / "out" / "iqt.nii.gz")
    assert out.shape == (22, 20, 40) and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, hf_affine_from_lf(affine, 8), atol=1e-5)
    assert np.isfinite(np.asarray(out.dataobj)).all()
    assert (tmp_path / "out" / "iqt.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["iqt.nii.gz", "iqt.png"]


def test_evaluate_run_writes_the_report(run, tmp_path, monkeypatch):
    workdir, _, _ = run
    from iqt.data import splits
    from iqt.data.template import load_template
    from iqt.data.subject import Subject

    t = load_template()
    cut = (slice(60, 140, 2), slice(60, 160, 2), slice(40, 136))
    subject = Subject("cut", (t.image[cut] / t.image.max()).astype(np.float32), t.tissue[cut], t.affine)
    monkeypatch.setattr(splits, "load_split_subjects", lambda data_config, split: [subject])
    table, paths = evaluation.evaluate_run(workdir, settings=["mean"], out_dir=tmp_path / "report",
                                           checkpoint="latest", metric_set="both", progress=False,
                                           tile_lf=(272, 272, 8))   # 2 tiles along the slices: a border
    assert sorted(table["method"]) == sorted(evaluation.METHODS) and (table["subject"] == "cut").all()
    assert np.isfinite(table[["psnr", "ssim", "rmse", "ssim_ref", "slice_periodic"]].to_numpy()).all()
    # the seam score is taken at the predictor's own tile borders
    predictor, _ = load_predictor(workdir, "latest")
    borders = predictor.tile_plan((40, 50, 96 // predictor.factor), (272, 272, 8)).slice_borders_lf()
    assert borders and np.isfinite(table["seam"]).all()
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"evaluation.csv", "evaluation.md",
                                                                "evaluation.png", "cut_mean.png"}


def test_a_folder_with_bad_files_and_masks_is_enhanced_completely_and_the_bad_reported_at_the_end(run, tmp_path):
    from iqt.errors import UserError
    from iqt.infer_files import enhance_files
    workdir, _, _ = run
    folder = tmp_path / "scans"
    folder.mkdir()
    affine = np.diag([-0.9, 0.9, 7.0, 1.0])
    data = np.zeros((22, 20, 5), np.float32)
    data[3:19, 4:16, :] = np.random.default_rng(5).uniform(100, 400, (16, 12, 5))
    for name in ("a.nii.gz", "b.nii"):
        nib.save(nib.Nifti1Image(data, affine), folder / name)
    nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), affine), folder / "a_brainmask.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), affine), folder / "c_4d.nii.gz")
    nan = data.copy()
    nan[5, 5, 2] = np.nan
    nib.save(nib.Nifti1Image(nan, affine), folder / "d_nan.nii.gz")
    (folder / "e_broken.nii.gz").write_bytes(b"not a nifti" * 50)
    with pytest.raises(UserError) as report:
        enhance_files([str(folder)], str(tmp_path / "out"), workdir, checkpoint="latest", progress=False,
                      allow_spacing_mismatch=True)
    message = str(report.value)
    assert message.startswith("3 of 5 inputs failed (the other 2 outputs were written)"), message
    assert all(name in message for name in ("c_4d.nii.gz", "d_nan.nii.gz", "e_broken.nii.gz"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "a.png", "b.nii", "b.png"]

"""`launch.infer` and `launch.evaluate` follow the error contract on bad input.

Each case runs the real entry point in a subprocess: one line `error: ...` on
stderr, exit status 2, no traceback, and no output file (nor a temporary one).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.cli_helpers import assert_user_error

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _save(path: Path, data, affine=None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), np.diag([1.0, 1.0, 4.0, 1.0]) if affine is None else affine), path)
    return path


@pytest.fixture
def workdir_without_checkpoint(tmp_path) -> Path:
    workdir = tmp_path / "run"
    workdir.mkdir()
    from launch.configs import demo

    (workdir / "config.json").write_text(json.dumps(demo.get_config("tiny").to_dict()))   # a valid config
    return workdir


def _cases(tmp: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    volume = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32) + 0.1
    (tmp / "notes.nii.gz").write_text("not an image")
    good = _save(tmp / "good.nii.gz", volume)
    truncated = tmp / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    nan = volume.copy()
    nan[1, 2, 3] = np.nan
    return {
        "not NIfTI": (tmp / "notes.nii.gz", ("notes.nii.gz", "NIfTI")),
        "truncated": (truncated, ("truncated.nii.gz",)),
        "4D": (_save(tmp / "series.nii.gz", np.stack([volume, volume], -1)), ("series.nii.gz", "3D")),
        "NaNs": (_save(tmp / "nan.nii.gz", nan), ("nan.nii.gz", "non-finite")),
        "ambiguous slice axis": (_save(tmp / "iso.nii.gz", volume, np.eye(4)), ("slice_axis",)),
        "missing": (tmp / "absent.nii.gz", ("absent.nii.gz",)),
    }


def test_bad_inputs_give_one_line_exit_2_and_no_output(tmp_path, workdir_without_checkpoint):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for case, (path, words) in _cases(inputs).items():
        out = tmp_path / f"out_{case.replace(' ', '_')}"
        result = run_module("launch.infer", f"--workdir={workdir_without_checkpoint}", f"--input={path}",
                            f"--output={out}/enhanced.nii.gz", cwd=tmp_path)
        assert_user_error(result, *words)
        assert not out.exists() or not any(out.iterdir()), case


def test_a_work_directory_without_checkpoint(tmp_path, workdir_without_checkpoint):
    scan = _save(tmp_path / "scan.nii.gz", np.ones((8, 8, 4), np.float32),
                 np.diag([1.0, 1.0, 8.0, 1.0]))                   # the run's spacing: x8 on 1 mm
    out = tmp_path / "out"
    result = run_module("launch.infer", f"--workdir={workdir_without_checkpoint}", f"--input={scan}",
                        f"--output={out}/enhanced.nii.gz", cwd=tmp_path)
    assert_user_error(result, "checkpoint")
    assert not out.exists() or not any(out.iterdir())
    missing = run_module("launch.evaluate", f"--workdir={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert_user_error(missing, "nowhere")
    bad_setting = run_module("launch.evaluate", f"--workdir={workdir_without_checkpoint}",
                             "--settings=mean,loud", cwd=tmp_path)
    assert_user_error(bad_setting, "loud")
    bad_metrics = run_module("launch.evaluate", f"--workdir={workdir_without_checkpoint}",
                             "--metrics=published", cwd=tmp_path)
    assert_user_error(bad_metrics, "metrics")


def test_several_inputs_need_an_output_folder(tmp_path, workdir_without_checkpoint):
    a = _save(tmp_path / "a.nii.gz", np.ones((8, 8, 4), np.float32))
    b = _save(tmp_path / "b.nii.gz", np.ones((8, 8, 4), np.float32))
    result = run_module("launch.infer", f"--workdir={workdir_without_checkpoint}", f"--input={a}",
                        f"--input={b}", f"--output={tmp_path}/one.nii.gz", cwd=tmp_path)
    assert_user_error(result, "folder")
    assert not (tmp_path / "one.nii.gz").exists()
    bad_tile = run_module("launch.infer", f"--workdir={workdir_without_checkpoint}", f"--input={a}",
                          f"--output={tmp_path}/one.nii.gz", "--tile=64,64", cwd=tmp_path)
    assert_user_error(bad_tile, "--tile", "64,64")
    assert not (tmp_path / "one.nii.gz").exists()

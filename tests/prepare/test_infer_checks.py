"""`launch.infer` checks its input against the run's training grid; `--prepare` runs the steps first."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from iqt.prepare.phantom import synthetic_head
from tests.cli_helpers import assert_user_error
from tests.prepare.helpers import make_run, run_module, thick_template


@pytest.fixture(scope="module")
def run_x8_07mm(tmp_path_factory):
    """Trained (random weights) at x8 on 0.7 mm: slices 5.6 mm apart."""
    return make_run(tmp_path_factory.mktemp("runs") / "x8", factor=8, hf_voxel_mm=0.7)


def _scan(path, sizes, background: float = 0.0, seed: int = 0):
    data = np.full((24, 20, 6), background, np.float32)
    data[4:20, 4:16] += np.random.default_rng(seed).uniform(100, 400, (16, 12, 6)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([*sizes, 1.0])), path)
    return path


def test_a_slice_spacing_far_from_the_training_one_is_refused_with_the_numbers(run_x8_07mm, tmp_path):
    scan = _scan(tmp_path / "scan.nii.gz", (1.0, 1.0, 3.0))
    out = tmp_path / "out" / "iqt.nii.gz"
    refused = run_module("launch.infer", f"--workdir={run_x8_07mm}", f"--input={scan}", f"--output={out}",
                         cwd=tmp_path)
    assert_user_error(refused, "3 mm apart", "x8 on 0.7 mm", "5.6 mm", "--allow_spacing_mismatch")
    assert not out.parent.exists()
    allowed = run_module("launch.infer", f"--workdir={run_x8_07mm}", f"--input={scan}", f"--output={out}",
                         "--allow_spacing_mismatch", "--checkpoint=latest", "--noprogress", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    warnings = [line for line in allowed.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "5.6 mm" in warnings[0] and "in-plane voxels 1 x 1 mm" in warnings[0]
    assert nib.load(out).shape == (24, 20, 48)


def test_a_background_that_is_not_zero_gives_one_warning(run_x8_07mm, tmp_path):
    scan = _scan(tmp_path / "raw.nii.gz", (0.7, 0.7, 5.6), background=20.0)
    result = run_module("launch.infer", f"--workdir={run_x8_07mm}", f"--input={scan}",
                        f"--output={tmp_path / 'iqt.nii.gz'}", "--checkpoint=latest", "--noprogress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "non-zero background" in warnings[0] and "--mask" in warnings[0]
    stripped = _scan(tmp_path / "stripped.nii.gz", (0.7, 0.7, 5.6))
    quiet = run_module("launch.infer", f"--workdir={run_x8_07mm}", f"--input={stripped}",
                       f"--output={tmp_path / 'iqt2.nii.gz'}", "--checkpoint=latest", "--noprogress", cwd=tmp_path)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr


def test_prepare_runs_the_steps_in_memory_and_writes_their_report(tmp_path):
    run = make_run(tmp_path / "x2", factor=2, hf_voxel_mm=2.5)   # slices 5 mm apart, voxels 2.5 mm
    image, _ = thick_template(step=4)                             # 4 x 4 x 5 mm
    head, _ = synthetic_head(image, (4.0, 4.0, 5.0))
    nib.save(nib.Nifti1Image(head, np.diag([4.0, 4.0, 5.0, 1.0])), tmp_path / "head.nii.gz")
    out = tmp_path / "out" / "iqt.nii.gz"
    result = run_module("launch.infer", f"--workdir={run}", f"--input={tmp_path / 'head.nii.gz'}",
                        f"--output={out}", "--prepare", "--slice_axis=2", "--checkpoint=latest", "--noprogress",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr       # prepared: skull-stripped, right voxels
    report = json.loads((tmp_path / "out" / "iqt_prepare.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["n4", "brain", "crosstalk", "resample"]
    assert report["voxel_sizes_mm_out"] == pytest.approx([2.5, 2.5, 5.0])
    enhanced = nib.load(out)
    assert enhanced.shape == (*report["shape_out"][:2], 2 * head.shape[2])
    np.testing.assert_allclose(nib.affines.voxel_sizes(enhanced.affine), (2.5, 2.5, 2.5), atol=1e-6)

"""The command-line error contract, through a real entry point run in a subprocess.

A user error prints exactly one line on stderr starting with `error:`, exits
with status 2, shows no traceback and writes nothing.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def scan(tmp_path) -> Path:
    """A 20 x 24 x 8 scan with 1 x 1 x 4 mm voxels (slices along axis 2), LAS."""
    affine = np.diag([-1.0, 1.0, 4.0, 1.0])
    data = np.linspace(0.0, 500.0, 20 * 24 * 8, dtype=np.float32).reshape(20, 24, 8)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_inspect_volume_prints_what_the_library_sees(scan, tmp_path):
    result = run_module("launch.inspect_volume", "--input", str(scan), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "shape: 20 x 24 x 8" in lines
    assert "voxel sizes (mm): 1 x 1 x 4" in lines
    assert "orientation: LAS" in lines
    assert "slice axis: 2 (detected)" in lines
    assert "intensity range: 0 to 500" in lines
    given = run_module("launch.inspect_volume", "--input", str(scan), "--slice_axis", "0", cwd=tmp_path)
    assert "slice axis: 0 (given)" in given.stdout.splitlines()


def test_help_prints_the_flags_and_exits_0(tmp_path):
    result = run_module("launch.inspect_volume", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--input" in result.stdout and "--slice_axis" in result.stdout
    assert result.stderr == ""


def _not_nifti(tmp_path: Path) -> Path:
    path = tmp_path / "notes.nii.gz"
    path.write_text("not an image")
    return path


def _truncated(tmp_path: Path, scan: Path) -> Path:
    path = tmp_path / "cut.nii.gz"
    content = scan.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


CASES = {
    "missing file": lambda tmp_path, scan: ["--input", str(tmp_path / "absent.nii.gz")],
    "not NIfTI": lambda tmp_path, scan: ["--input", str(_not_nifti(tmp_path))],
    "truncated": lambda tmp_path, scan: ["--input", str(_truncated(tmp_path, scan))],
    "slice axis out of range": lambda tmp_path, scan: ["--input", str(scan), "--slice_axis", "3"],
    "slice axis not a number": lambda tmp_path, scan: ["--input", str(scan), "--slice_axis=z"],
    "unknown flag": lambda tmp_path, scan: ["--input", str(scan), "--sliceaxis", "2"],
    "no input flag": lambda tmp_path, scan: [],
    "stray argument": lambda tmp_path, scan: ["--input", str(scan), "extra"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_exit_2_no_traceback_no_output(case, tmp_path, scan):
    args = CASES[case](tmp_path, scan)
    before = sorted(tmp_path.iterdir())
    result = run_module("launch.inspect_volume", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    stderr_lines = result.stderr.splitlines()
    assert len(stderr_lines) == 1 and stderr_lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == before

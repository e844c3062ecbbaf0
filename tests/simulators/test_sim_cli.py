"""`python -m launch.simulate` in a subprocess: output grid, same seed → same output, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "launch" / "configs" / "simulate.py")


def start_simulate(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-m", "launch.simulate", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_simulate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return finish(start_simulate(*args, cwd=cwd))


@pytest.fixture
def subject(tmp_path) -> dict[str, Path]:
    """HF 40 × 9 × 10 at 0.7 mm, thick slices to come along axis 0, with GM/WM/CSF maps."""
    affine = np.array([[0.0, 0.0, 0.7, -20.0], [-0.7, 0.0, 0.0, 30.0],
                       [0.0, 0.7, 0.0, -5.0], [0.0, 0.0, 0.0, 1.0]])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(40, 9, 10))
    paths = {"input": tmp_path / "hf.nii.gz"}
    nib.save(nib.Nifti1Image((0.3 + 0.3 * labels).astype(np.float32), affine), paths["input"])
    for t, name in enumerate(("gm", "wm", "csf")):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image((labels == t).astype(np.float32), affine), paths[name])
    return paths


def test_same_seed_same_output_on_the_conventions_grid(subject, tmp_path):
    outputs = [tmp_path / "lf_a.nii.gz", tmp_path / "lf_b.nii.gz"]
    maps = [f"--{n}={subject[n]}" for n in ("gm", "wm", "csf")]
    runs = [start_simulate(f"--input={subject['input']}", *maps, f"--output={out}",
                           f"--config={CONFIG}:FLAIR", "--seed=5", "--slice_axis=0", cwd=tmp_path)
            for out in outputs]                        # two processes, side by side
    runs = [finish(run) for run in runs]
    for run in runs:
        assert run.returncode == 0, run.stderr
    a, b = (nib.load(out) for out in outputs)
    np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())
    assert a.shape == (5, 9, 10)                       # 40 HF slices along axis 0, r = 8
    hf_affine = nib.load(subject["input"]).affine
    expected = hf_affine.copy()
    expected[:3, 0] *= 8                               # slice column × r …
    expected[:3, 3] += 3.5 * hf_affine[:3, 0]          # … origin at HF index (r − 1)/2
    np.testing.assert_allclose(a.affine, expected, atol=1e-4)
    drawn = json.loads(runs[0].stdout.strip().splitlines()[-1])
    assert drawn == json.loads(runs[1].stdout.strip().splitlines()[-1])
    spacing = 8 * 0.7                                  # the widths follow the input's voxel size
    assert drawn["hf_voxel_mm"] == pytest.approx(0.7)
    assert drawn["slice_thickness_mm"] == pytest.approx(drawn["slice_thickness_fraction"] * spacing)
    assert 0.75 * spacing <= drawn["slice_thickness_mm"] <= 0.92 * spacing and drawn["snr_wm"] > 1


@pytest.mark.parametrize("problem, message", [
    ("missing_map", "give all three tissue maps or none"),
    ("missing_input", "does not exist"),
    ("bad_config", "sim.noise='poisson'"),
])
def test_user_errors_give_one_line_status_2_and_no_output(subject, tmp_path, problem, message):
    args = [f"--input={subject['input']}", f"--gm={subject['gm']}", f"--wm={subject['wm']}",
            f"--csf={subject['csf']}", f"--config={CONFIG}"]
    if problem == "missing_map":
        args.remove(f"--wm={subject['wm']}")
    elif problem == "missing_input":
        args[0] = f"--input={tmp_path / 'nothing.nii.gz'}"
    else:
        args.append("--config.sim.noise=poisson")
    output = tmp_path / "out" / "lf.nii.gz"
    run = run_simulate(*args, f"--output={output}", cwd=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in run.stderr
    assert not output.exists() and not (output.parent.exists() and any(output.parent.iterdir()))

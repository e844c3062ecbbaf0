"""`launch.evaluate --suite generalisation` end to end on a tiny network, and its one-line refusals."""
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
from tests.conftest import slow
from tests.random_run import random_run

ROOT = Path(__file__).resolve().parents[2]


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.evaluate", "--suite", "generalisation", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _brain_file(path: Path, affine=None) -> Path:
    """A small brain-extracted 'Colin27' at 0.5 mm: an ellipsoid of smooth texture."""
    shape = (48, 48, 72)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    texture = np.cos(9 * grid[0]) * np.sin(7 * grid[1] + 5 * grid[2])
    data = np.where((grid ** 2).sum(0) < 0.9, 60 + 25 * texture, 0).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 0.5, 1]) if affine is None else affine), path)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("generalisation") / "run"
    random_run(workdir)
    return workdir


def test_the_benchmark_scores_every_method_in_every_case(tiny_run, tmp_path):
    out = tmp_path / "report"
    result = _evaluate("--workdir", str(tiny_run), "--colin27", str(_brain_file(tmp_path / "c.nii.gz")),
                       "--brains", "colin27", "--cases", "rect_gap,clinic", "--backend", "jax", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "generalisation.json").read_text())
    assert {(r["case"], r["method"]) for r in record["scores"]} == {
        (c, m) for c in ("rect_gap", "clinic") for m in ("IQT", "nearest", "linear", "cubic")}
    assert record["factor"] == 8 and record["slice_spacing_mm"] == 8.0 and record["backend"] == "jax"
    for row in record["comparison"]:
        assert row["gain_psnr_fit"] == pytest.approx(row["iqt_psnr_fit"] - row["cubic_psnr_fit"])
    rect = {r["method"]: r for r in record["scores"] if r["case"] == "rect_gap"}
    assert rect["cubic"]["psnr_fit"] > rect["nearest"]["psnr_fit"]   # on smooth anatomy, as expected
    assert (out / "colin27_rect_gap.png").stat().st_size > 10_000
    assert "| colin27 | clinic |" in result.stdout


def test_an_oblique_brain_is_refused_in_one_line_before_any_output(tiny_run, tmp_path):
    angle = np.deg2rad(20)
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    affine[:2, :2] = 0.5 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = tmp_path / "report"
    result = _evaluate("--workdir", str(tiny_run), "--colin27", str(_brain_file(tmp_path / "o.nii.gz", affine)),
                       "--brains", "colin27", "--cases", "rect_gap", "--backend", "jax", "--out", str(out))
    assert_user_error(result, "oblique")
    assert not out.exists()


def test_an_unknown_case_is_refused_in_one_line(tiny_run, tmp_path):
    result = _evaluate("--workdir", str(tiny_run), "--cases", "rect_gap,bogus", "--out", str(tmp_path / "r"))
    assert_user_error(result, "bogus", "rect_gap")
    assert not (tmp_path / "r").exists()


@slow   # about 20 s; tests/generalisation/test_adaptation.py covers enhance_adapted and launch.infer's --adapt
def test_adapt_fine_tunes_on_each_scan_and_says_so(tiny_run, tmp_path):
    out = tmp_path / "report"
    result = _evaluate("--workdir", str(tiny_run), "--colin27", str(_brain_file(tmp_path / "c.nii.gz")),
                       "--brains", "colin27", "--cases", "rect_gap", "--backend", "jax", "--adapt", "2",
                       "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "generalisation.json").read_text())["adapt_steps"] == 2
    assert "adapted to the scan in 2 steps" in result.stdout


def test_adapt_is_refused_for_an_exported_network_and_the_simulator_suite(tiny_run, tmp_path):
    network = tmp_path / "model.onnx"
    network.write_bytes(b"not read")
    result = _evaluate("--workdir", str(network), "--adapt", "2", "--out", str(tmp_path / "r"))
    assert_user_error(result, "--adapt", "work directory")
    result = subprocess.run([sys.executable, "-m", "launch.evaluate", "--workdir", str(tiny_run), "--adapt", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert_user_error(result, "--adapt", "generalisation")
    assert not (tmp_path / "r").exists()

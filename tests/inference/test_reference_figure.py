"""`enhance_file --reference`: the truth on the output's grid joins the figure; tile borders of a Predictor."""
from __future__ import annotations

import matplotlib.image
import nibabel as nib
import numpy as np
import pytest

from iqt import metrics
from iqt.data.nifti import hf_affine_from_lf
from iqt.errors import UserError
from iqt.interpolation import interpolate_slices
from iqt.infer_files import enhance_file
from iqt.inference import Predictor

FACTOR = 3


def _lf_scan(tmp_path):
    data = np.zeros((14, 12, 6), np.float32)
    data[2:12, 2:10, :] = np.random.default_rng(5).uniform(200, 800, (10, 8, 6))
    affine = np.diag([-1.0, 1.0, 3.0 * FACTOR, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "lf.nii.gz")
    return tmp_path / "lf.nii.gz", data, affine


def _nearest():
    return Predictor(lambda lf: interpolate_slices(lf, FACTOR, order=0), FACTOR)


def test_a_reference_on_the_output_grid_adds_cubic_and_truth_to_the_figure(tmp_path):
    path, data, affine = _lf_scan(tmp_path)
    truth = np.repeat(data, FACTOR, axis=2) * 1.1
    nib.save(nib.Nifti1Image(truth, hf_affine_from_lf(affine, FACTOR)), tmp_path / "hf.nii.gz")
    enhance_file(path, tmp_path / "plain.nii.gz", _nearest(), progress=False)
    enhance_file(path, tmp_path / "with.nii.gz", _nearest(), progress=False, reference_path=tmp_path / "hf.nii.gz")
    plain, with_truth = (matplotlib.image.imread(tmp_path / f"{n}.png") for n in ("plain", "with"))
    assert with_truth.shape[1] == pytest.approx(2 * plain.shape[1], rel=0.02)   # LF|cubic|IQT|truth vs LF|IQT
    # the enhanced volume itself does not depend on the reference
    np.testing.assert_array_equal(nib.load(tmp_path / "plain.nii.gz").get_fdata(),
                                  nib.load(tmp_path / "with.nii.gz").get_fdata())
    # the HF volume the LF came from, with its last Z mod r slices, is cut to the output's grid
    longer = np.concatenate([truth, truth[..., :FACTOR - 1]], axis=2)
    nib.save(nib.Nifti1Image(longer, hf_affine_from_lf(affine, FACTOR)), tmp_path / "hf_long.nii.gz")
    enhance_file(path, tmp_path / "long.nii.gz", _nearest(), progress=False,
                 reference_path=tmp_path / "hf_long.nii.gz")
    assert matplotlib.image.imread(tmp_path / "long.png").shape == with_truth.shape


def test_a_reference_off_the_output_grid_is_refused_before_any_output(tmp_path):
    path, data, affine = _lf_scan(tmp_path)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "lf_grid.nii.gz")             # the LF grid
    shifted = hf_affine_from_lf(affine, FACTOR)
    shifted[2, 3] += 1.0
    nib.save(nib.Nifti1Image(np.repeat(data, FACTOR, axis=2), shifted), tmp_path / "shifted.nii.gz")
    for name in ("lf_grid", "shifted"):
        with pytest.raises(UserError, match=name):
            enhance_file(path, tmp_path / "out.nii.gz", _nearest(), progress=False,
                         reference_path=tmp_path / f"{name}.nii.gz")
        assert not (tmp_path / "out.nii.gz").exists() and not (tmp_path / "out.png").exists()


def test_tile_plan_borders_are_where_the_enhanced_volume_changes_tile():
    calls = []

    def nearest_plus_tile_number(lf):   # each tile's output is offset by its call number
        calls.append(None)
        return interpolate_slices(lf, FACTOR, order=0) + 10.0 * len(calls)

    predictor = Predictor(nearest_plus_tile_number, FACTOR)
    for n_lf in (10, 9):   # tiles side by side; the last two overlapping (and cross-faded)
        lf = np.ones((6, 5, n_lf), np.float32)
        hf = predictor.enhance(lf, tile_lf=(8, 8, 2), margin_lf=(2, 2, 0), progress=False)
        plan = predictor.tile_plan(lf.shape, (8, 8, 2), (2, 2, 0))
        borders_hf = [FACTOR * b for b in plan.slice_borders_lf()]
        jumps = np.flatnonzero(np.abs(np.diff(hf[0, 0])) > 1e-3) + 1   # HF slice b differs from b - 1
        assert borders_hf and set(borders_hf) <= set(jumps)
        if n_lf == 10:
            assert list(jumps) == borders_hf == [6, 12, 18, 24]
        truth = np.ones_like(hf) + np.linspace(0, 1, hf.shape[-1])
        assert metrics.tile_seam_score(truth, hf, borders_hf) > 10

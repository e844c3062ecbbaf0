"""Evaluation brains: orientation, resampling and the refusals, against nibabel and hand computations."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from skimage.measure import block_reduce

from iqt.errors import UserError
from iqt.generalisation import brains


def _blob(shape=(40, 44, 48)) -> np.ndarray:
    """A brain-extracted-looking volume: an ellipsoid of random texture, 0 outside."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid ** 2).sum(0) < 0.8
    return np.where(inside, 50 + 30 * np.random.default_rng(0).random(shape), 0).astype(np.float32)


def test_to_ras_matches_nibabels_canonical_orientation():
    data = _blob()
    affine = np.array([[0, 0, -0.5, 10], [-0.5, 0, 0, 20], [0, 0.5, 0, -5], [0, 0, 0, 1.0]])   # LPI-ish, permuted
    ras, sizes = brains.to_ras(data, affine, "test")
    expected = nib.as_closest_canonical(nib.Nifti1Image(data, affine)).get_fdata()
    np.testing.assert_array_equal(ras, expected)
    assert sizes == (0.5, 0.5, 0.5)


def test_an_oblique_grid_is_refused():
    angle = np.deg2rad(10)
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    with pytest.raises(UserError, match="oblique"):
        brains.to_ras(np.zeros((4, 4, 4)), affine, "brain")


def test_a_whole_ratio_is_a_block_mean():
    data = np.random.default_rng(1).random((10, 12, 14)).astype(np.float32)
    expected = data.reshape(5, 2, 6, 2, 7, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(brains.resample_to(data, 0.5, 1.0, "b"), expected, rtol=1e-6)


def test_a_source_coarser_than_the_run_is_refused():
    with pytest.raises(UserError, match="coarser"):
        brains.resample_to(np.zeros((4, 4, 4)), 1.0, 0.7, "brain")


def test_colin27_from_a_file_is_block_averaged_and_cropped(tmp_path):
    data = _blob()
    path = tmp_path / "ch2better.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 0.5, 1])), path)
    brain = brains.colin27(path, 1.0)
    mask = block_reduce((data > 0).astype(np.float32), (2, 2, 2), np.mean) >= 0.5
    image = np.where(mask, block_reduce(data, (2, 2, 2), np.mean), 0)
    box = tuple(slice(max(i.min() - 2, 0), i.max() + 3) for i in np.nonzero(mask))
    np.testing.assert_allclose(brain.image, image[box], rtol=1e-6)
    np.testing.assert_array_equal(brain.brain, mask[box])
    assert brain.voxel_mm == 1.0


def test_anisotropic_colin27_is_refused(tmp_path):
    path = tmp_path / "aniso.nii.gz"
    nib.save(nib.Nifti1Image(_blob(), np.diag([0.5, 0.5, 2.0, 1])), path)
    with pytest.raises(UserError, match="anisotropic"):
        brains.colin27(path, 1.0)


def test_a_missing_colin27_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(brains, "COLIN27_SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="mricron-data"):
        brains.find_colin27(fetch=False)
    with pytest.raises(UserError, match="does not exist"):
        brains.find_colin27(tmp_path / "nowhere.nii.gz")


def test_the_template_slab_is_the_training_target_of_the_test_split():
    slab = brains.template_test_slab()
    assert slab.voxel_mm == 1.0 and slab.image.shape == slab.brain.shape
    assert np.all(slab.image[~slab.brain] == 0) and slab.image[slab.brain].mean() > 0

"""iqt.data.normalization: robust scale, normalisation and tissue means."""
from __future__ import annotations

import numpy as np
import pytest

import simulators
from iqt.data import normalization
from iqt.data.template import load_template
from iqt.errors import UserError


def test_brain_mask_from_image_or_tissue():
    image = np.array([[[0.0, 2.0, 0.0]]])
    tissue = np.zeros((1, 1, 3, 3))
    tissue[0, 0, 2, 2] = 0.1
    np.testing.assert_array_equal(normalization.brain_mask(image), [[[False, True, False]]])
    np.testing.assert_array_equal(normalization.brain_mask(image, tissue), [[[False, False, True]]])


def test_robust_scale_is_the_99th_percentile_by_hand():
    # Brain values 1..100 (linear interpolation: 99 + 0.01 * (100 - 99) = 99.01); background 1e6.
    image = np.concatenate([np.arange(1.0, 101.0), [1e6, 1e6]]).reshape(2, 3, 17)
    mask = np.ones(image.shape, bool)
    mask.reshape(-1)[100:] = False
    assert normalization.robust_scale(image, mask) == pytest.approx(99.01)
    normalised, scale = normalization.normalise(image, mask)
    assert scale == pytest.approx(99.01) and normalised.dtype == np.float32
    np.testing.assert_allclose(normalised, image / 99.01, rtol=1e-6)


def test_empty_mask_or_non_positive_scale_is_a_user_error():
    with pytest.raises(UserError, match="scan.nii.gz"):
        normalization.robust_scale(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), bool), name="scan.nii.gz")
    with pytest.raises(UserError, match="positive"):
        normalization.robust_scale(np.zeros((2, 2, 2)), np.ones((2, 2, 2), bool))


def test_tissue_means_over_confident_voxels_by_hand():
    image = np.array([2.0, 2.0, 4.0, 3.0, 1.0, 9.0]).reshape(1, 2, 3)
    tissue = np.zeros((1, 2, 3, 3))
    tissue[0, 0, :2, 0] = 1.0          # GM: 2, 2
    tissue[0, 0, 2, :] = [0.5, 0.5, 0]  # partial volume: ignored by the threshold
    tissue[0, 1, 0, 1] = 0.95          # WM: 3
    tissue[0, 1, 1, 2] = 0.91          # CSF: 1
    np.testing.assert_allclose(simulators.tissue_means(image, tissue), [2.0, 3.0, 1.0])


def test_tissue_means_fallback_is_the_probability_weighted_mean():
    image = np.array([2.0, 6.0, 10.0]).reshape(1, 1, 3)
    tissue = np.zeros((1, 1, 3, 3))
    tissue[0, 0, :, 0] = 1.0
    tissue[0, 0, :, 1] = [0.0, 0.2, 0.6]  # no WM voxel above 0.9: (0.2*6 + 0.6*10) / 0.8 = 9
    means = simulators.tissue_means(image, tissue)
    assert means.dtype == np.float32 and means.shape == (3,)
    np.testing.assert_allclose(means, [6.0, 9.0, 0.0])


def test_t1_template_contrast_is_csf_below_gm_below_wm():
    subject = load_template()
    normalised, scale = normalization.normalise(subject.image, normalization.brain_mask(subject.image))
    gm, wm, csf = simulators.tissue_means(normalised, subject.tissue)
    assert 0.0 < csf < gm < wm <= 1.0
    assert 100.0 < scale <= 255.0

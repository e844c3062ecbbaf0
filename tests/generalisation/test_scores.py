"""The benchmark's scores against hand computations and invariants."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from iqt import metrics
from iqt.generalisation import scores


@pytest.fixture
def volume():
    """A smooth positive brain-like volume (32, 32, 48) and its mask."""
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((32, 32, 48)), 2.0) * 10 + 1
    return image, np.ones(image.shape, bool)


def test_affine_fit_recovers_an_affine_intensity_change(volume):
    truth, mask = volume
    fitted = scores.affine_fit(truth, (truth - 0.3) / 2.5, mask)
    np.testing.assert_allclose(fitted, truth, rtol=1e-9, atol=1e-9)


def test_affine_fit_is_the_least_squares_line(volume):
    truth, mask = volume
    estimate = truth + np.random.default_rng(1).normal(0, 0.5, truth.shape)
    a, b = np.polyfit(estimate.ravel(), truth.ravel(), 1)     # the independent reference
    np.testing.assert_allclose(scores.affine_fit(truth, estimate, mask), a * estimate + b, rtol=1e-8)


def test_brain_scaled_has_brain_mean_one(volume):
    image, mask = volume
    mask[:4] = False
    assert scores.brain_scaled(image * 7, mask)[mask].mean() == pytest.approx(1.0)


def test_texture_ratio_is_about_one_for_white_noise_and_large_for_a_grid():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(40, 40, 48))
    assert 0.5 < scores.texture_ratio(noise, 0, [2, 4]) < 2.0
    grid = noise + 1.0 * np.cos(np.pi * np.arange(40))[:, None, None]          # period 2 along x
    assert scores.texture_ratio(grid, 0, [2]) > 20       # 1 + 40² / 40 = 41 expected
    assert 0.5 < scores.texture_ratio(grid, 1, [2]) < 2.0                        # not along y
    period3 = noise + 1.0 * np.cos(2 * np.pi * np.arange(48) / 3)[None, None, :]
    assert scores.texture_ratio(period3, 2, [3]) > 8   # 1 + (48/2)² / 48 = 13 expected


def test_texture_ratio_ignores_periods_the_axis_cannot_hold():
    assert np.isnan(scores.texture_ratio(np.ones((4, 4, 4)), 0, [8]))


def test_edge_sharpness_is_one_for_the_truth_and_lower_when_blurred_along_the_slices(volume):
    truth, mask = volume
    assert scores.edge_sharpness(truth, truth, mask) == pytest.approx(1.0)
    blurred = ndimage.gaussian_filter1d(truth, 3.0, axis=-1)
    assert scores.edge_sharpness(truth, blurred, mask) < 0.6
    in_plane = ndimage.gaussian_filter(truth, (3.0, 3.0, 0.0))   # blurred across, not along, the slices
    assert scores.edge_sharpness(truth, in_plane, mask) > scores.edge_sharpness(truth, blurred, mask)


def test_edge_sharpness_by_hand_on_a_ramp():
    truth = np.tile(np.arange(10.0), (2, 2, 1))   # slope 1 along z
    estimate = 0.5 * truth                        # slope 0.5
    assert scores.edge_sharpness(truth, estimate, np.ones(truth.shape, bool)) == pytest.approx(0.5)


def test_estimate_scores_match_iqt_metrics_and_fit(volume):
    truth, mask = volume
    estimate = 1.2 * truth + np.random.default_rng(3).normal(0, 0.2, truth.shape)
    row = scores.estimate_scores(truth, estimate, mask, factor=6, periods=[2, 4])
    assert row["psnr"] == pytest.approx(float(metrics.psnr(truth, estimate, mask)))
    assert row["psnr_fit"] == pytest.approx(float(metrics.psnr(truth, scores.affine_fit(truth, estimate, mask),
                                                               mask)))
    assert row["psnr_fit"] > row["psnr"]          # the fit removes the 20 % gain
    assert row["texture"] == max(row["texture_x"], row["texture_y"])

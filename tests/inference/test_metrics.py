"""RMSE, PSNR and SSIM in the brain mask, against skimage and NumPy by hand."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from iqt import metrics


def _pair(shape=(34, 30, 5), seed=0):
    """A smooth 'brain' on a zero background, and a noisy, slightly biased estimate of it."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = (x ** 2 + y ** 2 + 0.3 * z ** 2) < 0.6
    reference = np.where(brain, 1.0 + 0.5 * np.sin(6 * x) * np.cos(4 * y), 0.0)
    estimate = reference + 0.08 * rng.standard_normal(shape) + 0.02
    return reference, estimate, brain


def _skimage_ssim_map(reference, estimate, data_range):
    return np.stack([structural_similarity(reference[..., k], estimate[..., k], gaussian_weights=True,
                                           sigma=2.5, use_sample_covariance=False,
                                           data_range=data_range, full=True)[1]
                     for k in range(reference.shape[-1])], axis=-1)


def test_ssim_map_is_skimages_slice_by_slice():
    reference, estimate, _ = _pair()
    data_range = reference.max() - reference.min()
    np.testing.assert_allclose(metrics.ssim_map(reference, estimate),
                               _skimage_ssim_map(reference, estimate, data_range), atol=1e-12)


def test_ssim_is_the_map_averaged_in_the_mask():
    reference, estimate, brain = _pair()
    expected = _skimage_ssim_map(reference, estimate, reference.max() - reference.min())[brain].mean()
    assert metrics.ssim(reference, estimate) == pytest.approx(expected, rel=1e-12)
    # a given mask replaces the default (reference != 0)
    half = brain & (np.arange(reference.shape[0]) < 17)[:, None, None]
    expected_half = _skimage_ssim_map(reference, estimate, reference.max())[half].mean()
    assert metrics.ssim(reference, estimate, mask=half) == pytest.approx(expected_half, rel=1e-12)


def test_psnr_matches_skimage_on_a_full_mask_and_numpy_in_a_brain():
    reference, estimate, brain = _pair()
    full = reference + 2.0   # no zero voxel: the mask is the whole volume
    assert metrics.psnr(full, estimate + 2.0) == pytest.approx(
        peak_signal_noise_ratio(full, estimate + 2.0, data_range=full.max()), rel=1e-12)
    mse = np.mean((estimate[brain] - reference[brain]) ** 2)
    assert metrics.psnr(reference, estimate) == pytest.approx(
        10 * np.log10(reference[brain].max() ** 2 / mse), rel=1e-12)


def test_rmse_by_hand_in_the_mask():
    reference, estimate, brain = _pair()
    expected = np.sqrt(np.mean((estimate[brain] - reference[brain]) ** 2))
    assert metrics.rmse(reference, estimate) == pytest.approx(expected, rel=1e-12)
    # background errors do not count
    estimate_bg = np.where(brain, estimate, 100.0)
    assert metrics.rmse(reference, estimate_bg) == pytest.approx(expected, rel=1e-12)


def test_known_values_perfect_estimate_and_empty_mask():
    reference, _, brain = _pair()
    assert metrics.psnr(reference, reference) == np.inf
    assert metrics.ssim(reference, reference) == pytest.approx(1.0)
    assert metrics.rmse(reference, reference + 0.25) == pytest.approx(0.25)
    assert np.isnan(metrics.rmse(np.zeros((8, 8, 2)), np.ones((8, 8, 2))))


def test_batches_inside_jit_agree_with_numpy_per_volume():
    pairs = [_pair(seed=s) for s in range(3)]
    reference = np.stack([p[0] for p in pairs]).astype(np.float32)
    estimate = np.stack([p[1] for p in pairs]).astype(np.float32)
    jitted = jax.jit(lambda r, e: (metrics.psnr(r, e), metrics.ssim(r, e), metrics.rmse(r, e)))
    psnr, ssim, rmse = jitted(jnp.asarray(reference), jnp.asarray(estimate))
    assert psnr.shape == ssim.shape == rmse.shape == (3,)
    for b in range(3):
        np.testing.assert_allclose(psnr[b], metrics.psnr(reference[b], estimate[b]), rtol=1e-5)
        np.testing.assert_allclose(ssim[b], metrics.ssim(reference[b], estimate[b]), rtol=1e-4)
        np.testing.assert_allclose(rmse[b], metrics.rmse(reference[b], estimate[b]), rtol=1e-5)


def test_worse_estimates_score_worse():
    reference, estimate, _ = _pair()
    noisier = reference + 3 * (estimate - reference)
    assert metrics.psnr(reference, noisier) < metrics.psnr(reference, estimate)
    assert metrics.ssim(reference, noisier) < metrics.ssim(reference, estimate)
    assert metrics.rmse(reference, noisier) > metrics.rmse(reference, estimate)

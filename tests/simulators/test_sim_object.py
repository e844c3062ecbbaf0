"""One object for the LF input and the target; the LF brain mean that normalises training."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import simulators
from tests.simulators.helpers import plain_config, set_fixed, smooth_tissue, smooth_volume


def _identity_config(contrast: str = "none"):
    """r = 1, a vanishing slice profile, no noise, no background removal: sampling is the identity."""
    config = plain_config(1, contrast=contrast, lf_brain_threshold=0.0)
    return set_fixed(config, slice_thickness_fraction=1e-4)


def _params(config):
    return {k: v[0] for k, v in simulators.mean_parameters(config, 1).items()}


def _partial_tissue(shape, seed=3):
    """Smooth maps scaled so that their sum varies in (0.2, 1]: partial volume everywhere."""
    tissue = smooth_tissue(shape, seed)
    total = 0.6 + 0.4 * smooth_volume(shape, seed + 10)
    return (tissue * total[..., None]).astype(np.float32)


def test_the_object_is_the_image_times_the_tissue_sum_cut_at_the_brain_threshold():
    image = np.full((2, 2, 2), 3.0, np.float32)
    tissue = np.zeros((2, 2, 2, 3), np.float32)
    tissue[0, ..., 0], tissue[0, ..., 2] = 0.5, 0.2        # S = 0.7
    tissue[1, ..., 1] = 0.3                                 # S = 0.3, below 0.5
    got = np.asarray(simulators.hf_object(image, tissue, 0.5))
    np.testing.assert_allclose(got[0], 2.1, rtol=1e-6)
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_allclose(np.asarray(simulators.hf_object(image, tissue)), 3.0 * tissue.sum(-1), rtol=1e-6)


def test_without_degradation_the_lf_equals_the_target_exactly():
    shape = (6, 5, 12)
    image, tissue = 1.0 + smooth_volume(shape), _partial_tissue(shape)
    config = _identity_config()
    lf = simulators.simulate_volume(jax.random.key(0), image, tissue, _params(config), config,
                                    tissue_means=np.ones(3, np.float32))
    np.testing.assert_array_equal(np.asarray(lf), np.asarray(simulators.hf_object(image, tissue)))


def test_unit_contrast_factors_leave_the_object_unchanged_on_both_grids():
    # snr_gm_fixed: k = snr_wm · (mean_GM / snr_GM) / mean_WM; choose the SNRs so that k = 1.
    shape = (6, 5, 12)
    image, tissue = 1.0 + smooth_volume(shape), _partial_tissue(shape)
    means = np.float32([0.8, 1.2, 0.4])
    target = np.asarray(simulators.hf_object(image, tissue))
    for grid in ("lf", "hf"):
        config = _identity_config("snr_gm_fixed")
        config.contrast_grid = grid
        config.snr = simulators.distributions.fixed_pair((30.0 * 1.2 / 0.8, 30.0))
        lf = simulators.simulate_volume(jax.random.key(0), image, tissue, _params(config), config,
                                        tissue_means=means)
        np.testing.assert_allclose(np.asarray(lf), target, rtol=2e-6, atol=1e-6)


def test_the_background_of_the_lf_is_zero_like_a_skull_stripped_scan():
    shape = (6, 5, 32)
    image, tissue = 1.0 + smooth_volume(shape), smooth_tissue(shape)
    tissue[:, :, :8] = 0.0                                   # no brain in the first LF slice
    config = plain_config(8, noise="gaussian", contrast="snr_gm_fixed")
    lf = np.asarray(simulators.simulate_volume(jax.random.key(1), image, tissue, _params(config), config))
    assert np.all(lf[..., 0] == 0.0) and np.all(lf[..., 2:] != 0.0)


@pytest.mark.parametrize("grid", ["lf", "hf"])
def test_the_training_lf_scale_equals_the_mean_that_inference_measures(grid):
    # A brain in a zero background, simulated at the mean parameters without noise:
    # Σ_t f_t·c_t (training) is the LF brain mean (inference's lf_scale, LF > 0).
    shape = (24, 20, 96)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = (x**2 + y**2 + z**2 < 0.8).astype(np.float32)
    tissue = smooth_tissue(shape) * inside[..., None]
    image = (0.5 + 0.5 * np.abs(smooth_volume(shape))) * inside
    config = plain_config(8, contrast="snr_gm_fixed", contrast_grid=grid)
    means = simulators.tissue_means(image, tissue, 0.5)
    params = _params(config)
    lf = np.asarray(simulators.simulate_volume(jax.random.key(0), image, tissue, params, config,
                                               tissue_means=means))
    spec = simulators.SimulatorSpec.from_config(config)
    contrast = simulators.lf_brain_mean(np.float32([1, 1, 1]), means, params, spec)
    assert abs(float(contrast) - 3.0) > 0.05               # the contrast change is not the identity
    expected = simulators.lf_brain_mean(simulators.brain_means_by_tissue(image, tissue, config),
                                        means, params, spec)
    assert lf[lf > 0].mean() == pytest.approx(float(expected), rel=1e-5)

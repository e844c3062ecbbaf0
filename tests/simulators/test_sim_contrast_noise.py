"""Noise at the target SNR, Rician bias, the reference contrast model, gamma and bias field."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

import simulators
from simulators import distributions as dist
from tests.simulators.helpers import batch_of, draw, plain_config, set_fixed, simulate

M = simulators.required_margin(plain_config(8))


def constant_patches(batch: int, value: float = 1.0, shape=(32, 32)) -> np.ndarray:
    return np.full((batch, *shape, 32 + 2 * M), value, np.float32)


def test_gaussian_noise_gives_the_target_snr_on_average():
    config = plain_config(8, noise="gaussian")            # σ = mean_WM / snr_wm
    params = draw(jax.random.key(0), config, 8)
    lf = np.asarray(simulate(
        jax.random.key(1), constant_patches(8), None, np.ones((8, 3), np.float32), params, config))
    measured = lf.mean(axis=(1, 2, 3)) / lf.std(axis=(1, 2, 3))
    ratio = measured / np.asarray(params["snr_wm"])
    assert abs(ratio.mean() - 1.0) < 0.05
    assert np.all(np.abs(ratio - 1.0) < 0.05)


def test_rician_mean_bias_follows_theory_at_low_snr():
    snr = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    config = plain_config(8, noise="rician")
    params = batch_of({k: v[0] for k, v in simulators.mean_parameters(config, 1).items()}, 4)
    params["snr_wm"] = snr
    amplitude = 1.0
    lf = np.asarray(simulate(
        jax.random.key(2), constant_patches(4, amplitude, (64, 64)), None,
        np.full((4, 3), amplitude, np.float32), params, config))
    sigma = amplitude / snr
    theory = stats.rice(b=amplitude / sigma, scale=sigma)
    np.testing.assert_allclose(lf.mean(axis=(1, 2, 3)), theory.mean(), rtol=0.02)
    np.testing.assert_allclose(lf.std(axis=(1, 2, 3)), theory.std(), rtol=0.03)
    assert lf[0].mean() > 1.5 * amplitude        # the bias is large at SNR 0.5 …
    assert abs(lf[3].mean() / amplitude - 1.0) < 0.05  # … and small at SNR 4


def three_tissue_phantom(batch: int, intensities=(0.6, 0.9, 0.3)):
    """GM, WM and CSF slabs along x (64 × 64 in-plane), constant along the slices."""
    labels = np.repeat([0, 1, 2], [20, 24, 20])                      # along x
    tissue = np.zeros((batch, 64, 64, 32 + 2 * M, 3), np.float32)
    for t in range(3):
        tissue[:, labels == t, ..., t] = 1.0
    hf = np.einsum("bxyzt,t->bxyz", tissue, np.asarray(intensities, np.float32))
    means = np.tile(np.asarray(intensities, np.float32), (batch, 1))
    return hf, tissue, means, labels


@pytest.mark.parametrize("model", ["snr_gm_fixed", "snr_wm_fixed"])
def test_reference_contrast_model_gives_the_sampled_tissue_snrs(model):
    config = plain_config(8, contrast=model, noise="gaussian")
    hf, tissue, means, labels = three_tissue_phantom(4)
    params = draw(jax.random.key(3), config, 4)
    lf = np.asarray(simulate(jax.random.key(4), hf, tissue, means, params, config))
    for b in range(4):
        for t, name in [(0, "snr_gm"), (1, "snr_wm")]:
            region = lf[b, labels == t]
            measured = region.mean() / region.std()
            assert abs(measured / float(params[name][b]) - 1.0) < 0.05, (b, name)
        fixed_tissue = 0 if model == "snr_gm_fixed" else 1
        for t in (fixed_tissue, 2):                 # the held tissue and CSF keep their intensity
            assert abs(lf[b, labels == t].mean() / means[b, t] - 1.0) < 0.01


def test_tissue_scaling_gamma_and_bias_field_follow_their_formulas():
    config = set_fixed(plain_config(8, contrast="tissue_scaling"), contrast_gm=1.5,
                       contrast_wm=0.5, contrast_csf=2.0, gamma=2.0, bias_x=0.2)
    hf, tissue, means, labels = three_tissue_phantom(1)
    params = simulators.mean_parameters(config, 1)
    lf = np.asarray(simulate(jax.random.key(5), hf, tissue, means, params, config))
    scaled = np.array([1.5 * 0.6, 0.5 * 0.9, 2.0 * 0.3])
    reference = 0.5 * 0.9                            # the scaled WM intensity
    expected_tissue = reference * (scaled / reference) ** 2.0
    x_mm = (np.arange(64) - 31.5) * 0.7
    bias = np.exp(0.2 * x_mm / 100.0)
    expected = expected_tissue[labels][:, None, None] * bias[:, None, None]
    np.testing.assert_allclose(lf[0], np.broadcast_to(expected, lf[0].shape), rtol=1e-5)


def test_uncorrelated_snr_pair_can_be_configured():
    config = plain_config(8)
    config.snr = dist.uniform_pair((10.0, 20.0), (12.0, 30.0))
    params = draw(jax.random.key(6), config, 256)
    assert 10.0 <= float(params["snr_wm"].min()) and float(params["snr_wm"].max()) <= 12.0
    assert 20.0 <= float(params["snr_gm"].min()) and float(params["snr_gm"].max()) <= 30.0

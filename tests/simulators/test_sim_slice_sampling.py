"""Slice-profile blur and slice sampling against scipy.ndimage; patches against volumes."""
from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import signal

import simulators
from simulators.slice_sampling import slice_sampling_matrix
from tests.simulators.helpers import plain_config, set_fixed, simulate, smooth_tissue, smooth_volume

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def lf_of_volume(volume, config, tissue=None, tissue_means=(1.0, 1.0, 1.0)) -> np.ndarray:
    params = simulators.mean_parameters(config, 1)
    return np.asarray(simulators.simulate_volume(
        jax.random.key(0), volume, tissue, params, config, tissue_means=np.asarray(tissue_means)))


def sigma_voxels(config) -> float:
    thickness_mm = config.parameters.slice_thickness_fraction.value * config.factor * config.hf_voxel_mm
    return thickness_mm / config.hf_voxel_mm / FWHM_PER_SIGMA


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "constant"])
def test_whole_slice_centres_equal_scipy_blur_then_every_rth_slice(mode):
    # Odd r puts LF centres r*j + (r-1)/2 on whole HF slices: blur + keep is exact.
    r = 3
    volume = smooth_volume((5, 4, 45))
    config = plain_config(r, edge_mode=mode)
    sigma = sigma_voxels(config)
    expected = ndi.gaussian_filter1d(volume.astype(np.float64), sigma, axis=2, mode=mode,
                                     radius=int(4.0 * sigma))[..., (r - 1) // 2::r]
    lf = lf_of_volume(volume, config)
    assert lf.shape == (5, 4, 15)
    assert np.abs(lf - expected).max() < 1e-5


@pytest.mark.parametrize("r", [8, 4])
def test_half_slice_centres_match_scipy_blur_then_cubic_spline(r):
    # Even r puts centres between HF slices; scipy blurs, then a cubic spline
    # interpolates there. The simulator evaluates the continuous PSF at the
    # half-integer offsets directly, so the two differ by the spline's error:
    # about 1e-4 on this unit-amplitude smooth volume.
    volume = smooth_volume((6, 5, 96))
    config = plain_config(r)
    blurred = ndi.gaussian_filter1d(volume.astype(np.float64), sigma_voxels(config), axis=2,
                                    mode="reflect", truncate=4.0)
    centres = r * np.arange(96 // r) + (r - 1) / 2
    grid = np.meshgrid(np.arange(6), np.arange(5), centres, indexing="ij")
    expected = ndi.map_coordinates(blurred, grid, order=3, mode="reflect")
    assert np.abs(lf_of_volume(volume, config) - expected).max() < 3e-4


def test_lf_slices_sit_at_the_conventions_centres():
    # A symmetric profile maps a ramp f(z) = z to its value at the slice centre.
    r = 8
    ramp = np.broadcast_to(np.arange(96, dtype=np.float32), (2, 2, 96))
    lf = lf_of_volume(ramp, plain_config(r))
    interior = slice(1, 96 // r - 1)   # away from the reflected ends
    np.testing.assert_allclose(lf[0, 0, interior], (r * np.arange(12) + 3.5)[interior], atol=1e-4)


def test_rect_gaussian_profile_matches_a_numerical_convolution():
    config = set_fixed(plain_config(8, slice_profile="rect_gaussian"),
                       slice_thickness_fraction=0.75, slice_edge_fwhm_mm=1.0)   # 4.2 mm
    spec = simulators.SimulatorSpec.from_config(config)
    params = {k: v[0] for k, v in simulators.mean_parameters(config, 1).items()}
    weights = np.asarray(slice_sampling_matrix(
        "rect_gaussian", params, n_hf=64, n_lf=8, factor=8, margin=0, hf_voxel_mm=0.7,
        half_width_mm=spec.slice_half_width_mm, edge_mode="constant"))
    # box (4.2 mm) * Gaussian (FWHM 1 mm), convolved on a 1 µm grid
    step = 1e-3
    grid = np.arange(-8.0, 8.0 + step / 2, step)
    box = (np.abs(grid) <= 2.1).astype(np.float64)
    gauss = np.exp(-0.5 * (grid / (1.0 / FWHM_PER_SIGMA)) ** 2)
    profile = signal.fftconvolve(box, gauss, mode="same")
    half_width = 2.1 + 4.0 / FWHM_PER_SIGMA
    offsets = (np.arange(64) - (8 * 4 + 3.5)) * 0.7          # LF slice 4, interior
    expected = np.where(np.abs(offsets) <= half_width, np.interp(offsets, grid, profile), 0.0)
    np.testing.assert_allclose(weights[:, 4], expected / expected.sum(), atol=2e-4)
    np.testing.assert_allclose(weights[:, 1:-1].sum(axis=0), 1.0, atol=1e-6)   # edges: zeros


def _tissue_scaling_config():
    config = plain_config(8, slice_profile="rect_gaussian", contrast="tissue_scaling",
                          contrast_grid="hf")
    return set_fixed(config, gamma=0.8, contrast_gm=1.2, contrast_wm=0.7, contrast_csf=1.0)


@pytest.mark.parametrize("make_config", [
    lambda: plain_config(8, contrast="snr_gm_fixed"), _tissue_scaling_config],
    ids=["reference", "rect_hf_gamma"])
def test_a_patch_with_its_margin_equals_the_whole_volume(make_config):
    config = make_config()
    r, m = config.factor, simulators.required_margin(config)
    volume = 0.5 + 0.4 * smooth_volume((6, 5, 96))
    tissue = smooth_tissue((6, 5, 96))
    means = simulators.tissue_means(volume, tissue, threshold=0.5)
    whole = lf_of_volume(volume, config, tissue, means)
    z0, depth = 2 * r, 4 * r                        # the patch: HF slices 16 … 47
    window = slice(z0 - m, z0 + depth + m)
    params = simulators.mean_parameters(config, 1)
    patch = simulate(jax.random.key(1), volume[None, ..., window],
                                      tissue[None, :, :, window], means[None], params, config)
    assert patch.shape == (1, 6, 5, depth // r)
    np.testing.assert_allclose(patch[0], whole[..., z0 // r:(z0 + depth) // r], atol=1e-5)


@pytest.mark.parametrize("make_config", [
    lambda: plain_config(8),
    lambda: plain_config(2),
    lambda: set_fixed(plain_config(4, slice_profile="rect_gaussian"), slice_edge_fwhm_mm=1.5),
])
def test_required_margin_is_the_smallest_that_holds_every_profile(make_config):
    config = make_config()
    spec = simulators.SimulatorSpec.from_config(config)
    m, r, depth = simulators.required_margin(config), config.factor, 16
    params = {k: v[0] for k, v in simulators.mean_parameters(config, 1).items()}

    def kept_mass(margin):   # weight left when everything outside the patch is zero
        w = slice_sampling_matrix(
            spec.slice_profile, params, n_hf=depth + 2 * margin, n_lf=depth // r, factor=r,
            margin=margin, hf_voxel_mm=spec.hf_voxel_mm,
            half_width_mm=spec.slice_half_width_mm, edge_mode="constant")
        return np.asarray(w).sum(axis=0)

    assert m > 0
    np.testing.assert_allclose(kept_mass(m), 1.0, atol=1e-6)
    assert kept_mass(m - 1).min() < 1.0 - 1e-6

"""Tests of `iqt.generalisation.acquisition`: each effect against an independent computation
(scipy.ndimage box filters, scipy.stats distributions, a hand-written k-space crop, an FFT of the
RF pulse, hand-computed overlaps)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage, stats

from iqt.generalisation import acquisition as acq

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _random_volume(shape=(8, 8, 30), seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=shape)


def _fwhm(z, values):
    """Full width at half maximum of a single-peaked sampled profile, by linear interpolation."""
    half = values.max() / 2.0
    above = np.flatnonzero(values >= half)
    i, j = above[0], above[-1]
    left = np.interp(half, [values[i - 1], values[i]], [z[i - 1], z[i]])
    right = np.interp(half, [values[j + 1], values[j]], [z[j + 1], z[j]])
    return right - left


def _edge_width(z, values, thickness):
    """Distance between the 90 % and 10 % points of the profile's right edge, in units of the thickness."""
    zr, vr = z[z >= 0], values[z >= 0] / values.max()
    z90 = zr[np.argmax(vr < 0.9)]
    z10 = zr[np.argmax(vr < 0.1)]
    return (z10 - z90) / thickness


# --- slice profiles and weights ----------------------------------------------------------------------

@pytest.mark.parametrize("factor, thickness_vox", [(3, 3), (5, 3), (5, 5)])
def test_rect_odd_integer_thickness_is_a_box_average(factor, thickness_vox):
    hf = _random_volume()
    weights = acq.slice_weights(30, factor, 1.5, "rect", thickness_vox * 1.5)
    lf = acq.acquire_slices(hf, weights)
    centres = factor * np.arange(30 // factor) + (factor - 1) // 2
    box = ndimage.uniform_filter1d(hf, size=thickness_vox, axis=2)[..., centres]
    np.testing.assert_allclose(lf, box, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factor, thickness_vox, expected", [
    (4, 2.5, [0.1, 0.4, 0.4, 0.1]),     # slab [4j+0.25, 4j+2.75] in voxel units: overlaps .25, 1, 1, .25
    (3, 2.0, [0.25, 0.5, 0.25]),        # slab [3j, 3j+2]: overlaps .5, 1, .5
])
def test_rect_fractional_thickness_weights_are_the_overlaps(factor, thickness_vox, expected):
    weights = acq.slice_weights(24, factor, 2.0, "rect", thickness_vox * 2.0)
    column = weights[:, 2]
    rows = np.flatnonzero(column)
    np.testing.assert_array_equal(rows, factor * 2 + np.arange(len(expected)))
    np.testing.assert_allclose(column[rows], expected, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_gaussian_weights_are_normal_cdf_differences(factor):
    h, t, n_hf = 1.2, 0.9 * factor * 1.2, 12 * factor
    weights = acq.slice_weights(n_hf, factor, h, "gaussian", t)
    edges = (np.arange(n_hf + 1) - 0.5) * h
    for j in range(n_hf // factor):
        cdf = stats.norm.cdf(edges, loc=(factor * j + (factor - 1) / 2) * h, scale=t / FWHM_PER_SIGMA)
        expected = np.diff(cdf) / (cdf[-1] - cdf[0])
        np.testing.assert_allclose(weights[:, j], expected, atol=3e-4)


@pytest.mark.parametrize("tbw", [2.0, 4.0, 8.0])
def test_windowed_sinc_fwhm_equals_thickness_and_is_symmetric(tbw):
    t = 5.0
    z = np.linspace(-t, t, 4001)
    profile = acq.slice_profile("windowed_sinc", z, t, tbw)
    assert profile.max() == pytest.approx(1.0, abs=1e-6)
    assert _fwhm(z, profile) == pytest.approx(t, rel=1e-5)
    np.testing.assert_allclose(profile, profile[::-1], atol=1e-12)
    assert acq.slice_profile("windowed_sinc", np.linspace(t, 2 * t, 501), t, tbw).min() >= 0.0


@pytest.mark.parametrize("tbw", [2.0, 4.0, 8.0])
def test_windowed_sinc_matches_an_fft_of_the_pulse(tbw):
    """Independent transform: FFT of the densely sampled, zero-padded pulse, normalised by its own FWHM."""
    n, pad = 4096, 64
    s = (np.arange(n) - n // 2) / n
    pulse = np.sinc(tbw * s) * np.hanning(n + 1)[:n]            # Hann over [-1/2, 1/2)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft(pulse, n * pad)))
    f = np.fft.fftshift(np.fft.fftfreq(n * pad, d=1.0 / n))     # cycles per pulse duration
    inside = np.abs(f) <= 2 * tbw
    f, spectrum = f[inside], spectrum[inside] / spectrum[inside].max()
    t = 3.0
    z = f * t / _fwhm(f, spectrum)
    np.testing.assert_allclose(acq.slice_profile("windowed_sinc", z, t, tbw), spectrum, atol=1e-4)


def test_windowed_sinc_tends_to_rect_and_is_softer_for_low_tbw():
    factor, h = 4, 1.0
    t = 5 / 6 * factor * h
    rect = acq.slice_weights(48, factor, h, "rect", t)
    sharp = acq.slice_weights(48, factor, h, "windowed_sinc", t, 16.0)
    np.testing.assert_allclose(sharp, rect, atol=2e-3)
    soft = acq.slice_weights(48, factor, h, "windowed_sinc", t, 2.0)
    outside = rect[:, 3] == 0
    assert soft[outside, 3].sum() > 0.05 > sharp[outside, 3].sum()
    z = np.linspace(0.0, 1.5 * t, 3001)
    widths = [_edge_width(z, acq.slice_profile("windowed_sinc", z, t, tbw), t) for tbw in (2.0, 4.0, 8.0, 16.0)]
    assert all(a > b for a, b in zip(widths, widths[1:])), widths


@pytest.mark.parametrize("profile", acq.PROFILES)
@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_weight_columns_sum_to_one_and_are_centred(profile, factor):
    h, n_hf = 1.0, 16 * factor
    weights = acq.slice_weights(n_hf, factor, h, profile, 5 / 6 * factor * h + 0.3)
    assert weights.shape == (n_hf, n_hf // factor)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-12)
    assert (weights >= 0).all()
    interior = range(3, n_hf // factor - 3)                    # columns whose profile is not cut by the edges
    moments = [np.arange(n_hf) @ weights[:, j] for j in interior]
    np.testing.assert_allclose(moments, [factor * j + (factor - 1) / 2 for j in interior], atol=1e-9)


# --- noise ---------------------------------------------------------------------------------------------

def _moment_checks(sample, dist):
    n = sample.size
    mean_se = np.sqrt(dist.var() / n)
    var_se = np.sqrt((np.mean((sample - sample.mean()) ** 4) - sample.var() ** 2) / n)
    assert abs(sample.mean() - dist.mean()) < 4 * mean_se
    assert abs(sample.var() - dist.var()) < 4 * var_se
    assert stats.kstest(sample[:20000], dist.cdf).pvalue > 1e-3


@pytest.mark.parametrize("amplitude, sigma", [(2.0, 1.0), (10.0, 3.0), (1.0, 2.0)])
def test_rician_noise_is_rician(amplitude, sigma):
    sample = acq.rician_noise(np.full((100, 100, 20), amplitude), sigma, np.random.default_rng(1)).ravel()
    _moment_checks(sample, stats.rice(amplitude / sigma, scale=sigma))


def test_rician_noise_of_zero_is_rayleigh():
    sample = acq.rician_noise(np.zeros((200, 200, 5)), 1.5, np.random.default_rng(2)).ravel()
    _moment_checks(sample, stats.rayleigh(scale=1.5))


@pytest.mark.parametrize("fwhm_vox", [1.5, 2.5])
def test_correlated_noise_keeps_sigma_and_has_the_kernels_correlation(fwhm_vox):
    sigma = 2.0
    noise = acq._noise_field((128, 128, 16), sigma, np.random.default_rng(3), fwhm_vox)
    assert noise.std() == pytest.approx(sigma, rel=0.03)
    delta = np.zeros(41)
    delta[20] = 1.0                                 # scipy's own Gaussian kernel (truncated at 4 sigma)
    kernel = ndimage.gaussian_filter1d(delta, fwhm_vox / FWHM_PER_SIGMA, mode="constant")
    expected = np.sum(kernel[1:] * kernel[:-1]) / np.sum(kernel ** 2)     # lag-1 autocorrelation
    for axis in (0, 1):
        a, b = np.moveaxis(noise, axis, 0)[:-1], np.moveaxis(noise, axis, 0)[1:]
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] == pytest.approx(expected, abs=0.02)
    assert abs(np.corrcoef(noise[..., :-1].ravel(), noise[..., 1:].ravel())[0, 1]) < 0.03   # not across slices
    large = acq.rician_noise(np.full((96, 96, 8), 1e3), sigma, np.random.default_rng(4), fwhm_vox)
    assert (large - 1e3).std() == pytest.approx(sigma, rel=0.05)


# --- k-space truncation ------------------------------------------------------------------------------

def _crop_reference(image, fraction):
    spectrum = np.fft.fftshift(np.fft.fft2(image, axes=(0, 1)), axes=(0, 1))
    for axis in (0, 1):
        n = image.shape[axis]
        k = max(1, int(round(fraction * n)))
        lo = n // 2 - k // 2
        block = np.take(spectrum, np.arange(lo, lo + k), axis=axis)
        widths = [(0, 0)] * image.ndim
        widths[axis] = (lo, n - k - lo)
        spectrum = np.pad(block, widths)
    return np.abs(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(0, 1)), axes=(0, 1)))


@pytest.mark.parametrize("shape", [(20, 15, 3), (17, 24, 2)])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.77])
def test_kspace_truncation_equals_an_explicit_crop(shape, fraction):
    image = _random_volume(shape, seed=5)
    np.testing.assert_allclose(acq.truncate_kspace(image, fraction), _crop_reference(image, fraction), atol=1e-12)


def test_full_kspace_is_identity_and_a_step_rings():
    image = _random_volume((16, 16, 4), seed=6)
    np.testing.assert_allclose(acq.truncate_kspace(image, 1.0), image, atol=1e-5)
    step = np.ones((64, 8, 1))
    step[16:48] = 2.0
    ringing = acq.truncate_kspace(step, 0.5)
    assert ringing.max() - 2.0 > 0.05 * 1.0        # Gibbs overshoot > 5 % of the unit step


# --- bias, contrast, cross-talk --------------------------------------------------------------------------

@pytest.mark.parametrize("amplitude", [0.1, 0.3, 0.5])
def test_bias_field_range_mean_and_smoothness(amplitude):
    shape = (32, 32, 48)
    mask = np.zeros(shape, dtype=bool)
    mask[4:28, 6:26, 5:43] = True
    field = acq.bias_field(shape, (3.0, 3.0, 3.0), amplitude, np.random.default_rng(7), mask=mask)
    assert field[mask].min() == pytest.approx(1 - amplitude, abs=1e-12)
    assert field[mask].max() == pytest.approx(1 + amplitude, abs=1e-12)
    assert field[mask].mean() == pytest.approx(1.0, abs=1e-9)
    assert field.min() >= 1 - amplitude - 1e-12 and field.max() <= 1 + amplitude + 1e-12
    inside = field[4:28, 6:26, 5:43]
    first = [np.abs(np.diff(inside, axis=i)) for i in range(3)]
    second = [np.abs(np.diff(inside, n=2, axis=i)) for i in range(3)]
    assert max(d.max() for d in first) < 0.1 * 2 * amplitude   # no 3 mm step exceeds 10 % of the range
    # smooth, not noisy: second differences are << first ones (white noise: ~1.7 x; a cosine of
    # wavelength L voxels: 2 pi / L, here L >= 33)
    assert np.mean([d.mean() for d in second]) < 0.3 * np.mean([d.mean() for d in first])


def test_bias_field_trivial_cases_and_seeds():
    shape, voxel = (16, 16, 16), (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(acq.bias_field(shape, voxel, 0.0, np.random.default_rng(0)), 1.0)
    one = acq.bias_field(shape, voxel, 0.2, np.random.default_rng(8))
    np.testing.assert_array_equal(one, acq.bias_field(shape, voxel, 0.2, np.random.default_rng(8)))
    assert not np.allclose(one, acq.bias_field(shape, voxel, 0.2, np.random.default_rng(9)))
    assert one.mean() == pytest.approx(1.0, abs=1e-9)              # default mask: everywhere
    single = np.zeros(shape, dtype=bool)
    single[3, 3, 3] = True
    with pytest.raises(ValueError, match="two voxels"):
        acq.bias_field(shape, voxel, 0.2, np.random.default_rng(0), mask=single)


@pytest.mark.parametrize("gamma", [0.5, 0.8, 1.7])
def test_contrast_map_raises_the_tissue_ratio_to_gamma(gamma):
    g, w = 0.6, 1.4
    image = np.zeros((6, 6, 6))
    image[1:5, 1:5, 1:3], image[1:5, 1:5, 3:5] = g, w
    brain = image > 0
    image[0, 0, 0] = -3.0                                          # outside the brain: untouched
    out = acq.contrast_map(image, brain, gamma)
    assert out[2, 2, 3] / out[2, 2, 1] == pytest.approx((w / g) ** gamma, rel=1e-12)
    assert out[0, 0, 0] == -3.0 and out[0, 0, 1] == 0.0
    np.testing.assert_array_equal(acq.contrast_map(image, brain, 1.0), image)


def test_crosstalk_scales_odd_slices_only():
    lf = _random_volume((4, 5, 7))
    out = acq.crosstalk_steps(lf, 0.2)
    np.testing.assert_array_equal(out[..., 0::2], lf[..., 0::2])
    np.testing.assert_allclose(out[..., 1::2], 0.8 * lf[..., 1::2], rtol=1e-15)


# --- the whole chain ---------------------------------------------------------------------------------

def _phantom(shape=(32, 32, 48)):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = x ** 2 + y ** 2 + z ** 2 < 0.8
    hf = np.where(brain, 1.0 + 0.5 * (x ** 2 + y ** 2 + z ** 2 < 0.3), 0.0)
    return hf * np.random.default_rng(10).uniform(0.9, 1.1, shape), brain


FULL = acq.Acquisition("full", "every effect", profile="windowed_sinc", thickness_fraction=1.1, snr=20.0,
                       noise_correlation_fwhm_mm=2.0, bias_amplitude=0.2, kspace_fraction=0.7,
                       contrast_gamma=0.8, crosstalk=0.1)


@pytest.mark.parametrize("factor, z", [(4, 48), (3, 50)])
def test_acquire_shapes_mask_and_seeds(factor, z):
    hf, brain = _phantom((32, 32, z))
    lf, lf_brain = acq.acquire(hf, brain, FULL, factor, 1.0, seed=1)
    assert lf.shape == lf_brain.shape == (32, 32, z // factor)
    assert lf.dtype == np.float32 and lf_brain.dtype == bool
    assert lf_brain.any() and (lf[~lf_brain] == 0).all() and (lf[lf_brain] > 0).all()
    np.testing.assert_array_equal(lf, acq.acquire(hf, brain, FULL, factor, 1.0, seed=1)[0])
    assert not np.allclose(lf, acq.acquire(hf, brain, FULL, factor, 1.0, seed=2)[0])


def test_noiseless_rect_acquisition_is_the_slice_average():
    hf, brain = _phantom()
    plain = acq.Acquisition("plain", "ideal slabs, nothing else")
    lf, lf_brain = acq.acquire(hf, brain, plain, 4, 1.0)
    weights = acq.slice_weights(48, 4, 1.0, "rect", 5 / 6 * 4)
    np.testing.assert_allclose(lf[lf_brain], acq.acquire_slices(hf, weights)[lf_brain], rtol=1e-6)
    np.testing.assert_array_equal(lf_brain, acq.acquire_slices(brain.astype(float), weights) >= 0.5)


@pytest.mark.parametrize("change", [{"profile": "triangle"}, {"thickness_fraction": 0.0},
                                    {"thickness_fraction": -1.0}, {"snr": 0.0}, {"snr": -5.0},
                                    {"kspace_fraction": 1.5}, {"bias_amplitude": 0.7}, {"crosstalk": 0.6},
                                    {"time_bandwidth": 1.0}, {"contrast_gamma": 0.0},
                                    {"noise_correlation_fwhm_mm": -1.0}])
def test_bad_acquisition_fields_raise(change):
    field = next(iter(change))
    with pytest.raises(ValueError, match=field):
        acq.Acquisition("bad", "out of range", **change)


def test_bad_acquire_arguments_raise():
    hf, brain = _phantom((16, 16, 12))
    plain = acq.Acquisition("plain", "")
    for factor in (0, -1, 2.0):
        with pytest.raises(ValueError, match="factor"):
            acq.acquire(hf, brain, plain, factor, 1.0)
    with pytest.raises(ValueError, match="hf_voxel_mm"):
        acq.acquire(hf, brain, plain, 2, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        acq.acquire(hf, brain[..., :-1], plain, 2, 1.0)
    with pytest.raises(ValueError, match="fewer than factor"):
        acq.acquire(hf, brain, plain, 13, 1.0)
    with pytest.raises(ValueError, match="finite"):
        acq.acquire(np.where(brain, np.nan, 0.0), brain, plain, 2, 1.0)
    with pytest.raises(ValueError, match="profile"):
        acq.slice_weights(12, 2, 1.0, "box", 1.0)
    with pytest.raises(ValueError, match="Acquisition.snr"):
        dataclasses.replace(plain, snr=-1.0)                        # frozen: validated on construction

"""Artefact scores against hand-built volumes; the published SSIM against skimage; tile borders."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from iqt import metrics
from iqt.tiling import plan_tiles

R, N = 4, 32   # resolution factor, HF slices


def _smooth(shape=(6, 5, N)):
    """A smooth, positive volume (no zero voxel: the default mask is everything)."""
    x, y, z = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    return 2.0 + np.sin(2 * x) + np.cos(3 * y) + 0.5 * z


def _cosine(cycles_per_slice: float, amplitude: float, shape=(6, 5, N)):
    return np.broadcast_to(amplitude * np.cos(2 * np.pi * cycles_per_slice * np.arange(shape[-1])), shape)


def test_slice_periodic_share_of_sinusoids_by_hand():
    truth = _smooth()
    # amplitudes 3 at 1/r and 2 at 2/r (the slice frequency and a harmonic), 1 at 3/N (not one)
    error = _cosine(1 / R, 3.0) + _cosine(2 / R, 2.0) + _cosine(3 / N, 1.0)
    # a cosine of amplitude A at a bin other than DC and Nyquist holds power 2·(A·N/2)² per line;
    # at Nyquist (2/r = 1/2 cycle per slice for r = 4) it is one bin holding (A·N)²
    expected = (2 * 9 / 4 + 4) / (2 * 9 / 4 + 4 + 2 * 1 / 4)
    assert metrics.slice_periodic_power(truth, truth + error, R) == pytest.approx(expected, rel=1e-12)
    # only the slice frequency: all of the power; a bias on top changes nothing (DC is left out)
    assert metrics.slice_periodic_power(truth, truth + _cosine(1 / R, 0.3) + 5.0, R) == pytest.approx(1.0)
    assert metrics.slice_periodic_power(truth, truth + _cosine(3 / N, 0.3), R) == pytest.approx(0.0, abs=1e-20)


def test_slice_periodic_rmse_is_the_rms_of_the_periodic_component():
    truth = _smooth()
    periodic = _cosine(1 / R, 3.0) + _cosine(2 / R, 2.0)
    error = periodic + _cosine(3 / N, 1.0) + 0.5
    # over whole periods, RMS of A·cos = A / sqrt(2), of a Nyquist cosine A·(±1) = A
    expected = np.sqrt(9 / 2 + 4)
    assert metrics.slice_periodic_rmse(truth, truth + error, R) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(np.sqrt(np.mean(periodic ** 2)))
    # twice the error, twice the RMS, the same share
    assert metrics.slice_periodic_rmse(truth, truth + 2 * error, R) == pytest.approx(2 * expected, rel=1e-12)
    assert metrics.slice_periodic_power(truth, truth + 2 * error, R) == pytest.approx(
        metrics.slice_periodic_power(truth, truth + error, R), rel=1e-12)


def test_slice_periodic_share_of_white_noise_is_the_share_of_bins():
    truth = _smooth((40, 40, N))
    noise = np.random.default_rng(0).standard_normal(truth.shape)
    share = metrics.slice_periodic_power(truth, truth + noise, R)
    assert share == pytest.approx((R - 1) / (N - 1), rel=0.1)


def test_slice_periodic_ignores_errors_outside_the_mask_and_checks_the_slice_count():
    truth = _smooth()
    truth[:3] = 0.0   # background: outside the default mask
    estimate = truth + _cosine(3 / N, 1.0)
    estimate[:3] += _cosine(1 / R, 50.0)[:3]   # a huge periodic error, but in the background
    assert metrics.slice_periodic_power(truth, estimate, R) == pytest.approx(0.0, abs=1e-20)
    everywhere = np.ones(truth.shape, bool)
    assert metrics.slice_periodic_power(truth, estimate, R, mask=everywhere) > 0.9
    with pytest.raises(ValueError, match="multiple"):
        metrics.slice_periodic_power(truth[..., :30], estimate[..., :30], R)
    assert np.isnan(metrics.slice_periodic_power(truth, truth + 1.0, R))


def test_tile_seam_score_of_steps_at_the_borders_by_hand():
    z = np.arange(N, dtype=np.float64)
    truth = np.broadcast_to(1.0 + 0.1 * z, (4, 3, N)).copy()   # every adjacent step is 0.1
    borders = [8, 16, 24]
    assert metrics.tile_seam_score(truth, truth, borders) == 1.0
    # the estimate steps by +0.05 at slice 8, -0.05 at 16, +0.05 at 24 (a tile-by-tile offset)
    offset = 0.05 * (np.array([0, 1, 0, 1])[np.arange(N) // 8])
    estimate = truth + offset
    # at the borders |0.1 ± 0.05| = 0.15, 0.05, 0.15: mean 0.35/3; elsewhere 0.1; the truth's ratio is 1
    assert metrics.tile_seam_score(truth, estimate, borders) == pytest.approx((0.35 / 3) / 0.1, rel=1e-12)
    # steps the truth has at the borders too do not count as seams
    truth_steps = truth + 0.05 * (np.arange(N) >= 8)
    assert metrics.tile_seam_score(truth_steps, truth_steps, borders) == pytest.approx(1.0)
    assert np.isnan(metrics.tile_seam_score(truth, estimate, []))
    with pytest.raises(ValueError, match="borders"):
        metrics.tile_seam_score(truth, estimate, [0, 8])


def test_tile_seam_score_counts_only_pairs_inside_the_mask():
    truth = np.broadcast_to(1.0 + 0.1 * np.arange(N), (4, 3, N)).copy()
    estimate = truth.copy()
    estimate[0, :, 16:] += 10.0   # a seam at slice 16, but only on the line x = 0
    mask = np.ones(truth.shape, bool)
    mask[0] = False
    assert metrics.tile_seam_score(truth, estimate, [16], mask=mask) == pytest.approx(1.0)
    assert metrics.tile_seam_score(truth, estimate, [16]) > 10


def test_reference_ssim_is_skimages_on_masked_volumes():
    rng = np.random.default_rng(1)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (30, 28, 6)], indexing="ij")
    brain = x ** 2 + y ** 2 < 0.7
    truth = np.where(brain, 0.5 + 0.4 * np.sin(5 * x) * np.cos(3 * y + z), 0.0)
    estimate = truth + 0.05 * rng.standard_normal(truth.shape) + 0.1   # background not zero
    mask = truth != 0
    _, ssim_map = structural_similarity(truth * mask, estimate * mask, gaussian_weights=True, sigma=2.5,
                                        use_sample_covariance=False, channel_axis=-1, full=True,
                                        data_range=truth[mask].max() - truth[mask].min())
    assert metrics.reference_ssim(truth, estimate) == pytest.approx(ssim_map[mask].mean(), rel=1e-10)
    # ours sees the estimate's background near the brain's edge, and a wider data range
    assert metrics.ssim(truth, estimate) != pytest.approx(metrics.reference_ssim(truth, estimate), rel=1e-3)
    ref = metrics.reference_metrics(truth, estimate)
    assert ref["psnr_ref"] == pytest.approx(float(metrics.psnr(truth, estimate)))
    assert ref["rmse_ref"] == pytest.approx(np.sqrt(np.mean((estimate - truth)[mask] ** 2)))


def test_slice_borders_are_where_one_tile_hands_over_to_the_next():
    side_by_side = plan_tiles((20, 20, 16), tile_lf=(32, 32, 4), margin_lf=(0, 0, 0))
    assert side_by_side.slice_borders_lf() == [4, 8, 12]
    whole = plan_tiles((20, 20, 16), tile_lf=(32, 32, 32), margin_lf=(0, 0, 0))
    assert whole.slice_borders_lf() == []
    overlapping = plan_tiles((20, 20, 14), tile_lf=(32, 32, 8), margin_lf=(0, 0, 1))
    axis = overlapping.axes[2]
    weights = axis.weights()
    # the ends of each cross-fade: where the right tile's weight leaves 0 and where it reaches 1
    expected = set()
    for i, (left, right) in enumerate(zip(axis.starts, axis.starts[1:])):
        w = weights[i + 1]
        expected |= {right + int(np.argmax(w > 0)), right + int(np.argmax(w >= 1.0))}
    assert overlapping.slice_borders_lf() == sorted(e for e in expected if 0 < e < 14) and len(expected) >= 2

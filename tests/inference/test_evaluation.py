"""Evaluation: the interpolation baselines, the table, its summary and its files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

import simulators
from iqt import evaluation, evaluation_report, metrics
from iqt.data.normalization import brain_mask, normalise
from iqt.data.subject import Subject
from iqt.data.template import load_template
from iqt.interpolation import interpolate_slices

FACTOR = 4


def test_linear_interpolation_reads_a_ramp_at_the_convention_positions():
    lf = np.arange(6, dtype=np.float64) * 2.0 + 1.0           # value 1 + 2j at LF slice j
    hf = interpolate_slices(lf[None, None], FACTOR, order=1)[0, 0]
    position = (np.arange(6 * FACTOR) - (FACTOR - 1) / 2) / FACTOR  # LF coordinate of each HF slice
    expected = 1.0 + 2.0 * np.clip(position, 0, 5)              # constant beyond the outer centres
    np.testing.assert_allclose(hf, expected, atol=1e-5)


def test_nearest_repeats_each_slice_r_times():
    lf = np.random.default_rng(0).random((3, 2, 5)).astype(np.float32)
    np.testing.assert_array_equal(interpolate_slices(lf, FACTOR, order=0),
                                  np.repeat(lf, FACTOR, axis=-1))


def test_cubic_matches_scipy_map_coordinates_on_the_whole_volume():
    lf = np.random.default_rng(1).random((4, 3, 7))
    z = (np.arange(7 * FACTOR) - (FACTOR - 1) / 2) / FACTOR
    coords = np.meshgrid(np.arange(4), np.arange(3), z, indexing="ij")
    expected = ndimage.map_coordinates(lf, coords, order=3, mode="nearest")
    np.testing.assert_allclose(interpolate_slices(lf, FACTOR, order=3), expected, atol=1e-5)


@pytest.fixture(scope="module")
def subject() -> Subject:
    """A 2 mm cut of the MNI template (about 40 × 48 × 32), normalised like the training data."""
    t = load_template()
    image = t.image[50:150:2, 50:150:2, 70:102]
    image, _ = normalise(image, brain_mask(image))
    return Subject("mni_cut", image, np.ascontiguousarray(t.tissue[50:150:2, 50:150:2, 70:102]), t.affine)


@pytest.fixture(scope="module")
def sim_config():
    return simulators.default_config("T1w", FACTOR, hf_voxel_mm=1.0)


def _truth_and_brain(subject, sim, n_hf):
    truth = np.asarray(simulators.hf_object(subject.image, subject.tissue, sim.lf_brain_threshold))[..., :n_hf]
    brain = np.asarray(simulators.tissue_sum(subject.tissue[..., :n_hf, :])) >= sim.lf_brain_threshold
    return truth, brain


def _linear(lf):
    return interpolate_slices(lf, FACTOR, order=1)


def test_table_rows_metrics_and_fixed_seeds(subject, sim_config):
    table = evaluation.evaluate([subject], _linear, sim_config, ("snr_low", "snr_high"), seed=3)
    assert list(table.columns) == ["subject", "setting", "method", "psnr", "ssim", "rmse",
                                   "slice_periodic", "periodic_rmse", "seam"]
    assert len(table) == 2 * len(evaluation.METHODS)
    by = table.set_index(["setting", "method"])
    # IQT here is linear interpolation: the same estimate, the same numbers
    pd.testing.assert_series_equal(by.loc[("snr_low", "IQT")], by.loc[("snr_low", "linear")], check_names=False)
    # more noise, worse scores
    assert by.loc[("snr_low", "linear"), "psnr"] < by.loc[("snr_high", "linear"), "psnr"]
    # the row is the metrics of that estimate against the object in the brain the simulator keeps
    # (tissue sum >= lf_brain_threshold), recomputed from the simulator with the same key
    sim = evaluation.setting_config("snr_low", sim_config)
    lf = np.asarray(simulators.simulate_volume(evaluation.setting_key(3, "snr_low", "mni_cut"), subject.image,
                                               subject.tissue, evaluation.setting_parameters(sim), sim))
    n_hf = lf.shape[-1] * FACTOR
    truth, brain = _truth_and_brain(subject, sim, n_hf)
    cubic = interpolate_slices(lf, FACTOR, order=3)
    assert by.loc[("snr_low", "cubic"), "psnr"] == pytest.approx(float(metrics.psnr(truth, cubic, brain)))
    assert by.loc[("snr_low", "cubic"), "slice_periodic"] == pytest.approx(
        metrics.slice_periodic_power(truth, cubic, FACTOR, brain))
    assert by.loc[("snr_low", "cubic"), "periodic_rmse"] == pytest.approx(
        metrics.slice_periodic_rmse(truth, cubic, FACTOR, brain))
    assert by["seam"].isna().all()   # no borders given: no seam score
    # a setting's numbers do not depend on which other settings are evaluated
    alone = evaluation.evaluate([subject], _linear, sim_config, ("snr_high",), seed=3)
    np.testing.assert_allclose(alone[["psnr", "ssim", "rmse"]].to_numpy(),
                               table[table.setting == "snr_high"][["psnr", "ssim", "rmse"]].to_numpy())


def test_metric_sets_borders_and_the_subject_figure(subject, sim_config, tmp_path):
    def borders(lf_shape):
        return [FACTOR * b for b in (2, 4, 6) if b < lf_shape[-1]]

    table = evaluation.evaluate([subject], _linear, sim_config, ("mean", "snr_low"), seed=3, borders=borders,
                                metric_set="both", figure_dir=tmp_path)
    assert list(table.columns)[3:] == ["psnr", "psnr_ref", "ssim", "ssim_ref", "rmse", "rmse_ref",
                                       "slice_periodic", "periodic_rmse", "seam"]
    sim = evaluation.setting_config("mean", sim_config)
    lf = np.asarray(simulators.simulate_volume(evaluation.setting_key(3, "mean", "mni_cut"), subject.image,
                                               subject.tissue, evaluation.setting_parameters(sim), sim))
    truth, brain = _truth_and_brain(subject, sim, lf.shape[-1] * FACTOR)
    nearest = interpolate_slices(lf, FACTOR, order=0)
    row = table.set_index(["setting", "method"]).loc[("mean", "nearest")]
    assert row["ssim_ref"] == pytest.approx(float(metrics.reference_ssim(truth, nearest)))
    assert row["seam"] == pytest.approx(metrics.tile_seam_score(
        truth, nearest, borders(lf.shape), brain))
    reference_only = evaluation.evaluate([subject], _linear, sim_config, ("snr_low",), seed=3,
                                         metric_set="reference")
    assert list(reference_only.columns)[3:] == ["psnr_ref", "ssim_ref", "rmse_ref", "slice_periodic",
                                                   "periodic_rmse", "seam"]
    # one figure per subject, for the 'mean' setting only
    assert [p.name for p in tmp_path.iterdir()] == ["mni_cut_mean.png"]
    with pytest.raises(evaluation.UserError, match="--metrics"):
        evaluation.evaluate([subject], _linear, sim_config, ("mean",), metric_set="published")


def test_settings_change_the_simulator_as_described(sim_config):
    mean = evaluation.setting_parameters(evaluation.setting_config("mean", sim_config))
    low = evaluation.setting_parameters(evaluation.setting_config("snr_low", sim_config))
    thick = evaluation.setting_parameters(evaluation.setting_config("thick_slices", sim_config))
    assert low["snr_wm"] == pytest.approx(mean["snr_wm"] / 2) and low["snr_gm"] == pytest.approx(mean["snr_gm"] / 2)
    assert thick["slice_thickness_mm"] == pytest.approx(FACTOR * 1.0) and thick["slice_gap_mm"] == pytest.approx(0)
    with pytest.raises(evaluation.UserError, match="loud"):
        evaluation.check_settings(["mean", "loud"])


def test_markdown_summary_is_mean_and_sd_over_subjects(tmp_path):
    table = pd.DataFrame({"subject": ["a", "b", "c"] * 2, "setting": ["mean"] * 6,
                          "method": ["IQT"] * 3 + ["linear"] * 3,
                          "psnr": [30.0, 31.0, 32.0, 20.0, 20.0, 23.0],
                          "ssim": [0.9, 0.8, 0.7, 0.5, 0.5, 0.5], "rmse": [0.1, 0.2, 0.3, 0.4, 0.4, 0.4],
                          "slice_periodic": [0.1, 0.2, 0.3, 0.4, 0.4, 0.4],
                          "seam": [1.0, 1.5, np.nan, 2.0, 2.0, 2.0]})
    lines = evaluation_report.markdown_table(table).splitlines()
    assert lines[0] == "| setting | method | n | PSNR (dB) | SSIM | RMSE | slice-periodic | seam |"
    sd = np.std([20.0, 20.0, 23.0], ddof=1)
    # n counts the test volumes, also where a score is missing for one of them
    assert lines[2] == ("| mean | IQT | 3 | 31.00 ± 1.00 | 0.8000 ± 0.1000 | 0.2000 ± 0.1000 "
                        "| 0.2000 ± 0.1000 | 1.250 ± 0.354 |")
    assert lines[3] == (f"| mean | linear | 3 | 21.00 ± {sd:.2f} | 0.5000 ± 0.0000 | 0.4000 ± 0.0000 "
                        "| 0.4000 ± 0.0000 | 2.000 ± 0.000 |")
    paths = evaluation_report.write_report(table, tmp_path / "report")
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), table, check_dtype=False)
    assert paths["markdown"].read_text() == evaluation_report.markdown_table(table)
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["evaluation.csv", "evaluation.md",
                                                                      "evaluation.png"]


def test_one_volume_prints_the_mean_alone_and_a_missing_score_as_n_a():
    table = pd.DataFrame({"subject": ["a"], "setting": ["mean"], "method": ["IQT"], "psnr": [30.123],
                          "ssim": [0.9], "rmse": [0.1], "slice_periodic": [0.25], "seam": [np.nan]})
    assert evaluation_report.markdown_table(table).splitlines()[2] == \
        "| mean | IQT | 1 | 30.12 | 0.9000 | 0.1000 | 0.2500 | n/a |"

"""The lever benchmark's bookkeeping: overrides, ranges over seeds and the per-seed summaries (no training)."""
from __future__ import annotations

import pytest

from benchmarks import generalisation_levers as levers


def _run(lever: str, seed: int, gains: dict[str, float]) -> dict:
    return {"lever": lever, "seed": seed, "gains": {
        case: {"gain_psnr_fit": g, "gain_ssim": g / 100, "gain_psnr": g - 1, "texture_ratio": 1 + g / 10,
               "periodic_ratio": 1 - g / 10, "goals_met": g >= 1.5} for case, g in gains.items()}}


RUNS = [_run("a", 0, {"colin27/x": 0.5, "colin27/y": 1.5, "template_test/x": 2.0}),
        _run("a", 1, {"colin27/x": 0.7, "colin27/y": 1.1, "template_test/x": 1.0})]


def test_combined_levers_concatenate_their_overrides():
    assert levers.lever_overrides("spatial+resize_conv") == levers.LEVERS["spatial"] + levers.LEVERS["resize_conv"]
    with pytest.raises(KeyError):
        levers.lever_overrides("spatial+nonsense")


def test_ranges_are_over_seeds_per_case():
    ranges = levers.ranges(RUNS)["a"]
    assert ranges["colin27/x"]["gain_psnr_fit"] == [0.5, 0.7]
    assert ranges["colin27/y"]["gain_psnr_fit"] == [1.1, 1.5]
    assert ranges["colin27/x"]["n_seeds"] == 2


def test_summary_takes_each_seeds_worst_and_mean_case_then_the_range_over_seeds():
    colin = levers.summary(RUNS)["a"]["colin27"]
    assert colin["worst_gain_psnr_fit"] == [0.5, 0.7]                           # seed 0: min(0.5, 1.5); seed 1: 0.7
    assert colin["mean_gain_psnr_fit"] == pytest.approx([0.9, 1.0])               # (0.7 + 1.1) / 2, (0.5 + 1.5) / 2
    assert colin["max_texture_ratio"] == pytest.approx([1.11, 1.15])
    assert levers.summary(RUNS)["a"]["template_test"]["worst_gain_psnr_fit"] == [1.0, 2.0]
    table = levers.markdown(levers.summary(RUNS))
    assert "| a | colin27 | 2 | +0.500 … +0.700 |" in table


def test_paired_differences_are_per_seed_against_the_baseline_of_that_seed():
    runs = [*RUNS, _run("baseline", 0, {"colin27/x": 0.2, "colin27/y": 0.4, "template_test/x": 1.5}),
            _run("baseline", 2, {"colin27/x": 9.0, "colin27/y": 9.0, "template_test/x": 9.0})]
    pairs = levers.paired(runs)
    assert list(pairs) == ["a"] and list(pairs["a"]["colin27"]) == ["0"]   # seed 1 has no baseline twin
    assert pairs["a"]["colin27"]["0"]["difference_mean_gain_psnr_fit"] == pytest.approx(1.0 - 0.3)
    assert pairs["a"]["colin27"]["0"]["difference_worst_gain_psnr_fit"] == pytest.approx(0.5 - 0.2)
    assert pairs["a"]["template_test"]["0"]["difference_mean_gain_psnr_fit"] == pytest.approx(0.5)


def test_an_adapted_lever_is_paired_with_the_same_lever_unadapted():
    adapted = {**_run("a+adapt300", 0, {"colin27/x": 1.5, "colin27/y": 2.0}), "base_lever": "a"}
    pairs = levers.paired([*RUNS, adapted, _run("baseline", 0, {"colin27/x": 0.0, "colin27/y": 0.0})])
    assert pairs["a+adapt300"]["colin27"]["0"]["difference_mean_gain_psnr_fit"] == pytest.approx(1.75 - 1.0)
    assert list(pairs["a+adapt300"]) == ["colin27"]   # only the brains the adapted run measured
    assert levers.report_dir(None, 300) == "generalisation_adapt300"
    assert levers.report_dir("40,40,8", 300, "flips") == "generalisation_adapt300_tta_flips_tile40"
    assert levers.report_dir(None, 0, "flips") == "generalisation_tta_flips"
    assert levers.report_dir(None) == "generalisation"
    assert levers.inference_suffix(300, "flips") == "+adapt300+tta_flips"

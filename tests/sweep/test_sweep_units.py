"""The sweep's parts without training: grids, overrides, the robustness axes' simulator values."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from iqt import evaluation
from iqt.sweep import robustness, spec
from launch.configs import demo
from simulators import distributions

SHIPPED = Path(__file__).resolve().parents[2] / "launch" / "configs" / "sweeps"


def test_a_grid_is_every_combination_named_by_its_fields(tmp_path):
    path = tmp_path / "grid.py"
    path.write_text('def get_sweep():\n    return dict(grid={"sim.noise": ["gaussian", "rician"], '
                    '"train.learning_rate": [1e-3, 2e-3]}, overrides={"train.num_steps": 7})\n')
    sweep = spec.load_sweep(path)
    assert [s.name for s in sweep.settings] == [
        "noise=gaussian,learning_rate=0.001", "noise=gaussian,learning_rate=0.002",
        "noise=rician,learning_rate=0.001", "noise=rician,learning_rate=0.002"]
    base = demo.get_config()
    config = sweep.config(base, sweep.settings[3], seed=5)
    assert (config.sim.noise, config.train.learning_rate, config.train.num_steps, config.seed) == ("rician", 2e-3, 7, 5)
    assert base.sim.noise == "gaussian" and base.train.num_steps == 600 and base.seed == 0   # the base is untouched
    assert sweep.test_settings == evaluation.DEFAULT_SETTINGS


def test_shipped_sweeps_make_valid_runs_of_the_demo_and_say_how_to_run_them():
    for name in ("stochastic_vs_deterministic", "draw_mode", "noise_model", "factor", "tiny"):
        path = spec.resolve_sweep_file(name, SHIPPED)
        sweep = spec.load_sweep(path)
        assert len(sweep.settings) == 2
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert "--sweep" in doc and "Runtime" in doc and "Expected result" in doc, name
        spec.check_sweep(sweep, demo.get_config("tiny" if name == "tiny" else "default"), (0, 1, 2))


@pytest.fixture
def sim():
    return demo.get_config().sim   # ×6 at 1 mm: a 6 mm slice spacing


def _parameters(setting, sim):
    return evaluation.setting_parameters(evaluation.setting_config(setting, sim))


def test_thickness_in_mm_becomes_the_fraction_of_the_spacing(sim):
    settings = robustness.axis_settings("thickness", (3.0, 4.5, 6.0), sim)
    assert [s.name for s in settings] == ["thin_slices", "thickness=4.5", "thick_slices"]  # 0.5 and 1.0 of 6 mm
    np.testing.assert_allclose(_parameters(settings[1], sim)["slice_thickness_fraction"], 4.5 / 6.0)


def test_snr_scales_both_tissues_and_names_the_evaluations_settings(sim):
    settings = robustness.axis_settings("snr", (0.5, 1.0, 2.0, 0.25), sim)
    assert [s.name for s in settings] == ["snr_low", "mean", "snr_high", "snr=0.25"]
    mean = distributions.pair_mean(sim.snr)
    condition = evaluation.setting_config(settings[3], sim)
    np.testing.assert_allclose(distributions.pair_mean(condition.snr), 0.25 * mean)


def test_contrast_shifts_the_wm_gm_contrast_and_keeps_the_gm_noise(sim):
    assert sim.contrast == "snr_gm_fixed"
    wm, gm = distributions.pair_mean(sim.snr)
    for shift in (-0.3, 0.3):
        setting, = robustness.axis_settings("contrast", (shift,), sim)
        wm2, gm2 = distributions.pair_mean(evaluation.setting_config(setting, sim).snr)
        assert gm2 == pytest.approx(gm)                                  # σ = mean_GM / SNR_GM unchanged
        assert wm2 / gm2 - 1 == pytest.approx((1 + shift) * (wm / gm - 1))


def test_inplane_blur_sets_the_fwhm(sim):
    setting, = robustness.axis_settings("inplane_blur", (1.5,), sim)
    assert _parameters(setting, sim)["inplane_fwhm_mm"] == pytest.approx(1.5)


def test_runs_of_a_sweep_are_seeds_of_their_setting(tmp_path):
    assert robustness.run_group(tmp_path / "stochastic" / "seed2") == ("stochastic", "seed2")
    assert robustness.run_group(tmp_path / "my_run") == ("my_run", "")


@pytest.mark.parametrize("damage", [b"", b'{"config_sha', b"[1, 2]", b"\xff\xfe"])
def test_a_damaged_finished_marker_is_set_aside_and_the_job_runs_again(tmp_path, damage, caplog):
    from iqt.errors import UserError
    from iqt.sweep import runner
    sweep = spec.load_sweep(spec.resolve_sweep_file("tiny", SHIPPED))
    job = runner.make_jobs(sweep, demo.get_config("tiny"), [0], tmp_path)[0]
    marker = job.workdir / runner.MARKER
    marker.parent.mkdir(parents=True)
    marker.write_bytes(damage)
    assert not job.finished()
    assert not marker.exists() and marker.with_name(marker.name + ".damaged").read_bytes() == damage
    assert sum("damaged" in r.getMessage() for r in caplog.records) == 1
    marker.write_text(f'{{"config_sha256": "{job.fingerprint()}"}}')
    assert job.finished()
    marker.write_text('{"config_sha256": "another"}')
    with pytest.raises(UserError, match="different config"):
        job.finished()


@pytest.mark.parametrize("axis, bad, good", [("snr", (-2.0, 0.0, float("nan")), (0.25, 4.0)),
                                             ("thickness", (0.0, 500.0), (3.0, 7.0)),
                                             ("contrast", (-1.0, 2.0), (-0.3, 0.3)),
                                             ("inplane_blur", (-1.0, float("inf")), (0.0, 2.0))])
def test_robustness_values_outside_their_axis_range_are_refused(axis, bad, good):
    from iqt.errors import UserError
    robustness.check_values(axis, good)
    robustness.check_values(axis, robustness.AXES[axis][0])   # the defaults are valid
    for value in bad:
        with pytest.raises(UserError, match=f"--axis {axis}"):
            robustness.check_values(axis, [value])

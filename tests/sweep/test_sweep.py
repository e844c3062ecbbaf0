"""`launch.sweep` end to end on the CPU: the tiny sweep, its re-run, a SIGKILL, the table, robustness.

One uninterrupted tiny sweep (2 settings × 2 seeds, 4 steps each), run by two workers on two
(virtual CPU) devices at once, is shared by the tests; the interrupted sweep re-runs on one
device, so its table, compared with the shared one, also shows that parallel and sequential agree.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from iqt import checkpoint_reading
from tests.conftest import slow
from tests.training.helpers import ROOT, train_env

SEEDS = "0,1"
SETTINGS = ("stochastic", "deterministic")


def sweep_command(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launch.sweep", "--config=demo:tiny", "--sweep=tiny", f"--workdir={workdir}",
            f"--seeds={SEEDS}", *extra]


def run(command: list[str], devices: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=train_env(devices), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path_factory.mktemp("sweep") / "tiny"
    result = run(sweep_command(workdir), devices=2)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def _markers(workdir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in workdir.glob("*/seed*/sweep_done.json")}


def test_the_tiny_sweep_trains_evaluates_and_reports_every_setting_and_seed(swept):
    workdir, result = swept
    assert len(_markers(workdir)) == 4
    for setting in SETTINGS:
        for seed in (0, 1):
            assert f"setting '{setting}' seed {seed}" in result.stdout
            assert (workdir / setting / f"seed{seed}" / "evaluation" / "evaluation.csv").is_file()
    assert "ETA" in result.stdout
    assert "2 workers, devices 0 | 1" in result.stdout   # settings ran concurrently, one per device
    assert "sweep worker 0: job 1/" in result.stdout and "sweep worker 1: job 1/" in result.stdout
    for name in ("sweep_table.csv", "sweep_tests.csv", "sweep_table.md", "sweep_table.png"):
        assert (workdir / name).stat().st_size > 0
    assert not list(workdir.rglob("*.tmp*"))


def test_the_tables_rows_equal_the_per_setting_evaluation_files(swept):
    workdir, _ = swept
    table = pd.read_csv(workdir / "sweep_table.csv").set_index(["setting", "test_setting"])
    for setting in SETTINGS:
        runs = [pd.read_csv(workdir / setting / f"seed{s}" / "evaluation" / "evaluation.csv") for s in (0, 1)]
        iqt = [r[r["method"] == "IQT"] for r in runs]
        for test_setting in ("mean", "snr_low", "all"):
            per_seed = [(r if test_setting == "all" else r[r["setting"] == test_setting])[["psnr", "ssim"]].mean()
                        for r in iqt]
            for metric in ("psnr", "ssim"):
                values = [p[metric] for p in per_seed]
                row = table.loc[(setting, test_setting)]
                assert row["n_seeds"] == 2
                np.testing.assert_allclose(row[f"{metric}_mean"], np.mean(values), rtol=1e-5)
                np.testing.assert_allclose(row[f"{metric}_std"], np.std(values, ddof=1), rtol=1e-4, atol=1e-8)
    # Wilcoxon over (subject × test setting) pairs of seed means, recomputed with scipy
    tests = pd.read_csv(workdir / "sweep_tests.csv").set_index("metric")
    means = {s: pd.concat([pd.read_csv(workdir / s / f"seed{k}" / "evaluation" / "evaluation.csv")
                           .query("method == 'IQT'") for k in (0, 1)]).groupby(["subject", "setting"])["psnr"].mean()
             for s in SETTINGS}
    diff = (means["stochastic"] - means["deterministic"]).to_numpy()
    assert tests.loc["psnr", "n_pairs"] == len(diff) == 2
    np.testing.assert_allclose(tests.loc["psnr", "p_pairs"], stats.wilcoxon(diff).pvalue, rtol=1e-5)


def test_running_again_skips_finished_settings(swept):
    workdir, first = swept
    before = _markers(workdir)
    result = run(sweep_command(workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("skip setting") == 4 and "job 1/" not in result.stdout
    assert _markers(workdir) == before                     # nothing trained or evaluated again
    assert "step 1/" not in result.stdout
    assert (workdir / "sweep_table.md").read_text() in result.stdout


def _run_until(workdir: Path, first_step: int, signum: int) -> tuple[str, int]:
    """Runs the sweep until it logs a training step >= `first_step`, then sends `signum`: (stdout, exit status)."""
    proc = subprocess.Popen(sweep_command(workdir), cwd=ROOT, env=train_env(1), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        step = re.match(r"step (\d+)/", line)
        if step and int(step.group(1)) >= first_step:
            os.killpg(proc.pid, signum)
            break
    seen.append(proc.stdout.read())
    return "".join(seen), proc.wait(timeout=120)


@slow   # two interrupted sweeps and a rerun (about 35 s); a rerun that skips finished jobs runs always
def test_sigterm_and_sigkill_during_a_setting_then_a_rerun_gives_the_uninterrupted_table(swept, tmp_path):
    workdir, _ = swept
    killed = tmp_path / "tiny"
    # the first setting, and the second's seed 0, finished; its seed 1 is killed at a seeded step
    for part in ("stochastic", "deterministic/seed0"):
        shutil.copytree(workdir / part, killed / part)
    unfinished = killed / "deterministic" / "seed1"
    # SIGTERM after step 1: the training saves a checkpoint and stops, the sweep stops without evaluating
    seen = _run_until(killed, 1, signal.SIGTERM)
    assert seen[-1] == 128 + signal.SIGTERM and "stopped by SIGTERM" in seen[0], seen
    assert not (unfinished / "sweep_done.json").exists() and not (unfinished / "evaluation").exists()
    # SIGKILL at a seeded step of the resumed run (it goes on from the step where SIGTERM stopped it)
    _, (resumed_from, *_) = checkpoint_reading.resolve_checkpoint(unfinished, "latest")
    seen = _run_until(killed, random.Random(15).randint(resumed_from + 1, 4), signal.SIGKILL)
    assert seen[-1] == -signal.SIGKILL and "setting 'deterministic' seed 1 (resuming)" in seen[0], seen
    assert not (unfinished / "sweep_done.json").exists()
    result = run(sweep_command(killed))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "setting 'deterministic' seed 1 (resuming)" in result.stdout
    pd.testing.assert_frame_equal(pd.read_csv(killed / "sweep_table.csv"), pd.read_csv(workdir / "sweep_table.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(killed / "sweep_tests.csv"), pd.read_csv(workdir / "sweep_tests.csv"))


@slow   # about 11 s; tests/sweep/test_sweep_units.py checks the axes and their values
def test_evaluate_only_cubic_and_iqt_curves_match_the_evaluation_files(swept, tmp_path):
    workdir, _ = swept
    runs = [workdir / "stochastic" / f"seed{k}" for k in (0, 1)]
    result = run([sys.executable, "-m", "launch.sweep", "--evaluate_only", "--workdirs", *map(str, runs),
                  "--axis=snr", "--values=0.5,1", f"--out={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    curves = pd.read_csv(tmp_path / "robustness_snr_curves.csv").set_index(["group", "value"])
    evaluations = [pd.read_csv(r / "evaluation" / "evaluation.csv").set_index(["setting", "method"]) for r in runs]
    for value, setting in ((0.5, "snr_low"), (1.0, "mean")):   # 0.5 × SNR is snr_low; 1 × is the mean setting
        for group, method in (("cubic", "cubic"), ("stochastic", "IQT")):
            values = [e.loc[(setting, method), "psnr"] for e in evaluations]
            np.testing.assert_allclose(curves.loc[(group, value), "psnr_mean"], np.mean(values), rtol=1e-5)
            np.testing.assert_allclose(curves.loc[(group, value), "psnr_std"], np.std(values, ddof=1),
                                       atol=2e-4)   # the CSVs keep 6 digits: 1e-4 dB
    # more noise, lower PSNR, for the cubic splines of the same inputs
    cubic = curves.loc["cubic", "psnr_mean"]
    assert cubic.loc[0.5] < cubic.loc[1.0]
    assert (tmp_path / "robustness_snr.png").stat().st_size > 0


BAD_SWEEPS = {
    "unknown field": ('dict(settings=[("a", {"sim.no_such_field": 1})])', "unknown config field"),
    "unknown section": ('dict(settings=[("a", {"optimiser.lr": 1})])', "unknown config field"),
    "empty grid": ('dict(grid={})', "grid is empty"),
    "empty values": ('dict(grid={"sim.noise": []})', "no values"),
    "empty settings": ('dict(settings=[])', "settings are empty"),
    "grid as a list": ('dict(grid=[("sim.noise", ["rician"])])', "grid is empty"),
    "grid key not a path": ('dict(grid={1: [2]})', "config paths"),
    "overrides as a list": ('dict(settings=[("a", {})], overrides=[("train.num_steps", 2)])', "'overrides' must"),
    "overrides as a string": ('dict(settings=[("a", {})], overrides="train.num_steps=2")', "'overrides' must"),
    "name used twice": ('dict(settings=[("a", {"sim.noise": "rician"}), ("a", {"sim.noise": "gaussian"})])',
                        "used twice"),
    "bad value": ('dict(settings=[("a", {"sim.deterministic": "yes"})])', "does not fit"),
    "invalid run": ('dict(settings=[("a", {"train.batch_size": 0})])', "batch_size"),
}


def _bad_sweep(tmp_path: Path, case: str) -> Path:
    sweep = tmp_path / "bad.py"
    sweep.write_text(f'"""A bad sweep."""\n\n\ndef get_sweep():\n    return {BAD_SWEEPS[case][0]}\n')
    return sweep


@pytest.mark.parametrize("case", list(BAD_SWEEPS))
def test_a_bad_sweep_file_is_a_user_error_naming_the_fault(case, tmp_path):
    from iqt.errors import UserError
    from iqt.sweep import spec
    from launch.configs import demo

    with pytest.raises(UserError, match=BAD_SWEEPS[case][1]):
        spec.check_sweep(spec.load_sweep(_bad_sweep(tmp_path, case)), demo.get_config("tiny"), (0, 1))


BROKEN_FILES = {   # a whole sweep file that does not load: the words of its one-line refusal
    "not_python.txt": ("settings: a, b\n", "SyntaxError"),
    "exits.py": ("import sys\nsys.exit(3)\n", "SystemExit"),
    "interrupts.py": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "no_function.py": ("x = 1\n", "get_sweep"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_a_sweep_file_that_does_not_load_is_a_user_error(name, tmp_path):
    from iqt.errors import UserError
    from iqt.sweep import spec
    text, word = BROKEN_FILES[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=word):
        spec.load_sweep(tmp_path / name)


def test_a_bad_sweep_file_is_one_error_line_before_anything_is_made(tmp_path):
    case = "unknown field"   # every case raises the same UserError (above); one through the command line
    workdir = tmp_path / "sweep"
    result = run([sys.executable, "-m", "launch.sweep", "--config=demo:tiny", f"--sweep={_bad_sweep(tmp_path, case)}",
                  f"--workdir={workdir}", "--seeds=0"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and BAD_SWEEPS[case][1] in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not workdir.exists()


@pytest.mark.parametrize("flags, words", [
    (("--worker=abc",), ("--worker must be I/N", "abc")),
    (("--worker=2/2",), ("0 <= I < N",)),
    (("--evaluate_only", "--axis=inplane_blur", "--values=-1"), ("--values -1", "0 to 10")),
    (("--evaluate_only", "--axis=thickness", "--values=500"), ("--values 500", "slice thickness")),
])
def test_bad_worker_and_axis_values_are_one_line_before_any_work(tmp_path, flags, words):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    workdir = tmp_path / "sweep"
    result = run([sys.executable, "-m", "launch.sweep", "--config=demo:tiny", "--sweep=tiny", f"--workdir={workdir}",
                  f"--workdirs={run_dir}", f"--out={tmp_path / 'out'}", *flags])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

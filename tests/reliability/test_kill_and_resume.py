"""Fault injection: SIGKILL and SIGTERM during training, and damaged checkpoints.

A run killed at any moment and started again with the same command ends with
parameters bitwise identical to those of a run that never stopped.
"""
import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import slow
from tests.training.helpers import ROOT, run_train, train_command, train_env

STEPS = 8
# best/ and the latest checkpoint are saved at the same steps (as in the shipped configs), so a
# kill can fall between their commits, and a damaged latest leaves best/ ahead of the resumed step.
# BatchNorm calibration on (iqt.bn_calibration): the calibrated statistics must resume bitwise too.
COMMON = (f"--config.train.num_steps={STEPS}", "--config.train.checkpoint_every=2",
          "--config.train.eval_every=2", "--config.train.bn_calibration_patch_hf=(32,32,16)",
          "--config.train.bn_calibration_patches=8")


def _params(workdir: Path, step: int) -> dict:
    """The parameters and BatchNorm statistics of a checkpoint, by their paths."""
    state = ocp.StandardCheckpointer().restore((workdir / "checkpoints" / str(step) / "state").absolute())
    return dict(jax.tree_util.tree_leaves_with_path({"params": state["params"],
                                                     "batch_stats": state["batch_stats"]}))


def _assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=str(key))


def _last_logged_step(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    steps = [0]
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                steps.append(json.loads(line)["step"])
            except (json.JSONDecodeError, KeyError):
                pass
    return max(steps)


def _start(workdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(train_command(workdir, *COMMON, *extra), cwd=ROOT, env=train_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, workdir: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _last_logged_step(workdir) < step:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "training did not reach the step in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    run_train(workdir, *COMMON)
    return _params(workdir, STEPS)


def test_sigkill_at_random_steps_then_resume_is_bitwise_identical(tmp_path, uninterrupted):
    kill_steps = sorted(random.Random(1234).sample(range(1, STEPS), 2))
    for step in kill_steps:
        proc = _start(tmp_path)
        _wait_for_step(proc, tmp_path, step)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    final = run_train(tmp_path, *COMMON)
    _assert_same_params(uninterrupted, _params(tmp_path, STEPS))
    logged = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if '"train"' in l]
    assert logged == list(range(1, STEPS + 1)), "the metrics log must hold each step exactly once"
    assert final.returncode == 0


def test_sigterm_saves_exits_zero_and_resume_continues(tmp_path, uninterrupted):
    proc = _start(tmp_path)
    _wait_for_step(proc, tmp_path, 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "same command" in out and "resume" in out
    stopped = _last_logged_step(tmp_path)
    assert (tmp_path / "checkpoints" / str(stopped)).is_dir(), "a checkpoint at the stopping step"
    run_train(tmp_path, *COMMON)
    _assert_same_params(uninterrupted, _params(tmp_path, STEPS))


@slow   # about 25 s; tests/reliability/test_recovery.py sets damaged checkpoints aside in the suite
def test_damaged_latest_checkpoint_falls_back_to_previous(tmp_path, uninterrupted):
    run_train(tmp_path, *COMMON[1:], "--config.train.num_steps=6")
    latest = tmp_path / "checkpoints" / "6" / "state"
    for f in latest.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    result = run_train(tmp_path, *COMMON)
    assert "unreadable" in result.stderr and "falling back" in result.stderr
    _assert_same_params(uninterrupted, _params(tmp_path, STEPS))


@slow   # about 22 s; the SIGKILL test above also kills between commits
def test_interrupted_save_is_ignored_and_reported(tmp_path, uninterrupted):
    run_train(tmp_path, *COMMON[1:], "--config.train.num_steps=4")
    half = tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-123"
    shutil.copytree(tmp_path / "checkpoints" / "4", half)
    result = run_train(tmp_path, *COMMON)
    assert "incomplete checkpoint" in result.stderr and not half.exists()
    _assert_same_params(uninterrupted, _params(tmp_path, STEPS))


def test_second_run_on_a_busy_workdir_refuses(tmp_path):
    first = _start(tmp_path, "--config.train.num_steps=100000")
    try:
        _wait_for_step(first, tmp_path, 1)
        second = subprocess.run(train_command(tmp_path, *COMMON), cwd=ROOT, env=train_env(1),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "in use by another training run" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()

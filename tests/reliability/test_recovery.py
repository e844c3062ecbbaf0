"""Recovery never gets stuck: every on-disk state a kill, a damage or a full disk can leave resumes.

Each test builds the state on disk that the fault leaves (a kill between the
`best/` and the latest save of a step, a truncated checkpoint, a damaged
metrics or data-iterator file), resumes with the same config, and checks that
the resumed run ends with parameters bitwise identical to a run never stopped.
"""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iqt import checkpoint_reading, checkpointing, train
from iqt.errors import UserError
from launch.configs import demo
from tests.conftest import slow
from tests.reliability.test_kill_and_resume import _assert_same_params, _params
from tests.training.helpers import ROOT, train_command, train_env

STEPS = 6  # the tiny config: validation (and best/) at steps 3 and 6, latest checkpoints at 2, 4, 6


def _train(workdir: Path, num_steps: int = STEPS) -> dict:
    config = demo.get_config("tiny")
    config.train.num_steps = num_steps
    return train.train_and_evaluate(config, workdir)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("straight")
    _train(workdir)
    return workdir


def _copy(straight: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    return workdir


def _steps(directory: Path) -> list[int]:
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _unusable_latest(workdir: Path, how: str) -> None:
    latest = workdir / "checkpoints" / str(STEPS)
    if how == "killed before the latest save committed":
        shutil.rmtree(latest)
    else:  # the data-iterator state is valid JSON but not a state
        (latest / "data" / "metadata").write_text("{}")


@pytest.mark.parametrize("how", ["killed before the latest save committed", "data state {}"])
def test_best_newer_than_the_restored_step_is_reconciled(how, tmp_path, straight):
    # best/ and latest are saved at step 6: a kill between their commits, or a latest/6
    # that is skipped as damaged, leaves best/6 ahead of the step the run resumes from (4).
    workdir = _copy(straight, tmp_path)
    _unusable_latest(workdir, how)
    _train(workdir)
    _assert_same_params(_params(straight, STEPS), _params(workdir, STEPS))
    assert _steps(workdir / "best") == [STEPS] and _steps(workdir / "checkpoints") == [2, 4, 6]


@pytest.mark.parametrize("content", ["{\"val_loss\": ", "[]", "{\"val_loss\": NaN}", ""],
                         ids=["truncated", "not an object", "NaN", "empty"])
def test_damaged_best_metrics_file_is_refused_with_a_way_out(content, tmp_path):
    step = tmp_path / "best" / "6"
    (step / "metrics").mkdir(parents=True)
    (step / "metrics" / "metrics").write_text(content)
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    assert checkpointing.read_val_loss(step) is None
    with pytest.raises(UserError, match="metrics file .* is damaged; pass --checkpoint latest"):
        checkpoint_reading.resolve_checkpoint(tmp_path, "best")
    assert checkpoint_reading.resolve_checkpoint(tmp_path, "latest")[1] == [4]


def test_damaged_best_metrics_file_is_set_aside_on_resume(tmp_path, straight):
    workdir = _copy(straight, tmp_path)
    (workdir / "best" / str(STEPS) / "metrics" / "metrics").write_text('{"val_loss": ')
    _train(workdir)   # building the managers read it: now it is set aside first
    assert [p.name.split("-")[:2] for p in (workdir / "damaged").iterdir()] == [["best", str(STEPS)]]
    assert _steps(workdir / "checkpoints") == [2, 4, 6]


def test_is_data_state():
    assert checkpointing.is_data_state({"next_batch": 0, "seed": 1})
    for bad in ({}, [], None, {"next_batch": -1}, {"next_batch": "3"}, {"next_batch": True}):
        assert not checkpointing.is_data_state(bad)


def test_a_bad_config_writes_nothing_and_a_run_that_never_saved_does_not_block(tmp_path):
    config = demo.get_config("tiny")
    config.train.batch_size = 0
    with pytest.raises(UserError, match="train.batch_size=0"):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()
    stale = demo.get_config("tiny")
    stale.seed = 5
    (tmp_path / "run" / "config.json").write_text(json.dumps(stale.to_dict()))   # and no checkpoint
    train.prepare_workdir(demo.get_config("tiny"), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 0
    (tmp_path / "run" / "checkpoints" / "2").mkdir(parents=True)   # once it saved, the config binds
    stale_again = demo.get_config("tiny")
    stale_again.seed = 5
    with pytest.raises(UserError, match="different config"):
        train.prepare_workdir(stale_again, tmp_path / "run")


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@slow   # about 19 s; tests/reliability/test_faults.py injects ENOSPC in the suite
def test_disk_full_is_one_line_and_the_run_resumes_once_space_is_freed(tmp_path, straight):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1600k"):   # room for about two checkpoints of the tiny run
        pytest.skip("cannot mount a small tmpfs here (needs root); tests/reliability/test_faults.py "
                    "injects ENOSPC instead")
    try:
        failed = subprocess.run(train_command(disk / "run"), cwd=ROOT, env=train_env(1),
                                capture_output=True, text=True, timeout=300)
        assert failed.returncode == 1, failed.stderr[-3000:]
        lines = failed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: could not write a checkpoint"), lines[:20]
        assert "No space left on device" in lines[0]
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)   # space freed
        _train(disk / "run")
        _assert_same_params(_params(straight, STEPS), _params(disk / "run", STEPS))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_sigterm_while_the_command_starts_stops_cleanly(tmp_path):
    proc = subprocess.Popen(train_command(tmp_path / "run"), cwd=ROOT, env=train_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)   # still importing: the loop's handler is not installed yet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM after step 1" in out
    assert _steps(tmp_path / "run" / "checkpoints") == [1]


def test_a_factor_edited_in_config_json_is_named_not_called_unreadable(tmp_path, straight):
    from iqt.inference import load_predictor

    workdir = _copy(straight, tmp_path)
    config = json.loads((workdir / "config.json").read_text())
    config["sim"]["factor"] = 4   # valid on its own; the checkpoint holds a x8 network
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"holds another network than .*config.json describes "
                                        r"\(params\..*saved .*expected .*\); was its model or sim"):
        load_predictor(workdir, "best")


def test_a_disk_that_fills_midway_leaves_none_of_a_commands_outputs(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):   # two of launch.export_template's four files fit (1.9 MB in all)
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        result = subprocess.run([sys.executable, "-m", "launch.export_template", "--out", str(disk / "t")],
                                cwd=ROOT, env=train_env(1), capture_output=True, text=True, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], result.stderr
        assert list((disk / "t").iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)

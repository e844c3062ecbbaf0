"""Fault injection in-process: a NaN batch, a failing disk, a damaged config.json."""
import errno

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from iqt import checkpointing, train
from iqt.errors import UserError
from launch.configs import demo

from tests.conftest import slow


def _config(**train_overrides):
    config = demo.get_config("tiny")
    config.train.update(train_overrides)
    return config


class _NanAt:
    """Wraps a batch iterator, filling the first HF patch of batch `index` (1-based) with NaN
    (a NaN in the background alone is masked away: the object is HF × tissue sum in the brain)."""

    def __init__(self, inner, index):
        self.inner, self.index, self.count = inner, index, 0

    def __next__(self):
        batch = dict(next(self.inner))
        self.count += 1
        if self.count == self.index:
            batch["hf"] = np.array(batch["hf"], copy=True)
            batch["hf"][0] = np.nan
        return batch

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)


def _inject_nan(monkeypatch, at_batch):
    real = train.pipeline.make_train_iterator
    monkeypatch.setattr(train.pipeline, "make_train_iterator",
                        lambda *a, **k: _NanAt(real(*a, **k), at_batch))


def test_nan_batch_stops_the_run_with_step_and_simulator_parameters(tmp_path, monkeypatch):
    _inject_nan(monkeypatch, at_batch=3)
    with pytest.raises(train.TrainingDiverged, match=r"step 3 .*slice_thickness_mm"):
        train.train_and_evaluate(_config(num_steps=6, checkpoint_every=2), tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [2]
    restored = ocp.StandardCheckpointer().restore((tmp_path / "checkpoints/2/state").absolute())
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored["params"]))


@slow   # about 13 s; the stop on a NaN batch above runs always
def test_nan_batch_is_skipped_when_allowed(tmp_path, monkeypatch):
    _inject_nan(monkeypatch, at_batch=2)
    result = train.train_and_evaluate(_config(num_steps=4, max_nonfinite_skips=1), tmp_path)
    assert np.isfinite(result["loss"])
    restored = ocp.StandardCheckpointer().restore((tmp_path / "checkpoints/4/state").absolute())
    assert int(restored["skipped"]) == 1 and int(restored["step"]) == 4
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored["params"]))


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   PermissionError(errno.EACCES, "Permission denied")],
                         ids=["disk_full", "read_only"])
def test_failing_storage_fails_loudly_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    # Tests run as root, for whom permissions do not bite, so the writer is patched instead.
    real_save = ocp.CheckpointManager.save

    def failing_save(self, step, *args, **kwargs):
        if step >= 4:
            raise error
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
    with pytest.raises(checkpointing.CheckpointSaveError, match=error.strerror):
        train.train_and_evaluate(_config(num_steps=6, checkpoint_every=2, eval_every=100), tmp_path)
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2]
    restored = ocp.StandardCheckpointer().restore((tmp_path / "checkpoints/2/state").absolute())
    assert int(restored["step"]) == 2


def test_damaged_config_json_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints" / "2").mkdir(parents=True)   # a run that saved: its config binds
    (tmp_path / "config.json").write_text('{"seed": 0, "data": ')
    with pytest.raises(UserError, match="config.json is not valid JSON"):
        train.train_and_evaluate(_config(), tmp_path)

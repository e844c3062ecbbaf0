"""Checkpoint at step k, resume, and the later steps equal those of a run that never stopped."""
import jax
import numpy as np
import orbax.checkpoint as ocp

from tests.conftest import slow
from tests.training.helpers import run_train, train_losses

COMMON = ("--config.train.checkpoint_every=2", "--config.train.eval_every=2")


def _final_params(workdir, step):
    restored = ocp.StandardCheckpointer().restore((workdir / "checkpoints" / str(step) / "state").absolute())
    return restored["params"]


@slow   # the SIGKILL-and-resume test in tests/reliability checks the same equality, bitwise, in the suite
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_train(straight, *COMMON, "--config.train.num_steps=4")
    run_train(resumed, *COMMON, "--config.train.num_steps=2")
    second = run_train(resumed, *COMMON, "--config.train.num_steps=4")
    assert "resumed" in second.stderr.lower() or (resumed / "checkpoints" / "4").is_dir()
    # The log was trimmed/extended consistently: one record per step, identical values.
    assert train_losses(resumed) == train_losses(straight)
    a, b = _final_params(straight, 4), _final_params(resumed, 4)
    flat_a, flat_b = (dict(jax.tree_util.tree_leaves_with_path(t)) for t in (a, b))
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(np.asarray(flat_a[key]), np.asarray(flat_b[key]), err_msg=str(key))


@slow   # about 12 s; tests/reliability/test_recovery.py checks prepare_workdir's refusal in-process
def test_changed_config_refuses_to_resume(tmp_path):
    import subprocess
    from tests.training.helpers import ROOT, train_command, train_env
    run_train(tmp_path, *COMMON, "--config.train.num_steps=2")
    result = subprocess.run(train_command(tmp_path, *COMMON, "--config.train.num_steps=4",
                                          "--config.train.learning_rate=0.5"),
                            cwd=ROOT, env=train_env(1), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "different config" in result.stderr


def test_more_steps_on_resume_are_allowed_unless_the_schedule_depends_on_them():
    import ml_collections

    from iqt import train
    from launch.configs import demo

    base = demo.get_config("tiny")
    longer = ml_collections.ConfigDict(base.to_dict())
    longer.train.num_steps += 10
    assert train._comparable(base) == train._comparable(longer)       # inverse-time: resumable
    base.train.lr_schedule = longer.train.lr_schedule = "cosine"
    assert train._comparable(base) != train._comparable(longer)       # cosine: refused

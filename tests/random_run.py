"""A work directory as `launch.train` leaves it, with random weights: the tiny ×8 demo config
and one checkpoint, filled in NumPy (compiling `model.init` would take ~20 s)."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from iqt import config_io
from iqt.checkpointing import Checkpointer
from iqt.models import create_model
from iqt.train_step import create_train_state, make_optimizer
from launch.configs.demo import get_config


def random_state(abstract, seed: int = 7, random_batch_stats: bool = False):
    """A `TrainState` shaped like `abstract`: weights ~ N(0, 0.3²); BatchNorm running means 0 and
    variances 1, or (`random_batch_stats`) means ~ N(0, 0.2²) and variances ~ U(0.5, 2)."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "params" in name and "opt_state" not in name:
            return (0.3 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
        if "batch_stats" in name:
            variance = "var" in name
            if random_batch_stats:
                values = rng.uniform(0.5, 2.0, leaf.shape) if variance else rng.normal(0, 0.2, leaf.shape)
            else:
                values = np.ones(leaf.shape) if variance else np.zeros(leaf.shape)
            return values.astype(leaf.dtype)
        return np.zeros(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract)


def random_run(workdir: Path, seed: int = 7, random_batch_stats: bool = False):
    """Writes the tiny demo config and a step-1 checkpoint of `random_state` to `workdir`:
    (config, model, state)."""
    config = get_config("tiny")
    config_io.save_config(config, workdir)
    model = create_model(config.model, config.sim.factor)
    optimizer = make_optimizer(config.train)
    abstract = jax.eval_shape(lambda key: create_train_state(key, model, optimizer, (1, 16, 16, 2)),
                              jax.random.key(0))
    state = random_state(abstract, seed, random_batch_stats)
    checkpointer = Checkpointer(workdir)
    checkpointer.save(1, state, {"next_batch": 1})
    checkpointer.wait()
    checkpointer.close()
    return config, model, state

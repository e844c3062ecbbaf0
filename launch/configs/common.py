"""The parts every training config is made of; config files pick and tune them.

A config has five sections: `seed`, `data` (iqt.data.config), `sim`
(simulators.default_config), `model` (iqt.models.default_config) and `train`
(below). Every field can be overridden on the command line, e.g.
`--config.train.batch_size=8` or `--config.sim.noise=rician`.
"""
from __future__ import annotations

import ml_collections

import simulators
from iqt.data import config as data_config
from iqt.models import default_config as model_config


def train_config(**overrides) -> ml_collections.ConfigDict:
    """Optimisation and bookkeeping, with the published defaults (docs/method.md §4)."""
    c = ml_collections.ConfigDict()
    c.batch_size = 32                 # global batch, split over every device of every host
    c.num_steps = 100_000
    c.learning_rate = 1e-3            # Adam
    c.lr_schedule = "inverse_time"    # 'inverse_time' (published) | 'cosine' (warm-up, then to 0)
    c.lr_decay_rate = 1e-6            # inverse_time: lr / (1 + decay · step)
    c.warmup_steps = 0                # cosine: linear warm-up steps
    c.augment = False                 # random flips along x, y, the slices (and x-y transposes)
    c.log_every = 50
    c.eval_every = 1000
    c.num_eval_patches = 64
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.max_nonfinite_skips = 0         # 0: stop at the first non-finite loss or gradient
    c.progress_bar = True
    c.prng_impl = "threefry2x32"      # 'threefry2x32' | 'rbg' | 'unsafe_rbg' (iqt.train_step.PRNG_IMPLS)
    c.update(overrides)
    return c


def make_config(*, dataset: str, sequence: str, factor: int, hf_voxel_mm: float, seed: int = 0,
                protocol: str = "design") -> ml_collections.ConfigDict:
    """A full config at the published network and training settings for `dataset`, `sequence`
    and `factor`; `hf_voxel_mm` is the training data's voxel size along the slice axis;
    `protocol` the simulator's draws ('design' or 'published', `simulators.default_config`)."""
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.data = data_config.default_config(dataset)
    c.sim = simulators.default_config(sequence, factor, hf_voxel_mm=hf_voxel_mm, protocol=protocol)
    c.model = model_config()
    c.train = train_config()
    return c

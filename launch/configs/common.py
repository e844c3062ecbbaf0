"""The parts every training config is made of; config files pick and tune them.

A config has five sections: `seed`, `data` (iqt.data.config), `sim`
(simulators.default_config), `model` (iqt.models.default_config) and `train`
(iqt.train.train_config). Every field can be overridden on the command line, e.g.
`--config.train.batch_size=8` or `--config.sim.noise=rician`.
"""
from __future__ import annotations

import ml_collections

import simulators
from iqt.data import config as data_config
from iqt.models import default_config as model_config
from iqt.train import train_config


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

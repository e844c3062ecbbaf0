"""`sim.draw_mode`: a new degradation per sample and step, or one per training subject for the run."""
from __future__ import annotations

import jax
import numpy as np

import simulators
from iqt.train_step import simulate_pairs
from tests.simulators.helpers import smooth_tissue, smooth_volume


def _batch(subjects):
    config = simulators.default_config("T1w", 4, hf_voxel_mm=1.0)
    m = simulators.required_margin(config)
    shape = (len(subjects), 8, 8, 8 + 2 * m)
    tissue = smooth_tissue(shape)
    return config, {"hf": 1.0 + smooth_volume(shape), "tissue": tissue,
                    "tissue_means": np.tile(np.float32([0.8, 1.1, 0.4]), (len(subjects), 1)),
                    "brain_means": np.tile(np.float32([0.3, 0.5, 0.1]), (len(subjects), 1)),
                    "subject": np.asarray(subjects, np.int32)}


def _theta(config, batch, step: int):
    root = jax.random.key(0)
    _, _, theta = jax.jit(lambda b: simulate_pairs(jax.random.fold_in(root, step), b, config,
                                                   jax.random.fold_in(root, 1)))(batch)
    return {k: np.asarray(v) for k, v in theta.items()}


def test_per_subject_draws_are_the_subjects_for_every_step():
    config, batch = _batch([3, 3, 7, 11])
    config.draw_mode = "per_subject"
    first, later = _theta(config, batch, 0), _theta(config, batch, 5)
    for name in ("snr_wm", "slice_thickness_mm", "inplane_fwhm_mm"):
        np.testing.assert_array_equal(first[name], later[name])          # kept for every step
        assert first[name][0] == first[name][1]                          # one draw per subject
        assert len(np.unique(first[name][1:])) == 3                      # subjects differ


def test_per_sample_draws_change_with_the_sample_and_the_step():
    config, batch = _batch([3, 3, 7, 11])
    first, later = _theta(config, batch, 0), _theta(config, batch, 5)
    assert len(np.unique(first["snr_wm"])) == 4
    assert not np.any(first["snr_wm"] == later["snr_wm"])

"""Random flips of training patches: a symmetry of each sample, and of the slice convention."""
from __future__ import annotations

import itertools

import jax
import numpy as np

import simulators
from iqt.train_step import augment
from tests.simulators.helpers import plain_config, smooth_tissue, smooth_volume


def _symmetries(h: np.ndarray) -> list[np.ndarray]:
    """The 16 flips (x, y, z) and x–y transposes of one (X, X, Z, ...) array, in `augment`'s order."""
    out = []
    for fx, fy, fz, t in itertools.product((0, 1), repeat=4):
        g = h
        for axis, flip in enumerate((fx, fy, fz)):
            g = np.flip(g, axis) if flip else g
        out.append(np.swapaxes(g, 0, 1) if t else g)
    return out


def test_each_sample_is_its_patch_under_one_symmetry_with_its_maps():
    rng = np.random.default_rng(0)
    hf = rng.random((64, 6, 6, 10), dtype=np.float32)
    tissue = rng.random((64, 6, 6, 10, 3), dtype=np.float32)
    out = jax.jit(augment)(jax.random.key(3), {"hf": hf, "tissue": tissue, "subject": np.arange(64)})
    chosen = []
    for b in range(64):
        matches = [k for k, g in enumerate(_symmetries(hf[b])) if np.array_equal(g, out["hf"][b])]
        assert len(matches) == 1
        np.testing.assert_array_equal(_symmetries(tissue[b])[matches[0]], out["tissue"][b])
        chosen.append(matches[0])
    np.testing.assert_array_equal(out["subject"], np.arange(64))
    bits = np.array([[(k >> (3 - i)) & 1 for i in range(4)] for k in chosen])
    assert np.all(np.abs(bits.mean(0) - 0.5) < 0.2)             # each flip about half the time


def test_a_flip_along_the_slices_commutes_with_the_simulator():
    # Z = k·r slices with equal margins: the LF of the flipped patch is the flipped LF.
    config = plain_config(4, contrast="snr_gm_fixed")
    m = simulators.required_margin(config)
    shape = (2, 6, 5, 16 + 2 * m)
    hf = 1.0 + smooth_volume(shape)
    tissue = smooth_tissue(shape)
    means = np.tile(np.float32([0.8, 1.1, 0.4]), (2, 1))
    params = simulators.mean_parameters(config, 2)

    def simulate(h, t):
        return np.asarray(simulators.simulate_batch(jax.random.key(0), h, t, means, params, config))

    np.testing.assert_allclose(simulate(hf[..., ::-1], tissue[..., ::-1, :]), simulate(hf, tissue)[..., ::-1],
                               rtol=1e-5, atol=1e-6)

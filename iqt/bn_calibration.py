"""BatchNorm statistics for whole-volume inference, measured on large patches (FixRes, PreciseBN).

The network trains on small patches (the demo: 24 × 24 voxels in-plane, 3 × 3 at
its bottleneck), so the running means and variances that BatchNorm keeps for
inference describe activations of which most sit next to a patch border, over
zero padding. Inference runs on tiles of up to 272 × 272 voxels, where most
activations are interior: the same statistics then normalise them wrongly, and
on an unseen brain the output gains a grid texture and loses to cubic-spline
interpolation (docs/results/generalisation_levers.md). This is the train/test
resolution discrepancy of Touvron et al. (FixRes, NeurIPS 2019), who re-estimate
BatchNorm's statistics at the test resolution.

Here they are re-estimated on a fixed calibration set: `train.bn_calibration_patches`
patches (rounded up to whole batches of `train.batch_size`) of
`train.bn_calibration_patch_hf` voxels from the training split,
simulated once with a key of their own. Each batch of it runs the network in
training mode with BatchNorm's momentum at zero, which returns that batch's
statistics; their mean over the batches replaces the running statistics
(PreciseBN: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021). Parameters
are untouched, and so is training, which normalises with each batch's own
statistics.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

import simulators
from iqt import parallel
from iqt.data import pipeline
from iqt.train_step import TrainState, root_key, simulate_pairs

CALIBRATION_DRAWS = 2**31 - 4   # the calibration set's simulation key (folded into the run's root key)


def calibration_lf(config: ml_collections.ConfigDict, mesh, spec: simulators.SimulatorSpec,
                   prng_impl: str) -> jax.Array:
    """The LF calibration patches (N, X, Y, Z_lf), simulated once, sharded along the batch."""
    data = ml_collections.ConfigDict(config.data.to_dict())
    data.patch_size_hf = tuple(config.train.bn_calibration_patch_hf)
    batches = -(-int(config.train.bn_calibration_patches) // int(config.train.batch_size))   # rounded up
    batch = pipeline.make_eval_batch(data, split=config.data.train_split,
                                     num_patches=batches * int(config.train.batch_size),
                                     slice_margin=spec.margin, seed=config.seed, sim_config=config.sim)
    batch = parallel.to_global({k: parallel.process_share(v) for k, v in batch.items()}, mesh)
    key = jax.random.fold_in(root_key(config.seed, prng_impl), CALIBRATION_DRAWS)
    return jax.jit(lambda b, k: simulate_pairs(k, b, config.sim, k, spec)[0])(batch, key)


@functools.partial(jax.jit, static_argnums=0)
def batch_statistics(model, params, batch_stats, lf: jax.Array):
    """BatchNorm's statistics of one batch `lf` (B, X, Y, Z_lf): training mode with momentum zero, so the
    'running' statistics it returns are the batch's own."""
    _, updates = model.clone(bn_momentum=0.0).apply({"params": params, "batch_stats": batch_stats},
                                                    lf[..., None], train=True, mutable=["batch_stats"])
    return updates["batch_stats"]


def make_calibrate(model, lf: jax.Array, batch_size: int) -> Callable[[TrainState], TrainState]:
    """`calibrate(state)`: the state with BatchNorm's running statistics measured on `lf` in batches
    of `batch_size` (the mean of the batches' means and variances)."""
    batches = lf.shape[0] // batch_size

    def calibrate(state: TrainState) -> TrainState:
        if not state.batch_stats:
            return state   # a network without BatchNorm
        parts = [batch_statistics(model, state.params, state.batch_stats, lf[i * batch_size:(i + 1) * batch_size])
                 for i in range(batches)]
        mean = jax.tree_util.tree_map(lambda *s: jnp.mean(jnp.stack(s), axis=0), *parts)
        return state.replace(batch_stats=mean)

    return calibrate

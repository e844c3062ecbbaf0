"""SPMD data parallelism: one 1-D `data` mesh over every device of every host.

The global batch is sharded along its first axis; parameters are replicated.
`jax.jit` partitions the step, so BatchNorm statistics are computed over the
global batch and gradients are averaged across devices without explicit
collectives. Each host feeds only its own share of the batch.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from iqt.errors import UserError

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1) -> None:
    """Joins a multi-host run (`jax.distributed.initialize`).

    With no arguments, JAX reads the cluster from the environment (TPU pods,
    SLURM, ...) when `JAX_COORDINATOR_ADDRESS` or a known cluster is present;
    otherwise the run stays single-process.
    """
    if coordinator_address:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise UserError("--coordinator_address needs --num_processes N and --process_id in [0, N)")
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    elif os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()


def make_mesh() -> Mesh:
    """A 1-D mesh named `data` over all devices of all processes."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_global_batch(global_batch_size: int, mesh: Mesh) -> int:
    """Returns the per-process batch size; a clear error if the split is uneven."""
    n_dev = mesh.devices.size
    if global_batch_size % n_dev:
        raise UserError(f"train.batch_size={global_batch_size} does not divide by the "
                        f"{n_dev} devices; choose a multiple of {n_dev}")
    return global_batch_size // jax.process_count()


def to_global(local_batch: dict, mesh: Mesh) -> dict:
    """Assembles each host's share of a batch into globally sharded arrays."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                        local_batch)


def process_share(array: np.ndarray) -> np.ndarray:
    """This process's contiguous share of an array that every process holds whole."""
    n, i = jax.process_count(), jax.process_index()
    size = array.shape[0] // n
    return array[i * size:(i + 1) * size]

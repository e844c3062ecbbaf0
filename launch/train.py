"""Train stochastic IQT: python -m launch.train --config launch/configs/demo.py --workdir runs/demo

Multi-host (one command per host):
  python -m launch.train --config ... --workdir gs://... --coordinator_address HOST:PORT \
      --num_processes N --process_id I
On TPU pods and SLURM, `jax.distributed.initialize()` finds the cluster from the
environment when JAX_COORDINATOR_ADDRESS is set. Running the same command
again with the same --workdir resumes from the latest checkpoint.
"""
import logging
import os
import sys
from pathlib import Path

from iqt import run_guard

run_guard.defer_sigterm()  # a SIGTERM while starting stops the run cleanly, like a later one

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from iqt import cli, parallel  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: path.py[:variant], or a shipped "
                                          "config by name, e.g. demo:tiny or hcp_t1w_x8.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory: checkpoints, config.json, metrics, figures.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-host runs).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host runs).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-host runs).")


def main(argv):
    if _CONFIG.value is None or not _WORKDIR.value:
        cli.fail("--config and --workdir are required")
    for name in ("asyncio", "absl"):   # orbax's failed background writes: reported once, below
        logging.getLogger(name).setLevel(logging.CRITICAL)
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from iqt.checkpointing import CheckpointSaveError
    from iqt.train import TrainingDiverged, train_and_evaluate
    try:
        result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (TrainingDiverged, CheckpointSaveError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        os._exit(1)   # now: orbax's threads, still failing to write, would print at shutdown
    if result:
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    cli.run(main, config_dir=Path(__file__).parent / "configs")

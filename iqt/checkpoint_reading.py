"""Reading a trained network back from a run's checkpoints, for inference and export.

Which checkpoint (`best`, `latest` or a step number, `resolve_checkpoint`), a
check that it holds the network the run's config describes (`shape_mismatch`),
and a restore of only the model's variables, {'params', 'batch_stats'}, without
the optimiser state or the training step (`restore_variables`). Layout:
`iqt.checkpointing`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from iqt.checkpointing import BEST_DIR, LATEST_DIR, METRICS_ITEM, read_val_loss, steps_in
from iqt.errors import UserError


def resolve_checkpoint(workdir: str | os.PathLike, which: str = "best") -> tuple[Path, list[int]]:
    """Maps `best`, `latest` or a step number to (manager directory, steps to try)."""
    workdir = Path(workdir)
    if which == "best":
        directory = workdir / BEST_DIR
        damaged = [s for s in steps_in(directory) if read_val_loss(directory / str(s)) is None]
        if damaged:
            raise UserError(f"the best checkpoint's metrics file {directory / str(damaged[0]) / METRICS_ITEM} "
                            f"is damaged; pass --checkpoint latest (or a step number), or run the same "
                            f"training command again, which sets it aside")
        if not steps_in(directory):
            directory = workdir / LATEST_DIR  # no validation yet: fall back to the latest
    else:
        directory = workdir / LATEST_DIR
    steps = sorted(steps_in(directory), reverse=True)
    if which not in ("best", "latest"):
        try:
            wanted = int(which)
        except ValueError:
            raise UserError(f"--checkpoint must be best, latest or a step number, not {which!r}")
        if wanted not in steps:
            raise UserError(f"no checkpoint at step {wanted} in {workdir} (have: {sorted(steps)})")
        steps = [wanted]
    if not steps:
        raise UserError(f"{workdir} holds no checkpoint: train first (python -m launch.train)")
    return directory, steps


def _leaf_name(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def shape_mismatch(state_dir: Path, abstract_state: Any) -> str | None:
    """The first parameter whose saved shape differs from `abstract_state`'s, as text; None if all agree.

    Reads only the checkpoint's metadata; a checkpoint whose metadata cannot be
    read is left to the restore (which skips it as damaged).
    """
    try:
        with ocp.StandardCheckpointer() as reader:
            metadata = reader.metadata(state_dir.absolute())
        saved = {_leaf_name(p): tuple(m.shape) for p, m in
                 jax.tree_util.tree_leaves_with_path(getattr(metadata, "item_metadata", metadata))}
    except Exception:  # damaged: the restore reports it
        return None
    for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
        name = _leaf_name(path)
        if name in saved and saved[name] != tuple(leaf.shape):
            return f"{name}: saved {saved[name]}, expected {tuple(leaf.shape)}"
    return None


def restore_variables(workdir: str | os.PathLike, abstract_variables: dict, which: str = "best") -> tuple[dict, int]:
    """Restores only the model's variables, e.g. {'params', 'batch_stats'}, of a checkpointed `TrainState`
    (an orbax partial restore: no optimiser state, no training step needed); returns (variables, step).

    Steps are tried newest first, a damaged one skipped with a warning.
    """
    directory, steps = resolve_checkpoint(workdir, which)
    mismatch = shape_mismatch(directory / str(steps[0]) / "state", abstract_variables)
    if mismatch:
        raise UserError(f"the checkpoint {directory / str(steps[0])} holds another network than "
                        f"{Path(workdir) / 'config.json'} describes ({mismatch}); was its model or sim "
                        f"section edited? Restore it as it was when the run trained")
    args = ocp.args.PyTreeRestore(item=abstract_variables, partial_restore=True,
                                  restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_variables))
    for step in steps:
        try:
            with ocp.PyTreeCheckpointer() as reader:
                return reader.restore((directory / str(step) / "state").absolute(), args=args), step
        except Exception as e:  # a damaged or partial checkpoint: fall back to an older one
            logging.warning("checkpoint %s/%d is unreadable (%s: %s); falling back to an older one",
                            directory, step, type(e).__name__, (str(e).splitlines() or [""])[0][:200])
    raise UserError(f"no readable checkpoint in {directory} (tried steps {steps})")

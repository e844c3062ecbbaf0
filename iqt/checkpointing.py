"""Orbax checkpoints of a training run, and reading a trained model back.

Layout inside the work directory:
  checkpoints/<step>/{state,data}   the latest `keep` checkpoints, saved every N steps
  best/<step>/{state,data}          the one with the lowest validation loss
`state` is the `TrainState` pytree, `data` the JSON state of the data iterator.
Orbax writes each checkpoint under a temporary name and renames it when it is
complete, so a run killed mid-save leaves no half-checkpoint that looks whole;
a checkpoint that is damaged afterwards is skipped on restore, with a warning.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from iqt.errors import UserError

LATEST_DIR, BEST_DIR = "checkpoints", "best"
TMP_MARKER = ".orbax-checkpoint-tmp"  # how orbax names a checkpoint still being written


class _NoReadOnlyNotice(logging.Filter):
    """Drops orbax's "Given directory is read only" warning, logged on every read-only open
    (that is, every inference): reading a trained model is not the user's concern."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.pathname.endswith(os.path.join("orbax", "checkpoint", "checkpoint_manager.py"))
                    and record.getMessage().startswith("Given directory is read only"))


logging.getLogger("absl").addFilter(_NoReadOnlyNotice())  # orbax logs through absl's logger


def _manager(directory: Path, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=("state", "data"))


def discard_incomplete(directory: Path) -> list[str]:
    """Removes (and reports) checkpoints whose save was interrupted before completion."""
    found = sorted(p for p in directory.glob("*") if TMP_MARKER in p.name) if directory.is_dir() else []
    for path in found:
        logging.warning("ignoring incomplete checkpoint %s (its save was interrupted)", path)
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in found]


class Checkpointer:
    """The latest-K and best-by-validation-loss checkpoints of one run."""

    def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, read_only: bool = False):
        workdir = Path(workdir)
        if not read_only and jax.process_index() == 0:
            for sub in (LATEST_DIR, BEST_DIR):
                discard_incomplete(workdir / sub)
        self.latest = _manager(workdir / LATEST_DIR, ocp.CheckpointManagerOptions(
            max_to_keep=keep, read_only=read_only, create=not read_only))
        self.best = _manager(workdir / BEST_DIR, ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["val_loss"], best_mode="min",
            keep_checkpoints_without_metrics=False, read_only=read_only, create=not read_only))

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Starts an asynchronous save of `state` and the data iterator state."""
        self.latest.save(step, args=_save_args(state, data_state), force=True)

    def save_if_best(self, step: int, state: Any, data_state: dict, val_loss: float) -> None:
        """Saves to `best/` if `val_loss` beats the best so far."""
        self.best.save(step, args=_save_args(state, data_state), metrics={"val_loss": float(val_loss)},
                       force=True)

    def wait(self) -> None:
        """Blocks until every asynchronous save has been written (and raises its error)."""
        self.latest.wait_until_finished()
        self.best.wait_until_finished()
        for manager in (self.latest, self.best):
            manager.check_for_errors()

    def close(self) -> None:
        self.latest.close()
        self.best.close()

    def restore_latest(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
        """The newest readable checkpoint as (state, data_state, step), or None if none.

        Damaged checkpoints newer than it are moved to `WORKDIR/damaged/` (kept
        for inspection), so that the resumed run can save those steps again.
        """
        found, damaged = restore_newest(self.latest, abstract_state)
        if damaged and jax.process_index() == 0:
            quarantine = Path(self.latest.directory).parent / "damaged"
            quarantine.mkdir(exist_ok=True)
            for step in damaged:
                target = quarantine / f"{LATEST_DIR}-{step}-{int(time.time())}"
                shutil.move(str(Path(self.latest.directory) / str(step)), target)
                logging.warning("moved the damaged checkpoint of step %d to %s", step, target)
        if damaged:
            multihost_utils.sync_global_devices("iqt_quarantine_damaged_checkpoints")
            self.latest.reload()
        return found


def _save_args(state: Any, data_state: dict) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state))


def restore_newest(manager: ocp.CheckpointManager, abstract_state: Any, steps: list[int] | None = None
                   ) -> tuple[tuple[Any, dict, int] | None, list[int]]:
    """Tries `steps` (default: all, newest first), skipping damaged checkpoints with a warning.

    Returns ((state, data_state, step) or None, the damaged steps that were skipped).
    """
    damaged = []
    for step in steps if steps is not None else sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        except Exception as e:  # a damaged or partial checkpoint: fall back to an older one
            first_line = str(e).splitlines()[0][:200] if str(e) else ""
            logging.warning("checkpoint %s/%d is unreadable (%s: %s); falling back to an older one",
                            manager.directory, step, type(e).__name__, first_line)
            damaged.append(step)
            continue
        return (restored["state"], restored["data"], step), damaged
    return None, damaged


def resolve_checkpoint(workdir: str | os.PathLike, which: str = "best") -> tuple[Path, list[int]]:
    """Maps `best`, `latest` or a step number to (manager directory, steps to try)."""
    workdir = Path(workdir)
    if which == "best":
        directory = workdir / BEST_DIR
        if not _steps(directory):
            directory = workdir / LATEST_DIR  # no validation yet: fall back to the latest
    else:
        directory = workdir / LATEST_DIR
    steps = sorted(_steps(directory), reverse=True)
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


def _steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return [int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir()]


def restore_state(workdir: str | os.PathLike, abstract_state: Any, which: str = "best") -> tuple[Any, int]:
    """Restores a `TrainState` for inference; returns (state, step)."""
    directory, steps = resolve_checkpoint(workdir, which)
    manager = _manager(directory, ocp.CheckpointManagerOptions(read_only=True, create=False,
                                                                      save_interval_steps=0))
    try:
        found, _ = restore_newest(manager, abstract_state, steps)
    finally:
        manager.close()
    if found is None:
        raise UserError(f"no readable checkpoint in {directory} (tried steps {steps})")
    state, _, step = found
    return state, step


def abstract_like(tree: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
    """ShapeDtypeStructs of `tree`, for restoring into the same structure."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)

"""Orbax checkpoints of a training run, and reading a trained model back.

Layout inside the work directory:
  checkpoints/<step>/{state,data}   the latest `keep` checkpoints, saved every N steps
  best/<step>/{state,data}          the one with the lowest validation loss
`state` is the `TrainState` pytree, `data` the JSON state of the data iterator.
Reading a trained network back for inference is `iqt.checkpoint_reading`.
Orbax writes each checkpoint under a temporary name and renames it when it is
complete, so a run killed mid-save leaves no half-checkpoint that looks whole;
a checkpoint that is damaged afterwards is skipped on restore, with a warning,
and moved to `damaged/`. On resume, `best/` is reconciled with the restored
step: a best checkpoint newer than it (the run was killed between the two
saves, or the newer latest was damaged) is set aside, since the resumed run
computes that step again.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


LATEST_DIR, BEST_DIR, DAMAGED_DIR = "checkpoints", "best", "damaged"
SAVE_SLACK_BYTES = 1 << 20  # orbax's metadata, manifests and the figures written beside a checkpoint
METRICS_ITEM = "metrics"  # orbax's file of a checkpoint's metrics: best/<step>/metrics/metrics
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


def read_val_loss(checkpoint_dir: Path) -> float | None:
    """The validation loss saved with a `best/` checkpoint, or None if its metrics file is damaged."""
    try:
        metrics = json.loads((checkpoint_dir / METRICS_ITEM / METRICS_ITEM).read_bytes())
        loss = float(metrics["val_loss"])
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    return loss if math.isfinite(loss) else None


def set_aside(workdir: Path, sub: str, step: int, why: str) -> Path:
    """Moves checkpoint `workdir/sub/step` to `workdir/damaged/` (kept for inspection)."""
    target = workdir / DAMAGED_DIR / f"{sub}-{step}-{time.time_ns()}"
    target.parent.mkdir(exist_ok=True)
    shutil.move(str(workdir / sub / str(step)), target)
    logging.warning("moved checkpoint %s/%d to %s (%s)", sub, step, target, why)
    return target


def set_aside_damaged_metrics(workdir: Path) -> list[int]:
    """Sets aside `best/` checkpoints whose metrics file is unreadable (orbax cannot list them)."""
    bad = [s for s in steps_in(workdir / BEST_DIR) if read_val_loss(workdir / BEST_DIR / str(s)) is None]
    for step in bad:
        set_aside(workdir, BEST_DIR, step, "its metrics file is damaged")
    return bad


class CheckpointSaveError(RuntimeError):
    """A checkpoint, or another output of a run, could not be written (disk full, permission denied, ...)."""


@contextlib.contextmanager
def writes_fail_loudly():
    """An `OSError` while writing a run's outputs as one `CheckpointSaveError` that says how to resume."""
    try:
        yield
    except OSError as e:
        raise CheckpointSaveError(f"could not write a checkpoint: {e}; the previous checkpoint "
                                  f"is intact, free space or fix permissions and run the same "
                                  f"command to resume") from e


@contextlib.contextmanager
def _writes_fail_as_oserror(directory: Path, on_failure: Callable[[], None]):
    """Orbax's failed (asynchronous) writes, whatever their type, as one short `OSError`."""
    try:
        yield
    except OSError:
        on_failure()
        raise
    except Exception as e:
        on_failure()  # tensorstore reports a full disk as ValueError('RESOURCE_EXHAUSTED: ...')
        text = " ".join(str(e).split())
        code = errno.ENOSPC if "No space left" in text or "RESOURCE_EXHAUSTED" in text else errno.EIO
        raise OSError(code, f"{os.strerror(code)} while writing into {directory} "
                            f"({type(e).__name__}: {text[:200]})") from e


class Checkpointer:
    """The latest-K and best-by-validation-loss checkpoints of one run."""

    def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, read_only: bool = False):
        workdir = Path(workdir)
        self.workdir, self.failed = workdir, False
        if not read_only and jax.process_index() == 0:
            for sub in (LATEST_DIR, BEST_DIR):
                discard_incomplete(workdir / sub)
            set_aside_damaged_metrics(workdir)
        if not read_only:
            multihost_utils.sync_global_devices("iqt_checkpoint_cleanup")
        self.latest = _manager(workdir / LATEST_DIR, ocp.CheckpointManagerOptions(
            max_to_keep=keep, read_only=read_only, create=not read_only))
        self.best = _manager(workdir / BEST_DIR, ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["val_loss"], best_mode="min",
            keep_checkpoints_without_metrics=False, read_only=read_only, create=not read_only))

    @contextlib.contextmanager
    def _writing(self):
        with writes_fail_loudly(), _writes_fail_as_oserror(self.workdir, lambda: setattr(self, "failed", True)):
            yield

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Starts an asynchronous save of `state` and the data iterator state."""
        with self._writing():
            check_free_space(Path(self.latest.directory), state)
            self.latest.save(step, args=_save_args(state, data_state), force=True)

    def save_if_best(self, step: int, state: Any, data_state: dict, val_loss: float) -> None:
        """Saves to `best/` if `val_loss` beats the best so far (a step it holds is kept)."""
        if step in self.best.all_steps():
            return
        with self._writing():
            check_free_space(Path(self.best.directory), state)
            self.best.save(step, args=_save_args(state, data_state), metrics={"val_loss": float(val_loss)},
                           force=True)

    def wait(self) -> None:
        """Blocks until every asynchronous save has been written (and raises its error)."""
        with self._writing():
            self.latest.wait_until_finished()
            self.best.wait_until_finished()
            for manager in (self.latest, self.best):
                manager.check_for_errors()

    def close(self) -> None:
        """Waits for the saves and closes; after a failed write it only waits, and leaves orbax's
        threads to the process exit (closing them would print their pending failures)."""
        if self.failed:   # let the saves still in flight (an earlier step's) commit, then leave
            for manager in (self.latest, self.best):
                try:
                    manager.wait_until_finished()
                except Exception:  # the failure already reported
                    pass
            return
        with self._writing():
            try:
                self.latest.close()
            finally:
                self.best.close()

    def restore_latest(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
        """The newest readable checkpoint as (state, data_state, step), or None if none.

        Damaged checkpoints newer than it are moved to `WORKDIR/damaged/` (kept
        for inspection), so that the resumed run can save those steps again.
        """
        found, damaged = restore_newest(self.latest, abstract_state, need_data_state=True)
        restored_step = 0 if found is None else found[2]
        ahead = [s for s in self.best.all_steps() if s > restored_step]
        if jax.process_index() == 0:
            for step in damaged:
                set_aside(self.workdir, LATEST_DIR, step, "it is damaged")
            for step in ahead:
                set_aside(self.workdir, BEST_DIR, step, f"newer than the restored step {restored_step}, "
                          f"which the resumed run computes again")
        if damaged or ahead:
            multihost_utils.sync_global_devices("iqt_set_aside_checkpoints")
            self.latest.reload()
            self.best.reload()
        return found


def check_free_space(directory: Path, state: Any) -> None:
    """Raises ENOSPC before a save that cannot fit, rather than failing inside orbax's threads.

    A checkpoint takes the state's bytes plus `SAVE_SLACK_BYTES`; the check asks for
    twice the state (the temporary copy and the one it replaces) so that it errs on the safe side.
    """
    needed = 2 * sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state)) + SAVE_SLACK_BYTES
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {free / 2**20:.1f} MiB free in {existing}, "
                                    f"a checkpoint needs about {needed / 2**20:.1f} MiB")


def _save_args(state: Any, data_state: dict) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state))


def restore_newest(manager: ocp.CheckpointManager, abstract_state: Any, steps: list[int] | None = None,
                   *, need_data_state: bool = False) -> tuple[tuple[Any, dict, int] | None, list[int]]:
    """Tries `steps` (default: all, newest first), skipping damaged checkpoints with a warning.

    `need_data_state` (resuming training): a checkpoint whose data-iterator state
    is not one (`is_data_state`) counts as damaged too.

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
        if need_data_state and not is_data_state(restored["data"]):
            logging.warning("checkpoint %s/%d holds no data-iterator state (found %.100r); falling back "
                            "to an older one", manager.directory, step, restored["data"])
            damaged.append(step)
            continue
        return (restored["state"], restored["data"], step), damaged
    return None, damaged


def is_data_state(data: Any) -> bool:
    """Whether `data` looks like a data iterator's state: a dict with a batch count `next_batch` >= 0."""
    if not isinstance(data, dict):
        return False
    next_batch = data.get("next_batch")
    return isinstance(next_batch, int) and not isinstance(next_batch, bool) and next_batch >= 0


def has_checkpoints(workdir: str | os.PathLike) -> bool:
    """Whether a run in `workdir` ever saved a checkpoint (latest or best)."""
    return any(steps_in(Path(workdir) / sub) for sub in (LATEST_DIR, BEST_DIR))


def steps_in(directory: Path) -> list[int]:
    """The step numbers of the checkpoints in one manager directory."""
    if not directory.is_dir():
        return []
    return [int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir()]


def abstract_like(tree: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
    """ShapeDtypeStructs of `tree`, for restoring into the same structure."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)

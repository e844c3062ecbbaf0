"""Guards around a training run: one run per work directory, graceful preemption.

The lock is an `fcntl.flock` on `WORKDIR/.lock.<process>`: the kernel drops it
when the process dies, so a killed run never leaves it stuck.
SIGTERM and SIGINT only raise a flag; the training loop finishes its current
step, saves a checkpoint, waits for it to be written and exits with status 0.
A SIGTERM that arrives while the command is still starting (before the loop's
handler is installed) is kept by `defer_sigterm` and honoured the same way.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from pathlib import Path
from typing import Iterator

from iqt.errors import UserError


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike, process_index: int = 0) -> Iterator[None]:
    """Holds an exclusive lock on the work directory for one process of a run."""
    path = Path(workdir) / f".lock.{process_index}"
    try:
        handle = open(path, "a+")
    except OSError as e:   # a folder or an unwritable file where the lock belongs
        raise UserError(f"cannot use the lock file {path} of this work directory ({e.strerror or e}); "
                        f"remove it if no training run uses {workdir}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{workdir} is in use by another training run; wait for it to finish "
                        f"or choose another --workdir")
    try:
        handle.seek(0), handle.truncate(), handle.write(f"{os.getpid()}\n"), handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


_deferred_signal: list[str] = []


def _record(signum: int, frame) -> None:
    _deferred_signal.append(signal.Signals(signum).name)


def defer_sigterm() -> None:
    """From now on a SIGTERM is only recorded, for the `StopRequest` installed later to honour."""
    signal.signal(signal.SIGTERM, _record)


class StopRequest:
    """Set by SIGTERM/SIGINT while installed; read by the loop between steps."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        if _deferred_signal:
            self.signal_name = _deferred_signal[0]
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

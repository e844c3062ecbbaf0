"""SIGTERM and Ctrl-C that always stop a command, with no partial output and no traceback.

A signal handler raises in the main thread wherever it happens to be. When that
is inside a garbage-collection callback or a `__del__` (a runtime releasing a
buffer), Python prints "Exception ignored in ..." with a traceback and drops the
exception, and the command would finish and exit 0. So the handler also records
the signal: `raise_if_received` raises it again at the next safe point (every
tile, and just before an output file is put in place, `iqt.io_utils.atomic_path`),
and the hook for dropped exceptions stays silent about it.
"""
from __future__ import annotations

import signal
import sys

_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that `finally` blocks (temporary files) run."""


def _exception_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handle(signum: int, frame) -> None:
    _received.append(signum)
    raise _exception_for(signum)


def _unraisable_hook(unraisable) -> None:
    """A signal's exception dropped in a callback is recorded already: no 'Exception ignored' traceback."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """SIGTERM and SIGINT raise (`Terminated`, `KeyboardInterrupt`) and are remembered.

    SIGTERM is left alone where a caller already set its own handler.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _handle)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handle)
    sys.unraisablehook = _unraisable_hook


def raise_if_received() -> None:
    """Raises the first signal received since `install`, if its exception was dropped on the way."""
    if _received:
        raise _exception_for(_received[0])

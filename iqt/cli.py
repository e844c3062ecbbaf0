"""The command-line error contract shared by every `launch.*` entry point.

A user error prints one line on stderr (`error: ...`) and exits with status 2,
without a traceback. Outputs are written atomically by the library
(`iqt.io_utils.atomic_path`), so an error never leaves a partial file.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, Sequence

from absl import flags

from iqt.errors import UserError

USAGE_ERROR = 2
HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")


def fail(message: str) -> NoReturn:
    """Prints `error: message` as one line on stderr and exits with status 2."""
    one_line = " ".join(str(message).split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR)


def print_help() -> None:
    """Prints the entry point's docstring and its flags on stdout."""
    doc = (getattr(sys.modules.get("__main__"), "__doc__", None) or "").strip()
    print("\n\n".join(part for part in (doc, flags.FLAGS.main_module_help().strip()) if part))


def run(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> None:
    """Parses absl flags and runs `main`, mapping user errors to exit status 2."""
    argv = list(sys.argv if argv is None else argv)
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print_help()
        raise SystemExit(0)
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))
    if len(remaining) > 1:
        fail(f"unexpected positional arguments: {' '.join(remaining[1:])}")
    try:
        main(remaining)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)

"""The command-line error contract shared by every `launch.*` entry point.

A user error prints one line on stderr (`error: ...`) and exits with status 2,
without a traceback, and before it nothing but that line is printed (library
warnings are silenced until the command's own output starts). Outputs are
written atomically by the library (`iqt.io_utils.atomic_path`), so an error
never leaves a partial file; SIGTERM, like Ctrl-C, unwinds the command so that
no temporary file is left behind.

A config flag (`--config`) takes a file, `FILE.py:VARIANT`, or the name of a
config shipped with the package (`demo`, `demo:tiny`), found wherever the
command is run from.

Every command keeps JAX's compiled programs in a persistent cache
(`iqt.compile_cache`; `--compilation_cache DIR|none`), so the second run of a
command starts without compiling again.
"""
from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from absl import flags

from iqt import compile_cache, interrupts
from iqt.errors import UserError
from iqt.interrupts import Terminated

USAGE_ERROR = 2
TERMINATED = 128 + signal.SIGTERM
HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")
_COMPILATION_CACHE = flags.DEFINE_string("compilation_cache", None, compile_cache.FLAG_HELP)


def fail(message: str) -> NoReturn:
    """Prints `error: message` as one line on stderr and exits with status 2."""
    one_line = " ".join(str(message).split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR)


def _exit_now(message: str) -> NoReturn:
    """`fail`, then exits at once: background threads (orbax, tensorstore) print nothing more."""
    sys.stdout.flush()
    try:
        fail(message)
    finally:
        sys.stderr.flush()
        os._exit(USAGE_ERROR)


def print_help() -> None:
    """Prints the entry point's docstring and its flags on stdout."""
    doc = (getattr(sys.modules.get("__main__"), "__doc__", None) or "").strip()
    shared = flags.FLAGS.module_help(__name__).strip()   # --compilation_cache, on every command
    print("\n\n".join(part for part in (doc, flags.FLAGS.main_module_help().strip(), shared) if part))


def flag_error_line(error: Exception) -> str:
    """One line for a flag error; a traceback inside it (a config file that raised) keeps its last line."""
    text = str(error)
    if "Traceback (most recent call last)" in text:
        head, _, tail = text.partition("Traceback (most recent call last)")
        last = [line for line in tail.splitlines() if line.strip()][-1:]
        text = head.rstrip(": \n") + ": " + " ".join(last)
    return text


def resolve_config_file(value: str, shipped_dir: Path) -> str:
    """`--config` value → an absolute `FILE.py[:VARIANT]`; a shipped config can be named (`demo:tiny`).

    Tried in order: the path as given (from the current folder), then the
    shipped configs folder (a bare name, with or without `.py`, or a path that
    ends in that folder's name such as `launch/configs/demo.py`).
    """
    path, colon, variant = value.partition(":")
    given = Path(path).expanduser()
    name = given.name if given.name.endswith(".py") else given.name + ".py"
    candidates = [given]
    if len(given.parts) == 1 or given.parent.parts[-2:] == shipped_dir.parts[-2:]:
        candidates.append(shipped_dir / name)
    for candidate in candidates:
        if candidate.is_file():
            return f"{candidate.resolve()}{colon}{variant}"
    shipped = sorted(p.stem for p in shipped_dir.glob("*.py") if not p.name.startswith("_")
                     and p.stem != "common")
    raise UserError(f"config file {path} not found (looked for {', '.join(str(c.absolute()) for c in candidates)}); "
                    f"shipped configs: {', '.join(shipped)} (e.g. --config {shipped[0]})")


def _resolve_config_flags(argv: list[str], shipped_dir: Path) -> list[str]:
    """`argv` with each `--config` value resolved (`resolve_config_file`)."""
    out = list(argv)
    for i, arg in enumerate(out):
        match = re.fullmatch(r"(--?config)(=(.*))?", arg)
        if match is None:
            continue
        if match.group(2) is not None:
            out[i] = f"{match.group(1)}={resolve_config_file(match.group(3), shipped_dir)}"
        elif i + 1 < len(out):
            out[i + 1] = resolve_config_file(out[i + 1], shipped_dir)
    return out


def run(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None, *,
        config_dir: str | os.PathLike | None = None) -> None:
    """Parses absl flags and runs `main`, mapping user errors to exit status 2.

    `config_dir`: the folder of shipped configs that `--config NAME` finds.
    """
    argv = list(sys.argv if argv is None else argv)
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print_help()
        raise SystemExit(0)
    interrupts.install()
    quiet_library_logs()
    try:
        if config_dir is not None:
            argv = _resolve_config_flags(argv, Path(config_dir))
            sys.argv[:] = argv   # ml_collections reads the config overrides from sys.argv
        remaining = flags.FLAGS(argv)
    except UserError as e:
        fail(str(e))
    except flags.Error as e:
        fail(flag_error_line(e))
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as e:  # a bad --config.x=v
        detail = " ".join(str(e).replace("\\n", " ").replace("\\'", "").split()).strip("'\"")
        fail(f"bad config override (no such field, or a value of the wrong type): {detail}")
    except Exception as e:  # a config file that does not import (SyntaxError, NameError, ...)
        fail(f"cannot load --config: {type(e).__name__}: {' '.join(str(e).split())}")
    if len(remaining) > 1:
        fail(f"unexpected positional arguments: {' '.join(remaining[1:])}")
    compile_cache.enable(_COMPILATION_CACHE.value)
    try:
        main(remaining)
        interrupts.raise_if_received()   # a signal whose exception a callback dropped
    except UserError as e:
        _exit_now(str(e))
    except Terminated:
        print("terminated", file=sys.stderr, flush=True)
        os._exit(TERMINATED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)


def quiet_library_logs() -> None:
    """Silences the warnings libraries log before a command's own output (absl, TFDS, orbax)."""
    import logging

    for name in ("absl", "tensorflow_datasets", "orbax", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)

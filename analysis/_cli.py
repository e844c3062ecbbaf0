"""The command-line error contract for `analysis` entry points.

A user error prints one line on stderr (`error: ...`) and exits with status 2,
without a traceback. Outputs are built in a hidden staging folder beside the
output folder and moved into place only when everything succeeded, so an
error never leaves a partial output. (`analysis` may not import `iqt`; this
is the argparse twin of `iqt.cli`.)
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Sequence

from analysis.errors import UserError

USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    """Prints `error: message` as one line on stderr and exits with status 2."""
    one_line = " ".join(str(message).split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors follow the one-line contract."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None = None) -> None:
    """Parses `argv` with `parser` and runs `main`, mapping user errors to exit 2."""
    args = parser.parse_args(argv)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)   # so that staging folders are removed
    try:
        main(args)
    except UserError as e:
        fail(str(e))
    except Terminated:
        print("terminated", file=sys.stderr, flush=True)
        os._exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that `finally` blocks (staging folders) run."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def check_output_dir(out_dir: str | os.PathLike) -> None:
    """Before any work: `out_dir` is (or can be made) a folder, and a file can be written there.

    Writes and removes one probe byte in the nearest existing folder; creates nothing.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder")
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot write --out {out_dir}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise UserError(f"cannot write --out {out_dir}: creating a file in {existing} failed "
                        f"({e.strerror or e})") from e


@contextlib.contextmanager
def staged_output_dir(out_dir: str | os.PathLike, *, must_not_contain: Sequence[str] = ()
                      ) -> Iterator[Path]:
    """Yields an empty staging folder; on success moves its contents into `out_dir`.

    The staging folder sits beside `out_dir` (same file system, so the moves are
    renames). If `out_dir` does not exist it is created by one rename; otherwise
    each staged file replaces its namesake. On any exception the staging folder
    is deleted and `out_dir` is untouched. `must_not_contain` lists names that
    may not already exist in `out_dir` (a `UserError` otherwise).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder")
    clashes = [name for name in must_not_contain if (out_dir / name).exists()]
    if clashes:
        raise UserError(f"--out {out_dir} already holds {', '.join(clashes)}; "
                        "choose an empty folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".staging",
                                        dir=out_dir.parent))
    except OSError as e:
        raise UserError(f"cannot write beside --out {out_dir}: {e.strerror}") from e
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        _move_into(staging, out_dir)
    except OSError as e:  # disk full while writing or moving: one line, nothing left behind
        raise UserError(f"could not write --out {out_dir}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it to `path` on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from e
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _move_into(staging: Path, out_dir: Path) -> None:
    """Moves every file under `staging` to the same relative path under `out_dir`."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = out_dir / source.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)


def _umask() -> int:
    """The process umask (reading it means setting it, so set it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask

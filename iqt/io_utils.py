"""Writing outputs: checked before the work, written atomically, OS errors as one-line user errors.

`check_output_file` / `check_output_folder` run before a command computes
anything: the output's folder must exist or be creatable, and a file must be
writable there (so a full disk, a read-only or pseudo file system, or a path
under a file fail at once). `atomic_path` writes through a temporary file, so a
reader (or a crash) never sees a half-written output; an `OSError` while
writing becomes a `WriteError`, which is both a `UserError` and an `OSError`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from iqt.errors import UserError
from iqt.interrupts import raise_if_received


class WriteError(UserError, OSError):
    """An output could not be written: disk full, read-only, a path under a file, ..."""


def _umask() -> int:
    """The process umask (reading it means setting it, so set it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _new_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process umask."""
    return 0o666 & ~_umask()


def _reason(error: OSError) -> str:
    return error.strerror or " ".join(str(error).split()) or type(error).__name__


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: str | os.PathLike, name: str = "output") -> None:
    """`folder` exists or can be made (nothing under it is a file), and a file can be written there.

    Writes and removes one probe byte in the nearest existing folder; creates nothing else.
    """
    folder = Path(folder).expanduser().absolute()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise WriteError(f"cannot write {name} {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise WriteError(f"cannot write {name} {folder}: creating a file in {existing} failed "
                         f"({_reason(e)})") from e


def check_output_file(path: str | os.PathLike, name: str = "output") -> None:
    """Before any work: `path` is not a folder and its folder is writable (`check_writable_folder`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise WriteError(f"{name} {path} is a folder; give a file name")
    check_writable_folder(path.parent, name)


def check_not_inputs(outputs: Mapping[str, str | os.PathLike], inputs: Sequence[str | os.PathLike]) -> None:
    """Before any work: no output is a symbolic link (a write would land where it points) or one of
    the `inputs` (by path or as the same file). `outputs`: {what it is: path}."""
    existing = [Path(i) for i in inputs if i is not None and Path(i).exists()]
    for what, path in outputs.items():
        path = Path(path).expanduser()
        if path.is_symlink():
            raise WriteError(f"{what} {path} is a symbolic link (to {os.readlink(path)}); give a plain path")
        same = [i for i in existing if path.absolute() == i.absolute()
                or (path.exists() and os.path.samefile(path, i))]
        if same:
            raise WriteError(f"{what} {path} is the input {same[0]}; choose another output name")


def check_output_folder(path: str | os.PathLike, name: str = "output folder") -> None:
    """Before any work: `path` is a folder or can be made one, and is writable."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise WriteError(f"{name} {path} exists and is not a folder")
    check_writable_folder(path, name)


def make_output_folder(path: str | os.PathLike, name: str = "output folder") -> Path:
    """Checks (`check_output_folder`) and creates `path`; returns it."""
    check_output_folder(path, name)
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create {name} {path}: {_reason(e)}") from e
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it to `path` on success.

    The temporary name keeps the full suffix (e.g. `.nii.gz`) so that writers
    that look at the extension behave. On any exception (or signal that
    unwinds the stack) the temporary file is removed and `path` is left
    untouched; an `OSError` becomes a `WriteError` naming `path`. The file gets
    the permissions a plain `open()` would give it (`mkstemp` alone would make
    it owner-only).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes),
                                   dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {_reason(e)}") from e
    tmp = Path(tmp)
    try:
        with _as_write_error(path):
            yield tmp
            raise_if_received()   # a stopped command leaves no output
            os.chmod(tmp, _new_file_mode())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _as_write_error(path: Path) -> Iterator[None]:
    """An `OSError` while writing or putting `path` in place, as a `WriteError` naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(f"could not write {path}: {_reason(e)}") from e


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """`atomic_path` for a set of outputs: yields their temporary paths; all are put in place only
    when the block succeeds, so an error (a full disk, a signal) leaves none of them."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary folder beside `path` (which must be absent or an empty folder);
    renames it to `path` when the block succeeds, removes it otherwise."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise WriteError(f"{path} exists and is not an empty folder; choose a new one")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise WriteError(f"cannot write {path}: {_reason(e)}") from e
    try:
        with _as_write_error(path):
            yield tmp
            raise_if_received()
            os.chmod(tmp, 0o777 & ~_umask())
            if path.exists():
                path.rmdir()
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)

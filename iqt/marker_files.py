"""Cache and marker files the project reads back: validated, and set aside when damaged.

A cache (`cpu_backends.json`) or a marker (`sweep_done.json`) is only a record of
work already done. A damaged one (truncated by a crash, edited by hand, a JSON
list where an object belongs) must not stop every later command until a person
edits it: it is renamed to `NAME.damaged` (an earlier one there is replaced),
one warning says so, and the caller proceeds as if the file were absent, redoing
the work it recorded.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

DAMAGED_SUFFIX = ".damaged"


def set_aside(path: Path, why: str) -> None:
    """Renames a damaged `path` to `path.damaged` and warns once; a rename that fails is only warned."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    try:
        os.replace(path, target)
        where = f"moved to {target}"
    except OSError as e:
        where = f"could not move it aside ({e.strerror or e})"
    logging.warning("%s is damaged (%s): %s; treating it as absent", path, why, where)


def read_json_object(path: str | os.PathLike) -> dict | None:
    """The JSON object in `path`; None if there is no file, or if it is damaged (then set aside).

    Damaged: unreadable, not UTF-8, not JSON, or JSON that is not an object. A
    folder at `path` is left alone and read as absent.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        set_aside(path, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:80]}")
        return None
    if not isinstance(value, dict):
        set_aside(path, f"a JSON {type(value).__name__}, not an object")
        return None
    return value

"""The resolved config of a run, saved as `WORKDIR/config.json` and read back.

JSON has no tuples, so every list read back becomes a tuple: config files use
tuples for all sequences, which makes `load(save(c)) == c` exact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import ml_collections

from iqt.errors import UserError
from iqt.io_utils import atomic_write_text

CONFIG_NAME = "config.json"


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=_tuples)


def save_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Path:
    """Writes `config` to `workdir/config.json` atomically; returns the path."""
    path = Path(workdir) / CONFIG_NAME
    atomic_write_text(path, to_json(config) + "\n")
    return path


def config_from_json(text: str, source: str = "config") -> ml_collections.ConfigDict:
    """Parses a config written by `to_json`; a malformed one is a `UserError`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{source} is not valid JSON ({e}); restore it or start a new work directory")
    if not isinstance(raw, dict):
        raise UserError(f"{source} must hold a JSON object, found {type(raw).__name__}")
    return ml_collections.ConfigDict(_tuples(raw))


def load_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """Reads `workdir/config.json` back into a `ConfigDict` equal to the one saved.

    Checked by the validator of a fresh config (`iqt.config_check`), so a damaged
    file is one clear error wherever it is read.
    """
    from iqt.config_check import check_run_config

    path = Path(workdir) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"{path} not found: is {workdir} a training work directory?")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} cannot be read as text ({e}); restore it or start a new work directory")
    config = config_from_json(text, source=str(path))
    check_run_config(config, source=str(path))
    return config

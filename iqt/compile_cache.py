"""JAX's persistent compilation cache, on by default for every command.

A compiled program (the training step, the network over a tile, the simulator)
is stored on disk keyed by its HLO, the JAX version and the device; a resumed
run, the next sweep setting or a second inference call then loads it in seconds
instead of compiling again (minutes for the whole training step).

Where, first match wins:
  1. `--compilation_cache DIR|none` of a command (`enable(value)`);
  2. `$JAX_COMPILATION_CACHE_DIR`, JAX's own variable (the test suite sets it);
  3. `$IQT_COMPILATION_CACHE` (a folder, or 'none');
  4. `$XDG_CACHE_HOME/iqt/jax`, else `~/.cache/iqt/jax`.
'none' (any case) turns the cache off. Programs that compile in under
`MIN_COMPILE_TIME_S` are not stored (JAX's `jax_persistent_cache_min_compile_time_secs`,
unless `$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` says otherwise).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

ENV_VAR = "IQT_COMPILATION_CACHE"
JAX_ENV_VAR = "JAX_COMPILATION_CACHE_DIR"
OFF = "none"
MIN_COMPILE_TIME_S = 1.0
FLAG_HELP = (f"Folder of JAX's persistent compilation cache, or '{OFF}' (default: ${JAX_ENV_VAR}, "
             f"${ENV_VAR}, else $XDG_CACHE_HOME/iqt/jax or ~/.cache/iqt/jax).")


def default_dir() -> Path:
    """`$XDG_CACHE_HOME/iqt/jax`, or `~/.cache/iqt/jax` when that variable is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "iqt" / "jax"


def resolve(value: Optional[str] = None) -> Optional[Path]:
    """The cache folder for a flag value (None: not given), or None when the cache is off."""
    for choice in (value, os.environ.get(JAX_ENV_VAR), os.environ.get(ENV_VAR)):
        if choice:
            return None if choice.strip().lower() == OFF else Path(choice).expanduser()
    return default_dir()


def _usable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK)
    except OSError:
        return False


def enable(value: Optional[str] = None) -> Optional[Path]:
    """Points JAX's persistent cache at `resolve(value)`, creating the folder; returns it (None: off).

    Before JAX is imported this sets JAX's environment variables (so commands
    that never import JAX do not pay for it, and subprocesses inherit the
    choice); after, JAX's config. A folder that cannot be made or written leaves
    the cache off: a cache is never a reason for a command to fail.
    """
    folder = resolve(value)
    folder = folder if folder is not None and _usable(folder) else None
    settings = {"jax_enable_compilation_cache": folder is not None,
                "jax_compilation_cache_dir": None if folder is None else str(folder)}
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        settings["jax_persistent_cache_min_compile_time_secs"] = MIN_COMPILE_TIME_S
    if "jax" in sys.modules:
        import jax

        for name, setting in settings.items():
            jax.config.update(name, setting)
        return folder
    for name, setting in settings.items():
        if setting is None:
            os.environ.pop(name.upper(), None)
        else:
            os.environ[name.upper()] = str(setting).lower() if isinstance(setting, bool) else str(setting)
    return folder


class HitCounter:
    """Counts JAX's own persistent-cache hits from now on ('/jax/compilation_cache/cache_hits' events)."""

    EVENT = "/jax/compilation_cache/cache_hits"

    def __init__(self) -> None:
        from jax._src import monitoring   # JAX's event stream: no public API exposes it

        self.count = 0
        monitoring.register_event_listener(self._on_event)

    def _on_event(self, event: str, **kwargs) -> None:
        if event == self.EVENT:
            self.count += 1

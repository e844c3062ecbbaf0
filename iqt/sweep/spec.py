"""A sweep file: named settings, each a set of config overrides, checked before anything trains.

A sweep file is a Python file with a docstring (what it studies, the command, the
runtime, the expected result) and a function `get_sweep()` returning a dict with

- `settings`: a list of `(name, {"section.field": value, ...})` pairs, or
- `grid`: `{"section.field": [value, ...], ...}`, every combination a setting
  named `field=value,field=value` (the last part of each field's path);
- optionally `overrides`: `{"section.field": value}` applied to every setting
  (before the setting's own), and `test_settings`: the evaluation's test
  settings (`iqt.evaluation.SETTINGS`; default its `DEFAULT_SETTINGS`).

Every field must already exist in the base config; every setting's config must
pass `iqt.config_check.check_run_config`.
"""
from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import itertools
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import ml_collections

from iqt import evaluation
from iqt.config_check import check_run_config, check_seed
from iqt.errors import UserError
from iqt.interrupts import raise_if_received

SWEEP_KEYS = ("settings", "grid", "overrides", "test_settings")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=,+-]*")   # a folder name on every file system


@dataclasses.dataclass(frozen=True)
class Setting:
    """One arm of a sweep: its name (its folder) and its config overrides, dotted path → value."""

    name: str
    overrides: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A loaded sweep file."""

    name: str                                # the file's stem
    settings: tuple[Setting, ...]
    overrides: Mapping[str, Any]             # common to every setting
    test_settings: tuple[str, ...]           # evaluation's test settings

    def config(self, base: ml_collections.ConfigDict, setting: Setting, seed: int) -> ml_collections.ConfigDict:
        """The run config of `setting` with `seed`: a copy of `base` with the overrides applied."""
        config = ml_collections.ConfigDict(base.to_dict())
        for path, value in {**self.overrides, **setting.overrides}.items():
            apply_override(config, path, value, f"setting {setting.name!r}")
        config.seed = seed
        return config


def apply_override(config: ml_collections.ConfigDict, path: str, value: Any, where: str) -> None:
    """Sets `config.<path>` to `value`; the field must exist and the type fit."""
    *parents, field = path.split(".")
    node = config
    for i, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise UserError(f"{where}: unknown config field {path!r} ({'.'.join(parents[:i + 1])} "
                            f"does not exist)")
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or field not in node:
        raise UserError(f"{where}: unknown config field {path!r}")
    if isinstance(value, Mapping) and not isinstance(value, ml_collections.ConfigDict):
        value = ml_collections.ConfigDict(dict(value))
    try:
        node[field] = value
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: {path}={value!r} does not fit the field "
                        f"({' '.join(str(e).split())})") from None


def _grid_settings(grid: Mapping[str, Sequence[Any]]) -> list[Setting]:
    if not isinstance(grid, Mapping) or not grid:
        raise UserError("the sweep's grid is empty: give at least one field and its values")
    for path, values in grid.items():
        if not isinstance(path, str):
            raise UserError(f"the sweep's grid keys must be config paths such as 'sim.noise', got {path!r}")
        if not isinstance(values, (list, tuple)) or not values:
            raise UserError(f"the sweep's grid has no values for {path!r}")
    paths = list(grid)
    return [Setting(",".join(f"{p.split('.')[-1]}={v}" for p, v in zip(paths, combo)), dict(zip(paths, combo)))
            for combo in itertools.product(*(grid[p] for p in paths))]


def _listed_settings(settings: Sequence) -> list[Setting]:
    if not isinstance(settings, (list, tuple)) or not settings:
        raise UserError("the sweep's settings are empty: give at least one (name, overrides) pair")
    out = []
    for item in settings:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], Mapping)):
            raise UserError(f"a sweep setting must be a (name, {{field: value}}) pair, got {item!r}")
        out.append(Setting(item[0], dict(item[1])))
    return out


def _load_module(path: Path):
    """`get_sweep()` of the Python file `path`, whatever its name ends with."""
    loader = importlib.machinery.SourceFileLoader(f"iqt_sweep_{path.stem}", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    try:
        loader.exec_module(module)
        return module.get_sweep()
    except AttributeError as e:
        raise UserError(f"sweep file {path}: {' '.join(str(e).split())} (it must define get_sweep())") from None
    except (Exception, SystemExit, KeyboardInterrupt) as e:   # a sweep file that does not run: one line
        raise_if_received()   # a real Ctrl-C or SIGTERM stops the command as such
        raise UserError(f"cannot load sweep file {path}: {type(e).__name__}: {' '.join(str(e).split())}") from None


def resolve_sweep_file(value: str, shipped_dir: Path) -> Path:
    """A sweep file's path: as given, or the name of a shipped one (`tiny`, `draw_mode.py`)."""
    given = Path(value).expanduser()
    name = given.name if given.name.endswith(".py") else given.name + ".py"
    for candidate in (given, shipped_dir / name):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in shipped_dir.glob("*.py") if not p.name.startswith("_"))
    raise UserError(f"sweep file {value} not found; shipped sweeps: {', '.join(shipped)}")


def load_sweep(path: str | Path) -> Sweep:
    """Reads and checks the shape of a sweep file (names, grid, keys); fields are checked by `check_sweep`."""
    path = Path(path)
    raw = _load_module(path)
    if not isinstance(raw, Mapping):
        raise UserError(f"sweep file {path}: get_sweep() must return a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown or ("settings" in raw) == ("grid" in raw):
        raise UserError(f"sweep file {path}: give exactly one of 'settings' or 'grid' (and optionally "
                        f"'overrides', 'test_settings'); found {', '.join(map(str, raw)) or 'nothing'}")
    settings = _listed_settings(raw["settings"]) if "settings" in raw else _grid_settings(raw["grid"])
    names = [s.name for s in settings]
    for name in names:
        if not NAME_PATTERN.fullmatch(name):
            raise UserError(f"sweep file {path}: setting name {name!r} is not a plain folder name "
                            f"(letters, digits, _ . = , + -)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"sweep file {path}: setting name(s) used twice: {', '.join(duplicates)}")
    test_settings = evaluation.check_settings(raw.get("test_settings", evaluation.DEFAULT_SETTINGS))
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise UserError(f"sweep file {path}: 'overrides' must be a dict of config paths to values, "
                        f"got {type(overrides).__name__}")
    return Sweep(path.stem, tuple(settings), dict(overrides), test_settings)


def check_seeds(seeds: Sequence[str | int]) -> tuple[int, ...]:
    """`--seeds` values as distinct integer seeds."""
    try:
        out = tuple(int(s) for s in seeds)
    except ValueError:
        raise UserError(f"--seeds must be integers, got {','.join(map(str, seeds))}") from None
    if not out or len(set(out)) != len(out):
        raise UserError(f"--seeds must be distinct and at least one, got {','.join(map(str, seeds))}")
    return tuple(check_seed(s, "--seeds") for s in out)


def check_sweep(sweep: Sweep, base: ml_collections.ConfigDict, seeds: Sequence[int]) -> None:
    """Every setting × seed makes a valid run config (before anything is trained)."""
    for setting in sweep.settings:
        for seed in seeds:
            check_run_config(sweep.config(base, setting, seed), f"sweep setting {setting.name!r}")

"""JAX's persistent compilation cache: where it goes, and that a second process reads it.

The hits are counted from JAX's own log ("Persistent compilation cache hit",
at warning level under JAX_LOG_COMPILES=1), never from wall time.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iqt import compile_cache

ROOT = Path(__file__).resolve().parents[1]
HIT = "Persistent compilation cache hit"


@pytest.fixture
def clean_env(monkeypatch):
    for name in (compile_cache.ENV_VAR, compile_cache.JAX_ENV_VAR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_flag_then_jax_then_iqt_variable_then_the_user_cache_folder(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.resolve() == tmp_path / "home" / ".cache" / "iqt" / "jax"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve() == tmp_path / "xdg" / "iqt" / "jax"
    clean_env.setenv(compile_cache.ENV_VAR, str(tmp_path / "iqt"))
    assert compile_cache.resolve() == tmp_path / "iqt"
    clean_env.setenv(compile_cache.JAX_ENV_VAR, str(tmp_path / "tests"))   # what the test session sets
    assert compile_cache.resolve() == tmp_path / "tests"
    assert compile_cache.resolve(str(tmp_path / "flag")) == tmp_path / "flag"
    assert compile_cache.resolve("None") is None
    clean_env.delenv(compile_cache.JAX_ENV_VAR)
    clean_env.setenv(compile_cache.ENV_VAR, "none")
    assert compile_cache.resolve() is None


def _subject(folder: Path) -> list[str]:
    """launch.simulate's flags for a small HF volume with tissue maps."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(40, 9, 10))
    affine = np.diag([0.7, 0.7, 0.7, 1.0])
    nib.save(nib.Nifti1Image((0.3 + 0.3 * labels).astype(np.float32), affine), folder / "hf.nii.gz")
    flags = [f"--input={folder / 'hf.nii.gz'}", "--slice_axis=0",
             f"--config={ROOT / 'launch' / 'configs' / 'simulate.py'}:FLAIR"]
    for t, name in enumerate(("gm", "wm", "csf")):
        nib.save(nib.Nifti1Image((labels == t).astype(np.float32), affine), folder / f"{name}.nii.gz")
        flags.append(f"--{name}={folder / f'{name}.nii.gz'}")
    return flags


def _simulate(flags: list[str], output: Path, xdg: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (compile_cache.JAX_ENV_VAR, compile_cache.ENV_VAR)}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(xdg), JAX_LOG_COMPILES="1",
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    result = subprocess.run([sys.executable, "-m", "launch.simulate", *flags, f"--output={output}"],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    flags = _subject(tmp_path)
    xdg = tmp_path / "xdg"
    cache = xdg / "iqt" / "jax"
    first = _simulate(flags, tmp_path / "a.nii.gz", xdg)
    entries = sorted(p.name for p in cache.iterdir())
    assert HIT not in first.stderr and entries                     # made, and filled
    second = _simulate(flags, tmp_path / "b.nii.gz", xdg)
    assert second.stderr.count(HIT) == len(entries)                # every program read back, …
    assert sorted(p.name for p in cache.iterdir()) == entries      # … none compiled anew
    np.testing.assert_array_equal(nib.load(tmp_path / "a.nii.gz").get_fdata(),
                                  nib.load(tmp_path / "b.nii.gz").get_fdata())
    off = _simulate([*flags, "--compilation_cache=none"], tmp_path / "c.nii.gz", tmp_path / "xdg_off")
    assert HIT not in off.stderr and not (tmp_path / "xdg_off").exists()

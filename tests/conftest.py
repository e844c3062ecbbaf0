"""Shared fixtures: small NIfTI files written with nibabel directly (not through iqt).

The suite compiles the same tiny training step in many processes: JAX's persistent
compilation cache, in a fresh folder per session (inherited by the subprocesses the
tests start), compiles each program once. `--backend auto`'s timings of the CPU
runtimes (`iqt.export.backend_choice`) go to a file of the session, not the user's.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="iqt-tests-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("IQT_CPU_BACKEND_CACHE", str(Path(tempfile.mkdtemp(prefix="iqt-tests-")) / "cpu_backends.json"))

slow = pytest.mark.skipif(os.environ.get("IQT_SLOW_TESTS") != "1",
                          reason="a long run outside the 15-minute suite: set IQT_SLOW_TESTS=1 to include it")
"""Marks a test of an optional path that costs minutes (README, 'Tests')."""


@pytest.fixture
def tmp_nifti(tmp_path):
    """Factory: `tmp_nifti(data, affine=None, name='image.nii.gz', dtype=None) -> Path`."""

    def make(data, affine=None, name: str = "image.nii.gz", dtype=None) -> Path:
        data = np.asarray(data)
        image = nib.Nifti1Image(data, np.eye(4) if affine is None else np.asarray(affine))
        image.set_data_dtype(data.dtype if dtype is None else dtype)
        path = tmp_path / name
        nib.save(image, path)
        return path

    return make

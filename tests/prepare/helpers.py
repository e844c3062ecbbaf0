"""Test data for iqt.prepare: the template in thick slices, and DICOM series written with SimpleITK."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iqt.data.template import load_template
from iqt.dicom_output import kept_locale

ROOT = Path(__file__).resolve().parents[2]
SLICE = 5   # template voxels (1 mm) averaged into one thick slice


@functools.lru_cache(maxsize=None)
def thick_template(step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(image, brain mask): the MNI152 T1 in 5 mm slices (every `step`-th in-plane voxel).

    A thick slice is the mean of 5 template slices; its brain is where at least
    half of them are brain (T1 > 0); the image is 0 outside it.
    """
    thin = np.asarray(load_template().image, np.float32)[::step, ::step]
    z = thin.shape[2] // SLICE * SLICE
    blocks = thin[:, :, :z].reshape(*thin.shape[:2], -1, SLICE)
    brain = (blocks > 0).mean(-1) >= 0.5
    return np.where(brain, blocks.mean(-1), 0.0).astype(np.float32), brain


def write_dicom_series(image: sitk.Image, folder: Path, *, number: int, description: str,
                       tags: dict[str, str] | None = None) -> None:
    """Writes a 3D int16 SimpleITK image as one DICOM file per slice (the SimpleITK examples' recipe),
    with `tags` ({'gggg|eeee': value}) in every file."""
    with kept_locale():
        _write_dicom_series(image, folder, number=number, description=description, tags=tags or {})


def _write_dicom_series(image: sitk.Image, folder: Path, *, number: int, description: str, tags: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = f"1.2.826.0.1.3680043.2.1125.{os.getpid()}.{number}"
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.8f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        for tag, value in (("0008|0060", "MR"), ("0020|000d", uid + ".0"), ("0020|000e", uid),
                           ("0008|0018", f"{uid}.{k + 1}"), ("0020|0011", str(number)),
                           ("0008|103e", description), ("0020|0037", orientation),
                           ("0020|0013", str(k + 1)),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in
                                                   image.TransformIndexToPhysicalPoint((0, 0, k)))),
                           *tags.items()):
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{number}_{k:03d}.dcm"))
        writer.Execute(piece)


def oblique_image(shape=(24, 20, 6), spacing=(0.9, 1.1, 5.0), seed: int = 0) -> sitk.Image:
    """An int16 image in an oblique orientation (rotated about two axes), LPS as SimpleITK has it."""
    a, b = np.deg2rad(17.0), np.deg2rad(-11.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    voxels = np.random.default_rng(seed).integers(0, 1000, shape[::-1]).astype(np.int16)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(spacing)
    image.SetDirection(tuple((rz @ rx).ravel()))
    image.SetOrigin((-31.25, 47.5, -12.125))
    return image


def run_module(module: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def make_run(workdir: Path, *, factor: int, hf_voxel_mm: float) -> Path:
    """A work directory: the tiny demo config (with this factor and voxel size) and random weights."""
    import jax

    from iqt import config_io
    from iqt.checkpointing import Checkpointer
    from iqt.models import create_model, input_multiple
    from iqt.train_step import create_train_state, make_optimizer
    from launch.configs.demo import get_config

    config = get_config("tiny")
    config.sim.factor, config.sim.hf_voxel_mm = factor, hf_voxel_mm
    workdir.mkdir(parents=True)
    config_io.save_config(config, workdir)
    model = create_model(config.model, factor)
    shape = (1, *input_multiple(config.model, factor))
    abstract = jax.eval_shape(lambda key: create_train_state(key, model, make_optimizer(config.train), shape),
                              jax.random.key(0))
    rng = np.random.default_rng(7)

    def fill(path, leaf):   # random weights filled in NumPy (compiling model.init takes seconds)
        names = jax.tree_util.keystr(path)
        if "params" in names and "opt_state" not in names:
            return (0.3 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
        return (np.ones if "batch_stats" in names and "var" in names else np.zeros)(leaf.shape, leaf.dtype)

    checkpointer = Checkpointer(workdir)
    checkpointer.save(1, jax.tree_util.tree_map_with_path(fill, abstract), {})
    checkpointer.wait()
    checkpointer.close()
    return workdir

"""Tiny synthetic HF subjects written as NIfTI files, and data configs built from them."""
from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iqt.data.config import default_config

SHAPE = (30, 34, 40)
VOXEL_MM = (1.2, 1.0, 1.5)


def affine_for(voxel_mm=VOXEL_MM, origin=(-20.0, -17.0, -30.0)) -> np.ndarray:
    affine = np.diag([*voxel_mm, 1.0])
    affine[:3, 3] = origin
    return affine


def phantom(shape=SHAPE, contrast=1.0, seed=0):
    """(image, tissue (..., 3)): an ellipsoid brain, WM core, GM shell, CSF rim, 0 outside.

    `contrast` scales WM against GM and CSF, so each subject has its own
    (normalised) tissue means.
    """
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt(np.sum((grid / np.array([0.8, 0.85, 0.8])[:, None, None, None]) ** 2, axis=0))
    wm = np.clip((0.55 - r) / 0.1 + 0.5, 0, 1)
    brain = np.clip((1.0 - r) / 0.1 + 0.5, 0, 1)
    csf = np.clip((r - 0.85) / 0.1 + 0.5, 0, 1) * brain
    gm = np.clip(brain - wm - csf, 0, 1)
    tissue = np.stack([gm, wm, csf], axis=-1).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 0.02, shape)
    image = (60 * gm + 100 * contrast * wm + 30 * csf) * (1 + noise) * (brain > 0)
    return image.astype(np.float32), tissue


def save(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def write_subject(folder: Path, image_name: str, *, contrast=1.0, seed=0, shape=SHAPE,
                  spm_suffix=".nii") -> dict[str, Path]:
    """An image and its SPM12-named c1/c2/c3 maps in `folder`; returns their paths."""
    image, tissue = phantom(shape, contrast, seed)
    affine = affine_for()
    paths = {"image": save(folder / image_name, image, affine)}
    stem = image_name.replace(".nii.gz", "").replace(".nii", "")
    for k, name in enumerate(("gm", "wm", "csf")):
        paths[name] = save(folder / f"c{k + 1}{stem}{spm_suffix}", tissue[..., k], affine)
    return paths


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["subject", "image", "gm", "wm", "csf", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_folder_dataset(root: Path, splits: dict[str, int]) -> Path:
    """A nifti_folder with subjects s00, s01, ... (each its own contrast); returns the manifest."""
    rows, i = [], 0
    for split, count in splits.items():
        for _ in range(count):
            sid = f"s{i:02d}"
            paths = write_subject(root / sid, "t1.nii.gz", contrast=1.0 + 0.25 * i, seed=i)
            rows.append({"subject": sid, **{k: str(p.relative_to(root)) for k, p in paths.items()},
                         "split": split})
            i += 1
    return write_manifest(root / "manifest.csv", rows)


def folder_config(manifest: Path, data_dir: Path):
    c = default_config("nifti_folder")
    c.manual_dir = str(manifest)
    c.data_dir = str(data_dir)
    c.patch_size_hf = (16, 16, 8)
    c.patches_per_volume = 8
    c.volumes_per_shuffle = 2
    c.worker_count = c.worker_threads = c.prefetch_batches = 0
    return c


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory):
    """A built nifti_folder dataset: 5 train, 1 validation, 1 test subjects."""
    from iqt.data.datasets import ensure_built
    root = tmp_path_factory.mktemp("folder")
    manifest = make_folder_dataset(root / "src", {"train": 5, "validation": 1, "test": 1})
    config = folder_config(manifest, root / "tfds")
    ensure_built(config)
    return config


@pytest.fixture(scope="session")
def template_data(tmp_path_factory):
    """The iqt_template dataset, built once (a few seconds)."""
    from iqt.data.datasets import ensure_built
    config = default_config("iqt_template")
    config.data_dir = str(tmp_path_factory.mktemp("template_tfds"))
    config.worker_count = config.worker_threads = config.prefetch_batches = 0
    return config, ensure_built(config)


@pytest.fixture(scope="session")
def synth():
    """The helpers above, for tests that lay out their own folders."""
    import types
    return types.SimpleNamespace(phantom=phantom, save=save, affine_for=affine_for,
                                 write_subject=write_subject, write_manifest=write_manifest,
                                 make_folder_dataset=make_folder_dataset,
                                 folder_config=folder_config, SHAPE=SHAPE, VOXEL_MM=VOXEL_MM)

"""Patch geometry and background rejection: pure functions on decoded volumes.

A patch is a target window of `patch_size = (X, Y, Z)` voxels plus `margin`
slices on each side along z (the slice axis), all inside the volume (no
padding): its corner is uniform over every position where the whole
(X, Y, Z + 2 margin) window fits. A candidate is kept when at least
`min_fraction` of its target voxels (the margin is not counted) are brain,
brain meaning GM + WM + CSF > 0.5; otherwise another is drawn (docs/method.md
section 4's rule, with tissue maps in place of "above the mean intensity").
"""
from __future__ import annotations

import dataclasses
import zlib

import jax
import ml_collections
import numpy as np

import simulators
from iqt.data import records
from iqt.data.subject import Subject
from iqt.errors import UserError

def rng(*keys: int) -> np.random.Generator:
    """A generator for one purpose, keyed by non-negative integers."""
    return np.random.default_rng(np.random.SeedSequence([int(k) % 2 ** 63 for k in keys]))


def brain_fraction(brain: np.ndarray, corner, patch_size, margin: int) -> float:
    """Share of brain voxels in the target part of the window starting at `corner`."""
    (x, y, z), (px, py, pz) = corner, patch_size
    target = brain[x:x + px, y:y + py, z + margin:z + margin + pz]
    return np.count_nonzero(target) / target.size


def sample_corners(gen: np.random.Generator, brain: np.ndarray, patch_size, margin: int,
                   min_fraction: float, count: int, *, name: str) -> tuple[np.ndarray, int]:
    """`count` window corners (count, 3) by rejection sampling; also the candidates drawn."""
    window = np.array(patch_size) + np.array([0, 0, 2 * margin])
    high = np.array(brain.shape) - window + 1
    if np.any(high < 1):
        raise UserError(f"{name} has shape {brain.shape}, smaller than a patch with its margin "
                        f"{tuple(int(w) for w in window)}; lower data.patch_size_hf")
    kept, drawn, budget = [], 0, 1000 + 200 * count
    while len(kept) < count:
        if drawn >= budget:
            raise UserError(f"{name}: only {len(kept)} of {drawn} random patches hold at least "
                            f"{min_fraction:g} brain; lower data.min_brain_fraction")
        candidates = gen.integers(0, high, size=(count, 3))
        for corner in candidates:
            drawn += 1
            if brain_fraction(brain, corner, patch_size, margin) >= min_fraction:
                kept.append(corner)
                if len(kept) == count:
                    break
    return np.array(kept, dtype=np.int64), drawn


def sampling_subject(record: dict, sim_config: dict) -> Subject:
    """A stored record as the sampler keeps it: tissue as stored (uint8), with the subject's
    LF brain means (`simulators.brain_means_by_tissue`) under `sim_config` (the `sim` section)."""
    subject = records.decode(record, quantised=True)
    with jax.default_device(jax.local_devices(backend="cpu")[0]):   # the host's work, off the accelerator
        brain_means = simulators.brain_means_by_tissue(
            subject.image, records.dequantise_tissue(subject.tissue), ml_collections.ConfigDict(sim_config))
    return dataclasses.replace(subject, brain_means=brain_means)


def subject_index(subject_id: str) -> int:
    """A stable non-negative int32 for a subject id (the key of its per-subject draw)."""
    return zlib.crc32(subject_id.encode()) & 0x7FFFFFFF


def empty_patches(count: int, patch_size, margin: int) -> dict:
    """Room for `count` patches: hf float32, tissue uint8 (x 255), per-subject statistics."""
    window = (count, patch_size[0], patch_size[1], patch_size[2] + 2 * margin)
    return {"hf": np.empty(window, np.float32), "tissue": np.empty(window + (3,), np.uint8),
            "tissue_means": np.empty((count, 3), np.float32),
            "brain_means": np.empty((count, 3), np.float32), "subject": np.empty(count, np.int32)}


def extract_into(out: dict, rows, volume: Subject, corners, patch_size, margin: int) -> None:
    """Copies the windows at `corners` of `volume` into rows `rows` of `out`."""
    px, py, pz = patch_size[0], patch_size[1], patch_size[2] + 2 * margin
    for row, (x, y, z) in zip(rows, corners):
        window = (slice(x, x + px), slice(y, y + py), slice(z, z + pz))
        out["hf"][row] = volume.image[window]
        out["tissue"][row] = volume.tissue[window]
        out["tissue_means"][row] = volume.tissue_means
        out["brain_means"][row] = volume.brain_means
        out["subject"][row] = subject_index(volume.subject_id)


def to_float_batch(batch: dict) -> dict:
    """The device format: tissue as float32 probabilities."""
    return {"hf": np.asarray(batch["hf"], dtype=np.float32),
            "tissue": records.dequantise_tissue(np.asarray(batch["tissue"])),
            "tissue_means": np.asarray(batch["tissue_means"], dtype=np.float32),
            "brain_means": np.asarray(batch["brain_means"], dtype=np.float32),
            "subject": np.asarray(batch["subject"], dtype=np.int32)}

"""The stored record of one subject, and its round trip to a `Subject`.

A built dataset (`iqt.data.datasets`, TFDS ArrayRecord) holds one record per
subject (or per slab of the template):

| feature | shape, dtype | meaning |
| --- | --- | --- |
| `subject_id` | text | the subject's id |
| `image` | (x, y, z) float32, zlib | HF image divided by its robust scale |
| `tissue` | (x, y, z, 3) uint8, zlib | GM, WM, CSF probability x 255, rounded |
| `scale` | () float32 | the robust scale (99th brain percentile) |
| `tissue_means` | (3,) float32 | mean normalised GM, WM, CSF intensity (`simulators.tissue_means`) |
| `voxel_sizes_mm` | (3,) float32 | voxel spacing along x, y, z |
| `affine` | (4, 4) float64 | voxel -> world (mm) |

Tissue maps are quantised to 1/255 (error <= 0.002); `scale` and
`tissue_means` are computed from the unquantised maps.
"""
from __future__ import annotations

import numpy as np

import simulators
from iqt.data import normalization
from iqt.data.nifti import voxel_sizes_from_affine
from iqt.data.subject import TISSUE_LEVELS, Subject


def quantise_tissue(tissue: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 0-255 (rounded)."""
    return np.rint(np.clip(tissue, 0.0, 1.0) * TISSUE_LEVELS).astype(np.uint8)


def dequantise_tissue(tissue: np.ndarray) -> np.ndarray:
    """uint8 0-255 -> float32 probabilities in [0, 1]."""
    return tissue.astype(np.float32) * np.float32(1.0 / TISSUE_LEVELS)


def normalised(subject: Subject) -> Subject:
    """The subject as stored: image / robust scale, with its scale and tissue means."""
    mask = normalization.brain_mask(subject.image, subject.tissue)
    image, scale = normalization.normalise(subject.image, mask, name=f"subject {subject.subject_id}")
    return Subject(subject.subject_id, image, subject.tissue, subject.affine, scale=scale,
                   tissue_means=simulators.tissue_means(image, subject.tissue))


def encode(subject: Subject) -> dict:
    """One record of a normalised subject (`normalised`) with float tissue maps."""
    affine = np.asarray(subject.affine, dtype=np.float64)
    return {
        "subject_id": subject.subject_id,
        "image": np.ascontiguousarray(subject.image, dtype=np.float32),
        "tissue": quantise_tissue(subject.tissue),
        "scale": np.float32(subject.scale),
        "tissue_means": np.asarray(subject.tissue_means, dtype=np.float32),
        "voxel_sizes_mm": np.asarray(voxel_sizes_from_affine(affine), dtype=np.float32),
        "affine": affine,
    }


def decode(record: dict, *, quantised: bool = False) -> Subject:
    """A stored record as a `Subject`; tissue as float probabilities, or uint8 (x 255) if `quantised`."""
    tissue = record["tissue"] if quantised else dequantise_tissue(record["tissue"])
    return Subject(text(record["subject_id"]), record["image"], tissue, np.asarray(record["affine"]),
                   scale=float(record["scale"]),
                   tissue_means=np.asarray(record["tissue_means"], dtype=np.float32))


def text(value) -> str:
    """A TFDS text feature (bytes when decoded without TensorFlow) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)

"""Axis order inside the library: canonical (RAS) in-plane axes, the slice axis last.

`Reorientation` moves a volume's stored axes into the closest canonical order
with the slice axis last, and back, so that the storage order and flips of an
input do not change the enhanced anatomy.
"""
from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np


@dataclasses.dataclass(frozen=True)
class Reorientation:
    """Library axis k holds input axis `order[k]`; input axes with `flips[a]` are reversed."""

    order: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @classmethod
    def from_affine(cls, affine: np.ndarray, slice_axis: int) -> "Reorientation":
        """Closest canonical (RAS) orientation, in-plane axes in R-A-S order, slice axis last."""
        ornt = nib.orientations.io_orientation(np.asarray(affine))
        world_axis, sign = ornt[:, 0].astype(int), ornt[:, 1]
        in_plane = sorted((a for a in range(3) if a != slice_axis), key=lambda a: world_axis[a])
        return cls(order=(*in_plane, int(slice_axis)), flips=tuple(bool(s < 0) for s in sign))

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Input array (axes as stored) → library array (canonical, slice axis last)."""
        flipped = np.flip(data, axis=[a for a in range(3) if self.flips[a]])
        return np.ascontiguousarray(np.transpose(flipped, self.order))

    def invert(self, data: np.ndarray) -> np.ndarray:
        """Library array → input axes; the slice axis may have changed length (× r)."""
        unpermuted = np.transpose(data, np.argsort(self.order))
        return np.ascontiguousarray(np.flip(unpermuted, axis=[a for a in range(3) if self.flips[a]]))

    def affine(self, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The voxel → world affine of `apply(data)` for input `affine` and input `shape`."""
        to_input = np.zeros((4, 4))
        to_input[3, 3] = 1.0
        for k, a in enumerate(self.order):  # input index a = library index k (or its mirror)
            to_input[a, k] = -1.0 if self.flips[a] else 1.0
            to_input[a, 3] = shape[a] - 1 if self.flips[a] else 0.0
        return np.asarray(affine, dtype=np.float64) @ to_input

"""Random spatial augmentation of training patches: rotation, anisotropic scaling, elastic warp.

With `data.spatial_augment.enabled`, a training patch is no longer a copy of its
window: its voxels are sampled from the whole decoded volume at warped positions
(as in SynthSeg, Billot et al., Med. Image Anal. 86:102789, 2023, and SynthSR,
Iglesias et al., Sci. Adv. 9:eadd3607, 2023), so one training volume gives many
anatomies. For a window of `window = (X, Y, Z + 2 margin)` voxels at `corner`,
patch voxel p (volume coordinates) is sampled at

    c + D⁻¹ A D (p - c) + D⁻¹ d(p),    A = R S,

where c is the window's centre, D = diag(voxel sizes, mm) from the subject's
affine (the rotation and scaling act in mm, so non-cubic voxels are handled),
R a rotation by three angles about x, y and z (each uniform in ±`rotation_deg`),
S = diag(s) with each per-axis factor s log-uniform in `scale` (s > 1 samples a
larger region: the anatomy looks smaller), and d(p) a smooth displacement (mm):
independent N(0, `elastic_sd_mm`²) values on a control grid of
`elastic_spacing_mm` spacing centred on the window and covering it, interpolated
by cubic B-splines. The draws of a visit's patches come from one seeded
generator (`iqt.data.pipeline`, stream tag `_WARP`), patch after patch in corner
order: three angles, three log scales, then the control values.

Interpolation: the image by cubic B-splines (its spline coefficients computed
once per decoded volume, `WarpSource`), clipped at 0; the tissue maps linearly,
so that each warped voxel is a convex combination of stored voxels: each map
stays in [0, 1] and their sum at most 1 (at most that of the stored maps). They
are stored like the records' maps (x 255, uint8, rounded), except where rounding
would make the sum exceed 255: there each map is rounded down (after scaling the
sum to 255 if the stored maps exceeded it). Outside the volume both are 0
(background; for the template's slabs, cut through the brain, that is a flat
cut: at the demo's settings 9% of the warped patches reach past the training
slab, by 0.2% of their voxels on average). Per-subject statistics
(tissue_means, brain_means) are the volume's, unchanged.

The patch corners and the background rejection (`min_brain_fraction`) are those
of the un-warped window: a warped patch is centred on a window that holds enough
brain, but its own brain fraction can differ a little (demo: 1% of warped patches
fall just under 0.2, the lowest at 0.18).

Cost (demo: 24 x 24 x 60 voxels with the margin, 2 shared cores): ~25 ms of CPU
per patch, ~0.2 s per batch of 8 (cubic image ~15 ms, the three linear maps
~10 ms), against ~2 ms per batch for plain windows; `WarpSource` ~0.2 s per
decoded template slab (its float32 coefficients: 4 bytes per voxel, cached with
the volume). scipy.ndimage releases the GIL, so `worker_threads` can share the work.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import ml_collections
import numpy as np
from scipy import ndimage

from iqt.data.patches import subject_index
from iqt.data.subject import TISSUE_LEVELS, Subject
from iqt.errors import UserError

MAX_ROTATION_DEG = 45.0
FIELDS = ("enabled", "rotation_deg", "scale", "elastic_sd_mm", "elastic_spacing_mm")


# ----------------------------------------------------------------------------- settings

def _real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_config(section, hf_voxel_mm: float | None = None) -> None:
    """Validates `data.spatial_augment` (None: absent, i.e. off); a bad field is a `UserError` naming it.

    `hf_voxel_mm` (sim.hf_voxel_mm), when given, bounds the control-point spacing from below.
    """
    if section is None:
        return
    if not isinstance(section, ml_collections.ConfigDict):
        raise UserError(f"data.spatial_augment must be a mapping of {', '.join(FIELDS)}, found {section!r}")
    missing = [f for f in FIELDS if f not in section]
    if missing:
        raise UserError(f"data.spatial_augment lacks {', '.join(missing)}; it needs {', '.join(FIELDS)}")
    name = "data.spatial_augment."
    if not isinstance(section.enabled, bool):
        raise UserError(f"{name}enabled={section.enabled!r} must be true or false")
    rotation = section.rotation_deg
    if not (_real(rotation) and 0.0 <= rotation <= MAX_ROTATION_DEG):
        raise UserError(f"{name}rotation_deg={rotation!r} must be a number of degrees in [0, {MAX_ROTATION_DEG:g}]")
    scale = section.scale
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2 and all(_real(s) and s > 0 for s in scale)
            and scale[0] <= scale[1]):
        raise UserError(f"{name}scale={scale!r} must be two finite factors (low, high) with 0 < low <= high")
    if not (_real(section.elastic_sd_mm) and section.elastic_sd_mm >= 0):
        raise UserError(f"{name}elastic_sd_mm={section.elastic_sd_mm!r} must be a finite number of mm >= 0")
    spacing, lowest = section.elastic_spacing_mm, 0.0 if hf_voxel_mm is None else float(hf_voxel_mm)
    if not (_real(spacing) and spacing > 0 and spacing >= lowest):
        bound = "> 0" if hf_voxel_mm is None else f">= the HF voxel size sim.hf_voxel_mm={lowest:g}"
        raise UserError(f"{name}elastic_spacing_mm={spacing!r} must be a finite number of mm {bound}")


@dataclasses.dataclass(frozen=True, eq=False)
class Warp:
    """One patch's warp: `matrix` A = R S (3, 3), acting on mm offsets from the window's centre, and
    `control` (3, a, b, c), the displacement's control values in mm (None: no displacement)."""

    matrix: np.ndarray
    control: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class SpatialAugment:
    """The distribution of warps (`data.spatial_augment`, validated); picklable."""

    rotation_deg: float
    scale: tuple[float, float]
    elastic_sd_mm: float
    elastic_spacing_mm: float

    @classmethod
    def from_config(cls, section) -> SpatialAugment | None:
        """The settings of an enabled section; None when it is off or absent (configs saved before it)."""
        check_config(section)
        if section is None or not section.enabled:
            return None
        return cls(rotation_deg=float(section.rotation_deg), scale=tuple(float(s) for s in section.scale),
                   elastic_sd_mm=float(section.elastic_sd_mm), elastic_spacing_mm=float(section.elastic_spacing_mm))

    def draw(self, gen: np.random.Generator, count: int, window, voxel_mm) -> list[Warp]:
        """`count` warps for windows of `window` voxels of `voxel_mm`, drawn in order from `gen`."""
        low, high = np.log(self.scale)
        grid = control_grid_shape(window, voxel_mm, self.elastic_spacing_mm)
        warps = []
        for _ in range(count):
            angles = gen.uniform(-self.rotation_deg, self.rotation_deg, 3)
            scales = np.exp(gen.uniform(low, high, 3))
            control = gen.normal(0.0, self.elastic_sd_mm, (3,) + grid) if self.elastic_sd_mm > 0 else None
            warps.append(Warp(rotation_matrix(angles) * scales[None, :], control))
        return warps


def rotation_matrix(angles_deg) -> np.ndarray:
    """R = Rz(γ) Ry(β) Rx(α) for angles (α, β, γ) in degrees about x, y, z (right-handed)."""
    a, b, g = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


# ----------------------------------------------------------------------------- geometry

def control_grid_shape(window, voxel_mm, spacing_mm: float) -> tuple[int, int, int]:
    """Control points per axis: spaced `spacing_mm` apart, centred on the window, covering it (>= 2)."""
    return tuple(max(2, math.ceil((n - 1) * v / spacing_mm - 1e-9) + 1) for n, v in zip(window, voxel_mm))


@functools.lru_cache(maxsize=64)
def _spline_weights(size: int, points: int, step: float) -> np.ndarray:
    """(size, points): cubic B-spline interpolation (mirror boundary) from `points` control values
    `step` voxels apart, centred, to the `size` voxels of an axis (a linear map)."""
    t = (np.arange(size) - (size - 1) / 2.0) / step + (points - 1) / 2.0
    weights = np.stack([ndimage.map_coordinates(np.eye(points)[k], t[None], order=3, mode="mirror")
                        for k in range(points)], axis=1)
    weights.flags.writeable = False
    return weights


def displacement_mm(control: np.ndarray, window, voxel_mm, spacing_mm: float) -> np.ndarray:
    """The smooth displacement (3, *window) in mm interpolated from its control values (3, a, b, c)."""
    wx, wy, wz = (_spline_weights(int(n), int(p), spacing_mm / float(v))
                  for n, p, v in zip(window, control.shape[1:], voxel_mm))
    return np.einsum("xa,yb,zc,kabc->kxyz", wx, wy, wz, control, optimize=True)


def sampling_coordinates(corner, window, matrix: np.ndarray, voxel_mm=(1.0, 1.0, 1.0),
                         displacement: np.ndarray | None = None) -> np.ndarray:
    """Volume coordinates (3, *window) where the warped window's voxels are sampled:
    c + D⁻¹ A D (p - c) + D⁻¹ d(p), for p over the window at `corner`, c its centre,
    A = `matrix`, D = diag(`voxel_mm`), d = `displacement` (3, *window) in mm."""
    size = np.asarray(window, dtype=np.float64)
    centre = np.asarray(corner, dtype=np.float64) + (size - 1) / 2.0
    voxel = np.asarray(voxel_mm, dtype=np.float64)
    in_voxels = matrix * voxel[None, :] / voxel[:, None]  # D⁻¹ A D
    axes = [np.arange(int(n), dtype=np.float64) - (n - 1) / 2.0 for n in size]
    coords = np.empty((3,) + tuple(int(n) for n in size))
    for i in range(3):
        coords[i] = (centre[i] + in_voxels[i, 0] * axes[0][:, None, None] + in_voxels[i, 1] * axes[1][None, :, None]
                     + in_voxels[i, 2] * axes[2][None, None, :])
    if displacement is not None:
        coords += displacement / voxel[:, None, None, None]
    return coords


# ----------------------------------------------------------------------------- sampling

def spline_coefficients(image: np.ndarray) -> np.ndarray:
    """The image's cubic B-spline coefficients (float32), for `sample_image`."""
    return ndimage.spline_filter(np.asarray(image, dtype=np.float32), order=3, output=np.float32, mode="constant")


def sample_image(coefficients: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Cubic B-spline interpolation at `coords` (0 outside the volume), clipped at 0 (float32)."""
    out = ndimage.map_coordinates(coefficients, coords, order=3, mode="constant", cval=0.0, prefilter=False,
                                  output=np.float32)
    return np.maximum(out, 0.0, out=out)


def sample_tissue_levels(tissue: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of tissue maps (..., 3), stored (uint8, x 255) or probabilities, at
    `coords` (0 outside): (*coords.shape[1:], 3) float32 in units of 1/255, each voxel a convex
    combination of the map's voxels."""
    out = np.empty(coords.shape[1:] + (tissue.shape[-1],), np.float32)
    for k in range(tissue.shape[-1]):
        out[..., k] = ndimage.map_coordinates(tissue[..., k], coords, order=1, mode="constant", cval=0.0,
                                              output=np.float32)
    if tissue.dtype != np.uint8:
        out *= np.float32(TISSUE_LEVELS)
    return out


def quantise_levels(levels: np.ndarray) -> np.ndarray:
    """Maps in units of 1/255 (..., 3) -> uint8, rounded, with the sum of the three at most 255:
    where rounding would exceed it, each is rounded down from the maps scaled to sum <= 255."""
    levels = np.clip(levels, 0.0, TISSUE_LEVELS)
    rounded = np.rint(levels)
    over = rounded.sum(axis=-1) > TISSUE_LEVELS
    if np.any(over):
        values = levels[over].astype(np.float64)
        total = values.sum(axis=-1, keepdims=True)
        rounded[over] = np.floor(values * np.minimum(1.0, TISSUE_LEVELS / total))
    return rounded.astype(np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class WarpSource:
    """What warping needs of a decoded volume, computed once per decode: the image's spline
    coefficients and the voxel sizes (mm, from the affine)."""

    coefficients: np.ndarray
    voxel_mm: tuple[float, float, float]

    @classmethod
    def of(cls, subject: Subject) -> WarpSource:
        return cls(spline_coefficients(subject.image), subject.voxel_sizes_mm)


def warp_patch(volume: Subject, source: WarpSource, corner, window, warp: Warp,
               spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The warped window at `corner`: hf (*window) float32, tissue (*window, 3) uint8 (x 255)."""
    displacement = (None if warp.control is None
                    else displacement_mm(warp.control, window, source.voxel_mm, spacing_mm))
    coords = sampling_coordinates(corner, window, warp.matrix, source.voxel_mm, displacement)
    return (sample_image(source.coefficients, coords),
            quantise_levels(sample_tissue_levels(volume.tissue, coords)))


def warp_into(out: dict, rows, volume: Subject, source: WarpSource, corners, warps, patch_size, margin: int,
              spacing_mm: float) -> None:
    """Like `iqt.data.patches.extract_into`, with each window warped by its warp."""
    window = (patch_size[0], patch_size[1], patch_size[2] + 2 * margin)
    for row, corner, warp in zip(rows, corners, warps):
        out["hf"][row], out["tissue"][row] = warp_patch(volume, source, corner, window, warp, spacing_mm)
        out["tissue_means"][row] = volume.tissue_means
        out["brain_means"][row] = volume.brain_means
        out["subject"][row] = subject_index(volume.subject_id)

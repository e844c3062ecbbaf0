"""Tiling a volume for a fully convolutional network: overlapping tiles and their blend.

Along each axis, tiles of one size start on multiples of the network's
pooling factor (so every tile pools on the same grid) and overlap their
neighbours by at least 2 · margin + fade, fade = max(1, margin // 2). A
tile's prediction is not trusted within `margin` voxels of an edge it shares
with another tile (the network lacked context there); across the rest of an
overlap, at least `fade` voxels, the two tiles are cross-faded with a raised-cosine (Hann) ramp, smooth at both ends
so that no seam shows. The weights of all tiles sum to one at every voxel, so
the blend is a weighted sum with no normalisation. Among the tilings with tiles no larger
than asked, the plan computes the fewest voxels.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Iterator

import numpy as np

from iqt.errors import UserError

DEFAULT_TILE_LF = (272, 272, 32)     # largest tile, LF voxels (x, y, slices)
DEFAULT_MARGIN_LF = (8, 8, 2)        # context discarded at a tile edge shared with another tile


def check_tile_size(tile) -> tuple[int, int, int]:
    """A user's largest tile (x, y, slices in LF voxels): three positive integers."""
    try:
        sizes = tuple(int(str(n)) for n in tile)
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1:
        shown = ",".join(map(str, tile))
        raise UserError(f"--tile must be three positive integers X,Y,Z (LF voxels), got {shown}")
    return sizes


def grow_tile(tile_lf, margin_lf, multiple) -> tuple[int, int, int]:
    """`tile_lf`, grown (with a warning) to the smallest tile that tiles any length:
    2 · margin + fade + the network's input multiple, rounded up to that multiple."""
    smallest = tuple(-(-(2 * m + fade(m) + k) // k) * k for m, k in zip(margin_lf, multiple))
    grown = tuple(max(int(t), s) for t, s in zip(tile_lf, smallest))
    if grown != tuple(int(t) for t in tile_lf):
        logging.warning("--tile %s is smaller than its margins %s allow; using %s",
                        ",".join(map(str, tile_lf)), ",".join(map(str, margin_lf)), ",".join(map(str, grown)))
    return grown


@dataclasses.dataclass(frozen=True)
class AxisTiling:
    """Tiles of `size` voxels at `starts` along one axis padded to `padded` voxels."""

    length: int
    padded: int
    size: int
    starts: tuple[int, ...]
    margin: int

    def weights(self, scale: int = 1) -> list[np.ndarray]:
        """Each tile's 1-D blending weights, with `scale` output voxels per input voxel.

        Tile i hands over to tile i + 1 along a raised-cosine ramp across their
        overlap less a margin at both ends, so the weights of all tiles sum to one
        everywhere.
        """
        n = self.size * scale
        weights = [np.ones(n, np.float32) for _ in self.starts]
        for i, (left, right) in enumerate(zip(self.starts, self.starts[1:])):
            lo, hi = (right + self.margin) * scale, (left + self.size - self.margin) * scale

            def share_of_right(start: int) -> np.ndarray:
                centres = start * scale + np.arange(n) + 0.5     # voxel centres on the padded axis
                t = np.clip((centres - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
                return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)

            weights[i] *= 1.0 - share_of_right(left)
            weights[i + 1] *= share_of_right(right)
        return weights


def _spread_starts(padded: int, size: int, count: int, multiple: int) -> tuple[int, ...]:
    if count == 1:
        return (0,)
    steps = (padded - size) // multiple
    return tuple(multiple * round(i * steps / (count - 1)) for i in range(count))


def fade(margin: int) -> int:
    """Voxels over which two tiles cross-fade, beyond the margins they discard (none without margins)."""
    return max(1, margin // 2) if margin else 0


def _valid(starts: tuple[int, ...], size: int, margin: int) -> bool:
    """Neighbours overlap by at least 2 · margin + fade, and one cross-fade ends before the next begins."""
    steps = [b - a for a, b in zip(starts, starts[1:])]
    overlaps_ok = all(0 < d <= size - 2 * margin - fade(margin) for d in steps)
    return overlaps_ok and all(d + e >= size - 2 * margin for d, e in zip(steps, steps[1:]))


def plan_axis(length: int, max_size: int, margin: int, multiple: int = 1) -> AxisTiling:
    """The fewest computed voxels covering `length` with tiles of at most `max_size` voxels."""
    padded = -(-length // multiple) * multiple
    cap = min(max_size // multiple * multiple, padded)
    if cap == padded:
        return AxisTiling(length, padded, padded, (0,), margin)
    best, best_total = None, None
    for count in range(2, padded // multiple + 2):
        lower = -(-(padded + (count - 1) * (2 * margin + fade(margin))) // (count * multiple)) * multiple
        if best_total is not None and count * lower >= best_total:
            break  # more tiles can only compute more voxels from here on
        for size in range(lower, cap + 1, multiple):
            starts = _spread_starts(padded, size, count, multiple)
            if _valid(starts, size, margin):
                if best_total is None or count * size < best_total:
                    best, best_total = (size, starts), count * size
                break
    if best is None:
        raise ValueError(f"no tiling of {length} voxels with tiles of at most {max_size} and margin "
                         f"{margin}: make the tile larger")
    return AxisTiling(length, padded, best[0], best[1], margin)


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """The tiling of an LF volume, axis by axis (the slice axis last)."""

    axes: tuple[AxisTiling, AxisTiling, AxisTiling]

    @property
    def num_tiles(self) -> int:
        return int(np.prod([len(a.starts) for a in self.axes]))

    @property
    def overlap_waste(self) -> float:
        """Voxels computed / voxels kept: the cost of overlaps and padding."""
        return float(np.prod([len(a.starts) * a.size / a.length for a in self.axes]))

    def slice_borders_lf(self) -> list[int]:
        """LF slice indices where one tile starts or ends handing over to the next along the
        slices (the ends of each cross-fade), strictly inside the volume, sorted.

        Index b means a border between LF slices b - 1 and b (HF slices r·b - 1
        and r·b): where a seam would show.
        """
        a = self.axes[2]
        edges = {e for left, right in zip(a.starts, a.starts[1:])
                 for e in (right + a.margin, left + a.size - a.margin)}
        return sorted(int(e) for e in edges if 0 < e < a.length)


def plan_tiles(shape: tuple[int, int, int], tile_lf=DEFAULT_TILE_LF, margin_lf=DEFAULT_MARGIN_LF,
               multiple=(1, 1, 1)) -> TilePlan:
    """Plans tiles for an LF volume of `shape` (x, y, z_lf)."""
    return TilePlan(tuple(plan_axis(*args) for args in zip(shape, tile_lf, margin_lf, multiple)))


@dataclasses.dataclass(frozen=True)
class Tile:
    """Where one tile is cut from (LF) and added to (HF), with its per-axis weights."""

    lf_slices: tuple[slice, slice, slice]     # into the padded LF volume
    hf_slices: tuple[slice, slice, slice]     # into the padded HF output
    weights: tuple[np.ndarray, np.ndarray, np.ndarray]


def iter_tiles(plan: TilePlan, factor: int) -> Iterator[Tile]:
    """Every tile of the plan; the slice axis has `factor` HF voxels per LF voxel."""
    scales = (1, 1, factor)
    per_axis = [list(zip(axis.starts, axis.weights(scale))) for axis, scale in zip(plan.axes, scales)]
    for combo in itertools.product(*per_axis):
        lf = tuple(slice(s, s + a.size) for (s, _), a in zip(combo, plan.axes))
        hf = tuple(slice(s * k, (s + a.size) * k) for (s, _), a, k in zip(combo, plan.axes, scales))
        yield Tile(lf, hf, tuple(w for _, w in combo))


def iter_tile_batches(volume: np.ndarray, tiles: Iterator[Tile], batch_size: int
                      ) -> Iterator[tuple[np.ndarray, list[Tile]]]:
    """Batches of `batch_size` tiles cut from `volume`; the last is filled up by repetition."""
    while batch := list(itertools.islice(tiles, batch_size)):
        cut = [volume[t.lf_slices] for t in batch]
        cut += cut[-1:] * (batch_size - len(cut))
        yield np.stack(cut).astype(np.float32, copy=False), batch

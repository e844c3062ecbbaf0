"""Checks that a DICOM series is one regular stack of slices, before it is read as a grid.

SimpleITK's series reader places the files it is given on a regular grid: the
spacing between the first two slices, the first slice's orientation. A series
with a duplicate or missing slice, irregular spacing, slices of several
orientations or a gantry tilt would be read with slices millimetres from where
they were acquired, and a file GDCM cannot read is left out of the series
without a word. Each of these is refused in one line that names the file:

- every file of the folder that looks like a slice (a `.dcm`/`.ima` name, no
  extension, the series' own extension, or the DICOM preamble) is in a series;
- one image orientation (0020,0037) for all slices, within `ORIENTATION_TOL`;
- slice positions (0020,0032) along the slice normal n = row × column: no two
  within `DUPLICATE_MM`, and every step within `SPACING_TOL` of the median step
  (a missing slice shows as a double step);
- positions on a line along n (no gantry tilt or shear): each slice's offset
  from the first, less its part along n, under `SHEAR_MM`.

References: DICOM PS3.3 C.7.6.2 (Image Plane Module) for the meaning of the
tags; the same checks as dcm2niix's slice-position and gantry-tilt warnings
(Li et al., J Neurosci Methods 2016).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from iqt.errors import UserError

ORIENTATION_TOL = 1e-3   # largest difference of direction cosines between slices
DUPLICATE_MM = 0.01      # two slices closer than this along the normal are one position twice
SPACING_TOL = 0.05       # largest relative deviation of a step from the median step
SHEAR_MM = 0.1           # largest offset of a slice off the normal through the first slice
_POSITION, _ORIENTATION = "0020|0032", "0020|0037"
_SLICE_SUFFIXES = {"", ".dcm", ".ima", ".dicom"}


def _numbers(reader: sitk.ImageFileReader, key: str, count: int, name: str) -> np.ndarray | None:
    if not reader.HasMetaDataKey(key):
        return None
    try:
        values = np.array([float(v) for v in reader.GetMetaData(key).split("\\")])
    except ValueError:
        values = np.array([])
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise UserError(f"DICOM file {name} has a malformed tag ({key.replace('|', ',')}): "
                        f"{reader.GetMetaData(key)!r}")
    return values


def slice_planes(files: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(positions (n, 3), orientations (n, 6)) of the files in mm (LPS), or None if a tag is absent."""
    reader = sitk.ImageFileReader()
    positions, orientations = [], []
    for path in files:
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            raise UserError(f"DICOM file {path} cannot be read; restore it or move it out of the folder") from None
        position = _numbers(reader, _POSITION, 3, Path(path).name)
        orientation = _numbers(reader, _ORIENTATION, 6, Path(path).name)
        if position is None or orientation is None:
            return None
        positions.append(position)
        orientations.append(orientation)
    return np.array(positions), np.array(orientations)


def check_slice_geometry(files: Sequence[str], label: str) -> None:
    """Refuses (`UserError`) a series that is not one regular stack; see the module docstring."""
    planes = slice_planes(files) if len(files) > 1 else None
    if planes is None:
        return   # one multi-frame file, or no per-slice geometry: the reader's grid is all there is
    positions, orientations = planes
    names = [Path(f).name for f in files]
    odd = np.flatnonzero(np.abs(orientations - orientations[0]).max(axis=1) > ORIENTATION_TOL)
    if odd.size:
        raise UserError(f"DICOM series {label} mixes slice orientations: {names[odd[0]]} differs from "
                        f"{names[0]}; export each orientation as its own series")
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    steps = np.diff(depth[order])
    twice = np.flatnonzero(steps < DUPLICATE_MM)
    if twice.size:
        a, b = order[twice[0]], order[twice[0] + 1]
        raise UserError(f"DICOM series {label} has two slices at one position ({depth[a]:.2f} mm along the "
                        f"normal): {names[a]} and {names[b]}; remove the duplicate")
    median = float(np.median(steps))
    irregular = np.flatnonzero(np.abs(steps - median) > SPACING_TOL * median)
    if irregular.size:
        a, b = order[irregular[0]], order[irregular[0] + 1]
        raise UserError(f"DICOM series {label} has irregular slice spacing: {steps[irregular[0]]:.2f} mm from "
                        f"{names[a]} to {names[b]} where the median is {median:.2f} mm (a missing or "
                        f"moved slice?); the slices must be evenly spaced")
    offsets = positions[order] - positions[order[0]]
    shear = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
    if shear.max() > SHEAR_MM:
        worst = order[int(np.argmax(shear))]
        raise UserError(f"DICOM series {label} is tilted or sheared (gantry tilt): {names[worst]} lies "
                        f"{shear.max():.2f} mm off the slice normal through {names[order[0]]}; resample it "
                        f"to an orthogonal grid first (for example with dcm2niix)")


def _looks_like_a_slice(path: Path, suffixes: set[str]) -> bool:
    if path.suffix.lower() in _SLICE_SUFFIXES | suffixes:
        return True
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def check_all_files_read(folder: Path, series_files: Sequence[str]) -> None:
    """Refuses a folder with a slice-like file that is in no series (GDCM leaves unreadable files out)."""
    used = {os.path.realpath(f) for f in series_files}
    suffixes = {Path(f).suffix.lower() for f in series_files}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if os.path.realpath(path) not in used and _looks_like_a_slice(path, suffixes):
            raise UserError(f"{path} is not a readable DICOM image ({path.stat().st_size} bytes; damaged or "
                            f"incomplete?), so its slice would be missing; restore it or move it out of "
                            f"{folder}")

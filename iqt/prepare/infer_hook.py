"""`launch.infer`'s use of the preparation: its input checks, and `--prepare` in memory.

The input checks follow `launch.prepare`'s rules: a slice spacing (and, for a
scan that is not resampled, an in-plane voxel size) more than 15 % away from
the run's training grid is an error unless allowed; a non-zero background
without a mask is a warning.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from iqt.data.nifti import Volume, load_volume
from iqt.io_utils import atomic_write_text
from iqt.prepare.brain import has_nonzero_background
from iqt.prepare.pipeline import STEPS, Prepared, prepare_volume
from iqt.prepare.spacing import TrainingGrid, check_spacing


def training_grid(workdir: str | os.PathLike) -> TrainingGrid | None:
    """The run's training grid, or None where `workdir` holds no config.json (loading it will say so)."""
    if not (Path(workdir) / "config.json").is_file():
        return None
    return TrainingGrid.from_workdir(workdir)


def check_scan(volume: Volume, slice_axis: int, grid: TrainingGrid | None, *, has_mask: bool,
               allow_spacing_mismatch: bool = False, prepared: bool = False, name: str = "input") -> list[str]:
    """One-line warnings about a scan; a spacing mismatch is a `UserError` unless allowed.

    A scan that `launch.prepare` will resample (`prepared`) has only its slice
    spacing checked; otherwise the in-plane voxels too. A background that is
    not zero, without a mask, means the scan was not skull-stripped.
    """
    warnings = []
    if grid is not None:
        warnings += check_spacing(volume.voxel_sizes_mm, slice_axis, grid, allow_mismatch=allow_spacing_mismatch,
                                  check_in_plane=not prepared, name=name)
    if not has_mask and not prepared and has_nonzero_background(volume.data, slice_axis):
        warnings.append(f"warning: {name} has a non-zero background (not skull-stripped?): the skull and the "
                        f"background will be enhanced too; pass --mask BRAIN.nii.gz, or --prepare")
    return warnings


def warn(warnings: list[str]) -> None:
    """Prints each one-line warning on stderr."""
    for line in warnings:
        print(line, file=sys.stderr, flush=True)


def report_path(output: str | os.PathLike) -> Path:
    """OUT.nii.gz → OUT_prepare.json, where `launch.infer --prepare` records the preparation."""
    output = Path(output)
    stem = output.name[:-len(".nii.gz")] if output.name.endswith(".nii.gz") else output.stem
    return output.with_name(f"{stem}_prepare.json")


def prepare_for(source: str | os.PathLike, output: str | os.PathLike, mask_path: str | os.PathLike | None,
                grid: TrainingGrid | None, slice_axis: int | None, sequence: str,
                allow_spacing_mismatch: bool) -> Prepared:
    """Prepares `source` in memory (every step; no resampling without a grid) and writes its JSON report."""
    mask = load_volume(mask_path, name="brain mask") if mask_path is not None else None
    steps = [s for s in STEPS if s != "resample" or grid is not None]
    prepared = prepare_volume(load_volume(source, name="low-field input"), steps=steps, sequence=sequence,
                              mask=mask, grid=grid, slice_axis=slice_axis, source={"file": str(source)},
                              allow_spacing_mismatch=allow_spacing_mismatch)
    atomic_write_text(report_path(output), json.dumps(prepared.report, indent=2) + "\n")
    return prepared

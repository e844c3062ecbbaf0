"""What `launch.infer` checks of a scan before enhancing it, with the rules of `launch.prepare`."""
from __future__ import annotations

import os
from pathlib import Path

from iqt.data.nifti import Volume
from iqt.prepare.brain import has_nonzero_background
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
    if not has_mask and not prepared and has_nonzero_background(volume.data):
        warnings.append(f"warning: {name} has a non-zero background (not skull-stripped?): the skull and the "
                        f"background will be enhanced too; pass --mask BRAIN.nii.gz, or --prepare")
    return warnings

"""`launch.prepare`: the preparation steps in order, what each did, and the files written.

    scan → [n4] bias-field correction in the head → [brain] extraction (or the given mask)
         → [crosstalk] slice histograms matched (T1w) → background zeroed
         → [resample] in-plane voxels of the training run

Every step records its parameters and seconds in `Prepared.report` (the JSON
written beside the output).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from iqt import figures
from iqt.data.nifti import (MASK_SUFFIX, Volume, check_same_grid, find_slice_axis, nifti_stem, save_volume,
                            voxel_sizes_from_affine)
from iqt.errors import UserError
from iqt.io_utils import atomic_paths
from iqt.prepare.bias import n4_correct
from iqt.prepare.brain import extract_brain, head_mask
from iqt.prepare.crosstalk import correct_crosstalk
from iqt.prepare.spacing import TrainingGrid, check_spacing, resample_in_plane

STEPS = ("n4", "brain", "crosstalk", "resample")
SEQUENCES = ("T1w", "T2w", "FLAIR")   # simulators.SEQUENCES, without importing JAX (tests/prepare)


@dataclasses.dataclass(frozen=True, eq=False)
class Prepared:
    """A prepared scan: the image (a `Volume`), its brain mask (bool, same grid) and the report."""

    volume: Volume
    mask: np.ndarray
    report: dict


def parse_steps(steps: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'n4,brain' (or a list) → ('n4', 'brain'); 'none' or '' → (); unknown names are a `UserError`."""
    names = [s.strip() for s in (steps.split(",") if isinstance(steps, str) else steps) if s.strip()]
    names = [] if names == ["none"] else names
    unknown = [s for s in names if s not in STEPS]
    if unknown:
        raise UserError(f"unknown step {unknown[0]!r} in --steps; choose from {','.join(STEPS)} (or none)")
    return tuple(s for s in STEPS if s in names)


@contextlib.contextmanager
def _step(report: dict, name: str, parameters: dict):
    """Times a step and records it with the peak memory so far (the step fills `parameters` in)."""
    start = time.perf_counter()
    yield parameters
    report["steps"].append({"name": name, "seconds": round(time.perf_counter() - start, 3),
                            "peak_memory_mb": peak_memory_mb(), "parameters": parameters})


def peak_memory_mb() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def prepare_volume(volume: Volume, *, steps=STEPS, sequence: str = "T1w", mask: Volume | None = None,
                   grid: TrainingGrid | None = None, slice_axis: int | None = None,
                   allow_spacing_mismatch: bool = False, source: dict | None = None) -> Prepared:
    """Runs the chosen `steps` on `volume` (see the module docstring); every user error comes first."""
    if sequence not in SEQUENCES:
        raise UserError(f"--sequence must be one of {', '.join(SEQUENCES)}, got {sequence!r}")
    steps = parse_steps(steps)
    sizes = volume.voxel_sizes_mm
    axis = find_slice_axis(sizes, slice_axis)
    if mask is not None:
        check_same_grid(volume, {"brain mask": mask})
    if "resample" in steps and grid is None:
        raise UserError("the resample step needs a training run: pass --workdir RUN (or leave resample "
                        "out of --steps)")
    warnings = check_spacing(sizes, axis, grid, allow_mismatch=allow_spacing_mismatch) if grid else []
    report = {"input": source or {}, "sequence": sequence, "slice_axis": axis, "shape_in": list(volume.data.shape),
              "voxel_sizes_mm_in": list(sizes), "steps": [], "warnings": warnings}
    if grid is not None:
        report["training_grid"] = dataclasses.asdict(grid)
    start = time.perf_counter()
    data, brain = _intensities_and_brain(volume, steps, sequence, mask, axis, report)
    affine = volume.affine
    if "resample" in steps:
        data, brain, affine = _resample(data, brain, affine, axis, grid.in_plane_mm, report)
    report.update(shape_out=list(data.shape), voxel_sizes_mm_out=list(voxel_sizes_from_affine(affine)),
                  seconds=round(time.perf_counter() - start, 3))
    return Prepared(Volume(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine,
                           header=volume.header), brain, report)


def _intensities_and_brain(volume: Volume, steps, sequence: str, mask: Volume | None, axis: int,
                           report: dict) -> tuple[np.ndarray, np.ndarray]:
    """N4, the brain mask (extracted or given) and cross-talk: (image zero outside the brain, brain)."""
    data, sizes, head, brain = volume.data, volume.voxel_sizes_mm, None, None
    if "n4" in steps:
        with _step(report, "n4", {}) as parameters:
            head = head_mask(data, sizes, axis)
            data, _, fitted = n4_correct(data, sizes, head)
            parameters.update(fitted, head_voxels=int(head.sum()))
    if mask is not None:
        brain = mask.data > 0
        report["steps"].append({"name": "brain", "seconds": 0.0,
                                "parameters": {"method": "given mask", "brain_voxels": int(brain.sum())}})
    elif "brain" in steps:
        with _step(report, "brain", {}) as parameters:
            brain, found = extract_brain(data, sizes, axis, head=head)
            parameters.update(found)
    if "crosstalk" in steps and sequence == "T1w":
        with _step(report, "crosstalk", {}) as parameters:
            data, matched = correct_crosstalk(data, data > 0 if brain is None else brain, axis)
            parameters.update(matched)
    elif "crosstalk" in steps:
        report["steps"].append({"name": "crosstalk", "seconds": 0.0,
                                "parameters": {"skipped": f"cross-talk correction is for T1w, not {sequence}"}})
    if brain is None:
        return data, data > 0
    return np.where(brain, data, 0.0).astype(np.float32), brain   # skull-stripped, as in training


def _resample(data: np.ndarray, brain: np.ndarray, affine: np.ndarray, axis: int, target_mm: float,
              report: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image and its brain mask on in-plane voxels `target_mm` wide: (image, brain, affine)."""
    with _step(report, "resample", {"target_in_plane_mm": target_mm}) as parameters:
        data, new_affine = resample_in_plane(data, affine, axis, target_mm)
        resampled_mask, _ = resample_in_plane(brain.astype(np.float32), affine, axis, target_mm)
        brain = resampled_mask > 0.5
        data = np.where(brain, np.maximum(data, 0.0), 0.0).astype(np.float32)
        parameters.update(interpolation="linear, Gaussian anti-aliasing when downsampling")
    return data, brain, new_affine


# --- files ------------------------------------------------------------------------------------

def output_paths(output: str | os.PathLike) -> dict[str, Path]:
    """OUT.nii.gz → the prepared image, OUT_brainmask.nii.gz, OUT.json and OUT.png."""
    output = Path(output)
    stem = nifti_stem(output)
    if stem is None:
        raise UserError(f"output {output} must end in .nii or .nii.gz")
    suffix = output.name[len(stem):]
    return {"image": output, "mask": output.with_name(f"{stem}{MASK_SUFFIX}{suffix}"),
            "report": output.with_name(f"{stem}.json"), "figure": output.with_name(f"{stem}.png")}


def _slices_last(data: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, float]:
    sizes = voxel_sizes_from_affine(affine)
    in_plane = [s for a, s in enumerate(sizes) if a != axis]
    return np.moveaxis(data, axis, -1), float(sizes[axis] / in_plane[0])


def save_figure(path: str | os.PathLike, before: Volume, prepared: Prepared, title: str = "") -> None:
    """Before and after in three planes."""
    axis = prepared.report["slice_axis"]
    figures.save_comparison(path, {"before": _slices_last(before.data, before.affine, axis),
                                   "prepared": _slices_last(prepared.volume.data, prepared.volume.affine, axis)},
                            title=title)


def write_prepared(output: str | os.PathLike, before: Volume, prepared: Prepared) -> dict[str, Path]:
    """Writes the prepared image, its brain mask, the JSON report and the figure; returns their paths."""
    paths = output_paths(output)
    with atomic_paths(paths.values()) as temporary:   # all four files, or none
        tmp = dict(zip(paths, temporary))
        save_volume(tmp["image"], prepared.volume.data, prepared.volume.affine, header=prepared.volume.header)
        save_volume(tmp["mask"], prepared.mask.astype(np.float32), prepared.volume.affine,
                    header=prepared.volume.header)
        tmp["report"].write_text(json.dumps(prepared.report, indent=2) + "\n")
        save_figure(tmp["figure"], before, prepared, title=f"{paths['image'].name}: before and after preparation")
    return paths

"""Prepare a low-field scan for enhancement: DICOM or NIfTI in, a skull-stripped NIfTI out.

    python -m launch.prepare --input DICOM_FOLDER --output PREPARED.nii.gz --workdir RUN
    python -m launch.prepare --input SCAN.nii.gz --output PREPARED.nii.gz --workdir RUN --sequence T2w

Steps (each can be left out with --steps): n4 (bias-field correction),
brain (extraction, or --mask), crosstalk (T1w only), resample (in-plane to the
run's training voxels; the slice spacing is checked against the run's).
Writes PREPARED.nii.gz, PREPARED_brainmask.nii.gz, PREPARED.json (each step's
parameters and seconds) and PREPARED.png (before and after in three planes).
A folder holding several DICOM series lists them; choose one with --series.
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from iqt import cli
from iqt.prepare.pipeline import SEQUENCES, STEPS

_INPUT = flags.DEFINE_string("input", None, "A NIfTI file or a folder of DICOM files.")
_OUTPUT = flags.DEFINE_string("output", None, "The prepared image, .nii or .nii.gz.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training run whose voxel size and slice spacing the scan "
                               "is checked against and resampled to (needed by the resample step).")
_SEQUENCE = flags.DEFINE_enum("sequence", "T1w", list(SEQUENCES), "The scan's contrast.")
_STEPS = flags.DEFINE_string("steps", ",".join(STEPS), "Steps to run, comma-separated, "
                             f"from {','.join(STEPS)} (or none).")
_MASK = flags.DEFINE_string("mask", None, "A brain mask on the scan's grid (non-zero = brain), used "
                            "instead of brain extraction.")
_SERIES = flags.DEFINE_string("series", None, "The DICOM series to read (its number or description), "
                              "where the folder holds several.")
_SLICE_AXIS = flags.DEFINE_integer("slice_axis", None, "Array axis the slices are stacked along; detected "
                                   "from the voxel sizes when not given.", lower_bound=0, upper_bound=2)
_ALLOW = flags.DEFINE_boolean("allow_spacing_mismatch", False, "Warn, instead of refusing, when the slice "
                              "spacing is more than 15% away from the run's.")
flags.mark_flags_as_required(["input", "output"])


def main(argv: Sequence[str]) -> None:
    del argv
    from iqt.data.nifti import load_volume
    from iqt.errors import UserError
    from iqt.io_utils import check_not_inputs
    from iqt.prepare.dicom import read_scan
    from iqt.prepare.pipeline import output_paths, parse_steps, prepare_volume, write_prepared
    from iqt.prepare.spacing import TrainingGrid

    paths = output_paths(_OUTPUT.value)
    check_not_inputs({f"output ({what})": path for what, path in paths.items()}, [_INPUT.value, _MASK.value])
    steps = parse_steps(_STEPS.value)
    grid = TrainingGrid.from_workdir(_WORKDIR.value) if _WORKDIR.value else None
    if _WORKDIR.value and grid is None:
        raise UserError(f"{_WORKDIR.value}/config.json names no sim.hf_voxel_mm and sim.factor")
    volume, source = read_scan(_INPUT.value, _SERIES.value)
    mask = load_volume(_MASK.value, name="brain mask") if _MASK.value else None
    prepared = prepare_volume(volume, steps=steps, sequence=_SEQUENCE.value, mask=mask, grid=grid,
                              slice_axis=_SLICE_AXIS.value, allow_spacing_mismatch=_ALLOW.value, source=source)
    for warning in prepared.report["warnings"]:
        print(warning, file=sys.stderr, flush=True)
    written = write_prepared(paths["image"], volume, prepared)
    print("wrote " + ", ".join(str(p) for p in written.values()), flush=True)


if __name__ == "__main__":
    cli.run(main)

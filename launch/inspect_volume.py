"""Prints what the library sees in a NIfTI volume.

    python -m launch.inspect_volume --input scan.nii.gz [--slice_axis N]

Shape, voxel sizes (mm), orientation, the slice axis (detected from the voxel
sizes, or the one given) and the intensity range.
"""
from __future__ import annotations

from typing import Sequence

from absl import flags

from iqt import cli
from iqt.data import nifti

_INPUT = flags.DEFINE_string("input", None, "NIfTI volume (.nii or .nii.gz) to inspect.")
_SLICE_AXIS = flags.DEFINE_integer(
    "slice_axis", None, "Array axis (0, 1 or 2) the slices are stacked along; "
    "detected from the voxel sizes when not given.", lower_bound=0, upper_bound=2)
flags.mark_flag_as_required("input")


def main(argv: Sequence[str]) -> None:
    del argv
    volume = nifti.load_volume(_INPUT.value, name="--input")
    print(nifti.describe(volume, _SLICE_AXIS.value))


if __name__ == "__main__":
    cli.run(main)

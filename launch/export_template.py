"""Writes a slab of the embedded MNI152 template and its tissue maps as NIfTI files.

    python -m launch.export_template --out runs/demo/template --split test

Writes t1.nii.gz, gm.nii.gz, wm.nii.gz and csf.nii.gz (1 mm, RAS): the input
that `launch.simulate` turns into a low-field volume in the demo.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from absl import flags

from iqt import cli, io_utils
from iqt.data import nifti
from iqt.data.datasets.iqt_template import SLABS_Y, slab_subject

_OUT = flags.DEFINE_string("out", None, "Output folder.")
_SPLIT = flags.DEFINE_enum("split", "test", list(SLABS_Y), "Which slab of the template.")
flags.mark_flag_as_required("out")


def main(argv: Sequence[str]) -> None:
    del argv
    out = Path(_OUT.value)
    io_utils.check_output_folder(out, "--out")
    subject = slab_subject(_SPLIT.value)
    nifti.save_volume(out / "t1.nii.gz", subject.image, subject.affine)
    for i, name in enumerate(("gm", "wm", "csf")):
        nifti.save_volume(out / f"{name}.nii.gz", subject.tissue[..., i], subject.affine)
    print(f"wrote {out}/{{t1,gm,wm,csf}}.nii.gz: {subject.subject_id}, shape {subject.image.shape}")


if __name__ == "__main__":
    cli.run(main)

"""Writes a slab of the embedded MNI152 template and its tissue maps as NIfTI files.

    python -m launch.export_template --out runs/demo/template --split test

Writes t1.nii.gz, gm.nii.gz, wm.nii.gz and csf.nii.gz (1 mm, RAS): the input
that `launch.simulate` turns into a low-field volume in the demo. Writes all four or
none; files of those names that hold something else are kept unless `--overwrite`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from absl import flags

from iqt import cli, io_utils
from iqt.data import nifti
from iqt.errors import UserError
from iqt.data.datasets.iqt_template import SLABS_Y, slab_subject

_OUT = flags.DEFINE_string("out", None, "Output folder.")
_SPLIT = flags.DEFINE_enum("split", "test", list(SLABS_Y), "Which slab of the template.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace files of these names that hold something else.")
flags.mark_flag_as_required("out")


def _made_here(path: Path, image, affine) -> bool:
    """Whether `path` holds this image on this grid (a file this command wrote before)."""
    try:
        found = nib.load(path)
        return found.shape == image.shape and np.allclose(found.affine, affine) and \
            np.array_equal(np.asarray(found.dataobj, np.float32), np.asarray(image, np.float32))
    except Exception:   # any file nibabel cannot read is not ours
        return False


def main(argv: Sequence[str]) -> None:
    del argv
    out = Path(_OUT.value)
    io_utils.check_output_folder(out, "--out")
    subject = slab_subject(_SPLIT.value)
    volumes = {"t1": subject.image, **{name: subject.tissue[..., i] for i, name in enumerate(("gm", "wm", "csf"))}}
    paths = {name: out / f"{name}.nii.gz" for name in volumes}
    io_utils.check_not_inputs({f"output {p.name}": p for p in paths.values()}, [])
    foreign = [p.name for name, p in paths.items()
               if p.exists() and not _OVERWRITE.value and not _made_here(p, volumes[name], subject.affine)]
    if foreign:
        raise UserError(f"--out {out} already holds {', '.join(foreign)} with other content; choose another "
                        f"folder or pass --overwrite")
    with io_utils.atomic_paths(paths.values()) as temporary:   # all four files or none
        for name, tmp in zip(volumes, temporary):
            nifti.save_volume(tmp, volumes[name], subject.affine)
    print(f"wrote {out}/{{t1,gm,wm,csf}}.nii.gz: {subject.subject_id}, shape {subject.image.shape}")


if __name__ == "__main__":
    cli.run(main)

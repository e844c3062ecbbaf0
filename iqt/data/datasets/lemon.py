"""`lemon`: MPI-LEMON FLAIR images with SPM12 tissue maps, manual download.

Expected layout (the LEMON BIDS tree, with SPM12's outputs beside each FLAIR):

    <manual_dir>/sub-<id>/[ses-01/][anat/]sub-<id>_..._FLAIR.nii.gz
    <manual_dir>/sub-<id>/[ses-01/][anat/]c1sub-<id>_..._FLAIR.nii[.gz]   GM
    <manual_dir>/sub-<id>/[ses-01/][anat/]c2sub-<id>_..._FLAIR.nii[.gz]   WM
    <manual_dir>/sub-<id>/[ses-01/][anat/]c3sub-<id>_..._FLAIR.nii[.gz]   CSF

Every `sub-*` folder is a subject; under it exactly one NIfTI whose name holds
`FLAIR` (and does not start with c1/c2/c3) is the image. LEMON's FLAIR is not
skull-stripped, so voxels where no tissue is present (GM + WM + CSF = 0, the
brain mask of `iqt.data.normalization.brain_mask`) are set to 0.

Split: as `hcp`, deterministic by sorted subject id (default 60 train / 10 test,
20 % of train for validation).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from iqt.data import normalization
from iqt.data.datasets import common
from iqt.data.subject import Subject, load_subject
from iqt.errors import UserError

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download MPI-LEMON (https://fcon_1000.projects.nitrc.org/indi/retro/MPI_LEMON.html,
the MRI raw data in BIDS form) so that <manual_dir>/sub-<id>/.../*FLAIR*.nii.gz
exist, run SPM12 'Segment' on each FLAIR (its c1/c2/c3 maps land beside it),
then: python -m launch.build_data --dataset lemon --manual_dir <manual_dir>"""

_SPM_OUTPUT = re.compile(r"^c[123]")


@dataclasses.dataclass
class LemonConfig(tfds.core.BuilderConfig):
    num_train: int = 60
    num_test: int = 10
    validation_fraction: float = 0.2


def make_config(num_train: int = 60, num_test: int = 10,
                validation_fraction: float = 0.2) -> LemonConfig:
    name = "flair"
    if (num_train, num_test, validation_fraction) != (60, 10, 0.2):
        name += f"_train{num_train}_test{num_test}_val{common.fraction_tag(validation_fraction)}"
    return LemonConfig(name=name, num_train=num_train, num_test=num_test,
                       validation_fraction=validation_fraction)


def find_flair(subject_dir: Path) -> Path:
    """The one FLAIR image under a subject folder."""
    found = sorted(p for p in subject_dir.rglob("*FLAIR*")
                   if p.name.endswith(common.NIFTI_SUFFIXES) and not _SPM_OUTPUT.match(p.name))
    if len(found) != 1:
        shown = ", ".join(str(p) for p in found) or "none"
        raise UserError(f"LEMON subject {subject_dir.name}: expected exactly one *FLAIR*.nii[.gz] "
                        f"under {subject_dir}, found {len(found)} ({shown})")
    return found[0]


def load_lemon_subject(subject_dir: Path) -> Subject:
    """The FLAIR image, masked to where any tissue is present, with its SPM12 maps."""
    image_path = find_flair(subject_dir)
    maps = common.spm_maps(image_path)
    if maps is None:
        raise UserError(f"LEMON subject {subject_dir.name}: SPM12 maps c1/c2/c3"
                        f"{common.nifti_stem(image_path)}.nii[.gz] not found beside {image_path}")
    subject = load_subject(subject_dir.name, image_path, *maps)
    brain = normalization.brain_mask(subject.image, subject.tissue)
    return dataclasses.replace(subject, image=np.where(brain, subject.image, 0).astype(np.float32))


def find_subjects(manual_dir: Path) -> dict[str, Path]:
    subjects = {d.name: d for d in sorted(manual_dir.glob("sub-*")) if d.is_dir()}
    if not subjects:
        raise UserError(f"no LEMON subject in {manual_dir}: expected folders named sub-<id>")
    return subjects


class Lemon(common.IqtBuilder):
    """MPI-LEMON FLAIR with SPM12 tissue maps (manual download)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [make_config()]

    def _plan(self, dl_manager):
        config = self.builder_config
        return common.plan_subject_splits(dl_manager.manual_dir, config, find_subjects, load_lemon_subject)

"""`hcp`: Human Connectome Project structural images (T1w or T2w, 0.7 mm), manual download.

Layout read from the manual folder (HCP "Structural Preprocessed" packages):

    <manual_dir>/<subject>/T1w/T1w_acpc_dc_restore_brain.nii.gz   (config t1w)
    <manual_dir>/<subject>/T1w/T2w_acpc_dc_restore_brain.nii.gz   (config t2w)

Every folder with a `T1w/` subfolder is a subject, named by the folder. Tissue
maps, first found wins:
1. SPM12 maps of the image itself, beside it: `c1<image>.nii[.gz]`, `c2...`, `c3...`;
2. SPM12 maps of the T1w image (T1w and T2w share one grid in HCP);
3. FreeSurfer `T1w/aparc+aseg.nii.gz`, mapped to tissue as in
   `iqt.data.datasets.tissue_labels`.

Split: deterministic by sorted subject id (`common.split_subjects`): by default
60 train and 10 test, as published, with 20 % of train held out for validation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow_datasets as tfds

from iqt.data.datasets import common
from iqt.data.datasets.tissue_labels import tissue_from_aseg
from iqt.data.nifti import check_same_grid, load_volume
from iqt.data.subject import Subject, load_subject
from iqt.errors import UserError

IMAGE_NAMES = {"T1w": "T1w_acpc_dc_restore_brain.nii.gz", "T2w": "T2w_acpc_dc_restore_brain.nii.gz"}
ASEG_NAME = "aparc+aseg.nii.gz"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
HCP data need a data use agreement: register at https://db.humanconnectome.org,
download the 'Structural Preprocessed' package of each subject, and unpack them
so that <manual_dir>/<subject>/T1w/T1w_acpc_dc_restore_brain.nii.gz (and
T2w_acpc_dc_restore_brain.nii.gz) exist. Tissue maps: run SPM12 'Segment' on
the image (c1/c2/c3 files beside it), or keep FreeSurfer's T1w/aparc+aseg.nii.gz.
Then: python -m launch.build_data --dataset hcp --manual_dir <manual_dir>"""


@dataclasses.dataclass
class HcpConfig(tfds.core.BuilderConfig):
    """Which image (modality) and which subject split."""

    modality: str = "T1w"
    num_train: int = 60
    num_test: int = 10
    validation_fraction: float = 0.2


def make_config(modality: str, num_train: int = 60, num_test: int = 10,
                validation_fraction: float = 0.2) -> HcpConfig:
    """A config named after its modality, plus its split when that is not the default."""
    name = modality.lower()
    if (num_train, num_test, validation_fraction) != (60, 10, 0.2):
        name += f"_train{num_train}_test{num_test}_val{common.fraction_tag(validation_fraction)}"
    return HcpConfig(name=name, modality=modality, num_train=num_train, num_test=num_test,
                     validation_fraction=validation_fraction)


def tissue_source(subject_dir: Path, image_path: Path) -> list[Path] | Path:
    """The SPM maps [c1, c2, c3] or the aparc+aseg file to take tissue from."""
    for candidate in (image_path, subject_dir / "T1w" / IMAGE_NAMES["T1w"]):
        maps = common.spm_maps(candidate)
        if maps:
            return maps
    aseg = subject_dir / "T1w" / ASEG_NAME
    if aseg.is_file():
        return aseg
    raise UserError(f"HCP subject {subject_dir.name}: no tissue maps: looked for SPM12 "
                    f"c1/c2/c3{image_path.name} beside the image (or of the T1w image) and "
                    f"for {aseg}")


def subject_from_aseg(subject_id: str, image_path: Path, aseg_path: Path) -> Subject:
    """A subject whose tissue maps come from FreeSurfer labels."""
    image = load_volume(image_path, name=f"subject {subject_id} image")
    labels = load_volume(aseg_path, name=f"subject {subject_id} aparc+aseg")
    check_same_grid(image, {f"subject {subject_id} aparc+aseg {aseg_path}": labels})
    return Subject(subject_id=subject_id, image=image.data, tissue=tissue_from_aseg(labels.data),
                   affine=image.affine)


def load_hcp_subject(subject_dir: Path, modality: str) -> Subject:
    """Loads one HCP subject folder (image + tissue maps)."""
    image_path = subject_dir / "T1w" / IMAGE_NAMES[modality]
    if not image_path.is_file():
        raise UserError(f"HCP subject {subject_dir.name}: {image_path} is missing; the {modality} "
                        f"config needs it (see the hcp layout in iqt/data/datasets/hcp.py)")
    source = tissue_source(subject_dir, image_path)
    if isinstance(source, Path):
        return subject_from_aseg(subject_dir.name, image_path, source)
    return load_subject(subject_dir.name, image_path, *source)


def find_subjects(manual_dir: Path) -> dict[str, Path]:
    """Subject id -> folder, for every folder of `manual_dir` with a `T1w/` subfolder."""
    subjects = {d.name: d for d in sorted(manual_dir.iterdir()) if (d / "T1w").is_dir()}
    if not subjects:
        raise UserError(f"no HCP subject in {manual_dir}: expected folders <subject>/T1w/ "
                        f"holding {IMAGE_NAMES['T1w']}")
    return subjects


class Hcp(common.IqtBuilder):
    """HCP structural images with SPM12 or FreeSurfer tissue maps (manual download)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [make_config("T1w"), make_config("T2w")]

    def _plan(self, dl_manager):
        config = self.builder_config
        return common.plan_subject_splits(dl_manager.manual_dir, config, find_subjects,
                                          lambda d: load_hcp_subject(d, config.modality))

"""`iqt_template`: the embedded default dataset, the MNI152 2009a template as three slabs.

One subject (`iqt.data.template.load_template()`, 197 x 233 x 189 voxels at
1 mm, RAS) is cut along the anterior-posterior axis y into three disjoint
slabs, each keeping the full x (left-right) and z (slice, inferior-superior)
extent:

| split | y indices (voxels) | size | brain slices (tissue sum > 0.5) |
| --- | --- | --- | --- |
| train | [0, 129) | 197 x 129 x 189 | y 27-128, posterior |
| validation | [129, 161) | 197 x 32 x 189 | y 129-160 |
| test | [161, 233) | 197 x 72 x 189 | y 161-207, anterior |

The robust scale and the tissue means are those of the whole template, so all
three slabs share one intensity normalisation. Each slab's affine is the
template's with the origin moved to the slab's first y voxel. The test slab
is large enough for whole-volume evaluation with 32^3 patches.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from iqt.data import records, template
from iqt.data.datasets import common
from iqt.data.subject import Subject
from iqt.errors import UserError

SLABS_Y = {"train": (0, 129), "validation": (129, 161), "test": (161, 233)}


def slab_affine(affine: np.ndarray, y_start: int) -> np.ndarray:
    """The affine of the sub-volume that starts at voxel y = `y_start`."""
    shifted = np.array(affine, dtype=np.float64)
    shifted[:3, 3] += y_start * shifted[:3, 1]
    return shifted


def slab(subject: Subject, split: str, subject_id: str) -> Subject:
    """The `split` slab of a whole-template subject (its scale and tissue means kept)."""
    start, stop = SLABS_Y[split]
    return dataclasses.replace(subject, subject_id=subject_id, image=np.array(subject.image[:, start:stop]),
                               tissue=np.array(subject.tissue[:, start:stop]),
                               affine=slab_affine(subject.affine, start))


def slab_examples() -> dict[str, dict]:
    """The three slab records, keyed by split: slabs of the whole normalised template."""
    subject = records.normalised(template.load_template())
    return {split: records.encode(slab(subject, split, f"{template.TEMPLATE_ID}_y{start}-{stop}"))
            for split, (start, stop) in SLABS_Y.items()}


class IqtTemplate(common.IqtBuilder):
    """The MNI152 2009a template (from nilearn's files) as train/validation/test slabs along y."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="mni152_2009a", description=__doc__)]

    def _plan(self, dl_manager):
        del dl_manager
        cache = {}

        def load(split):
            if not cache:
                cache.update(slab_examples())
            return cache.pop(split)

        return {split: [(f"{template.TEMPLATE_ID}_y{a}-{b}", lambda s=split: load(s))]
                for split, (a, b) in SLABS_Y.items()}


def slab_subject(split: str) -> Subject:
    """The `split` slab of the template at its original intensities (for export and demos)."""
    if split not in SLABS_Y:
        raise UserError(f"unknown template split {split!r}: use one of {', '.join(SLABS_Y)}")
    return slab(template.load_template(), split, f"{template.TEMPLATE_ID}_{split}")

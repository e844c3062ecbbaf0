"""A built dataset's splits: opening them, checking them against a run's config, reading them whole."""
from __future__ import annotations

import ml_collections

from iqt.data import records
from iqt.data.datasets import ensure_built
from iqt.data.subject import Subject
from iqt.errors import UserError


def built_with_split(data_config, split: str):
    """The prepared builder; a missing split is a `UserError`."""
    builder = ensure_built(data_config)
    if split not in builder.info.splits:
        raise UserError(f"dataset {builder.name} ({builder.data_dir}) has no {split!r} split; "
                        f"it has {', '.join(builder.info.splits)}")
    return builder


def open_split(data_config, split: str):
    """A random-access source of `split`'s decoded examples."""
    return built_with_split(data_config, split).as_data_source(split)


def check_shapes(builder, split: str, patch_size, margin: int) -> None:
    """Every volume of `split` (from the build's metadata) must hold a patch with its margin."""
    metadata = builder.info.metadata or {}
    window = (patch_size[0], patch_size[1], patch_size[2] + 2 * margin)
    for subject_id in metadata.get("subjects", {}).get(split, []):
        shape = tuple(metadata["shapes"][subject_id])
        if any(s < w for s, w in zip(shape, window)):
            raise UserError(f"subject {subject_id} ({split}) has shape {shape}, smaller than a patch "
                            f"with its margin {window}; lower data.patch_size_hf")


VOXEL_SIZE_TOLERANCE = 0.01   # relative: sim.hf_voxel_mm must match the data this closely


def check_voxel_sizes(builder, split: str, hf_voxel_mm: float) -> None:
    """The simulator's widths are in mm: `sim.hf_voxel_mm` must be the data's slice-axis voxel size."""
    sizes = (builder.info.metadata or {}).get("voxel_sizes_mm", {})
    for subject_id in (builder.info.metadata or {}).get("subjects", {}).get(split, []):
        along_slices = float(sizes.get(subject_id, [hf_voxel_mm] * 3)[2])
        if abs(along_slices - hf_voxel_mm) > VOXEL_SIZE_TOLERANCE * along_slices:
            raise UserError(f"subject {subject_id} ({split}) has {along_slices:g} mm voxels along the "
                            f"slices but sim.hf_voxel_mm={hf_voxel_mm:g}; set "
                            f"--config.sim.hf_voxel_mm={along_slices:g}")


def load_split_subjects(data_config: ml_collections.ConfigDict, split: str) -> list[Subject]:
    """Every subject of `split`, decoded (float tissue maps), sorted by subject id (for whole-volume evaluation)."""
    source = open_split(data_config, split)
    return sorted((records.decode(source[record]) for record in range(len(source))), key=lambda s: s.subject_id)

"""The `data` section of a training config: which dataset, where, and how patches are drawn.

Every field is a plain value or a tuple (JSON round-trips exactly through
`iqt.config_io`); empty paths are ''.
"""
from __future__ import annotations

import ml_collections

DEFAULT_DATA_DIR = "~/.cache/iqt/tfds"


def default_config(dataset: str = "iqt_template") -> ml_collections.ConfigDict:
    """Defaults for `dataset`: iqt_template, hcp, lemon or nifti_folder, or 'NAME/CONFIG'
    (TFDS style, e.g. 'hcp/t2w') to choose a builder config too."""
    name, _, variant = dataset.partition("/")
    c = ml_collections.ConfigDict()
    # Which data.
    c.dataset = name
    c.builder_config = variant     # '' = the dataset's default (hcp: 't1w'; or 't2w')
    c.data_dir = DEFAULT_DATA_DIR  # where TFDS builds are kept
    c.manual_dir = ""              # hcp/lemon: the downloaded folder; nifti_folder: the manifest
                                   # (or its folder); '' = <data_dir>/manual/<dataset>
    c.num_train_subjects = 60      # hcp/lemon split by sorted subject id (0 = all but test)
    c.num_test_subjects = 10
    c.validation_fraction = 0.2    # share of the training subjects held out for validation
    c.train_split = "train"
    c.validation_split = "validation"
    c.test_split = "test"

    # Patches (iqt.data.pipeline).
    c.patch_size_hf = (32, 32, 32)  # (x, y, z) HF voxels of the target; z is the slice axis
    c.min_brain_fraction = 0.2      # keep a patch if >= this share of its voxels is brain
                                    # (brain = GM + WM + CSF > 0.5)
    # Patches drawn each time a volume is decoded (one visit; an epoch visits every
    # subject once). Decoding an HCP-sized volume takes ~0.5-0.8 s, so the large
    # datasets draw more per visit; the template stays in the cache anyway.
    c.patches_per_volume = 64 if name == "iqt_template" else 256
    c.volumes_per_shuffle = 4       # visits whose patches are shuffled together into batches
                                    # (a group: ~0.3 MB per 32^3 patch with its margin)
    c.cache_volumes = 2             # decoded volumes each worker keeps
    c.spatial_augment = spatial_augment_config()

    # Host parallelism (iqt.data.pipeline): groups of batches are computed by
    # `worker_threads` threads in each of `worker_count` Grain processes.
    c.worker_count = 0              # Grain worker processes (0 = only this process)
    # Threads computing groups per process (0 = in the prefetch thread, or the caller's
    # if prefetch_batches = 0). They pay off when decoding dominates; the template's
    # one volume stays cached and is fastest without them (benchmarks/data_pipeline.py).
    c.worker_threads = 0 if name == "iqt_template" else 2
    c.worker_buffer_size = 2        # groups each process prepares ahead
    c.prefetch_batches = 4          # batches made float32 ahead, in a thread of this process
    return c


def spatial_augment_config() -> ml_collections.ConfigDict:
    """`data.spatial_augment`: random spatial augmentation of training patches (iqt.data.spatial_augment).

    When enabled, each training patch is resampled from its whole volume through a
    random warp about its window's centre: a rotation, per-axis scaling and a smooth
    elastic displacement (image: cubic B-splines, clipped at 0; tissue maps: linear,
    so they stay in [0, 1] with a sum <= 1). The patch corners and the background
    rejection are those of the un-warped window; evaluation patches are never warped.
    Off by default; a config without this section (saved before it) is off too.
    Enable it with `--config.data.spatial_augment.enabled=true`.
    """
    c = ml_collections.ConfigDict()
    c.enabled = False             # bool: warp the training patches
    c.rotation_deg = 10.0         # degrees, in [0, 45]: each of the three angles (about x, y, z) is
                                  # uniform in [-this, +this]
    c.scale = (0.85, 1.15)        # (low, high), 0 < low <= high: each axis' factor is log-uniform in
                                  # [low, high]; > 1 samples a larger region (anatomy looks smaller)
    c.elastic_sd_mm = 2.0         # mm, >= 0: SD of the random displacement (each component, at each
                                  # control point); 0 = no elastic part
    c.elastic_spacing_mm = 16.0   # mm, >= sim.hf_voxel_mm (> 0): spacing of the displacement's control
                                  # points, interpolated by cubic B-splines in between
    return c

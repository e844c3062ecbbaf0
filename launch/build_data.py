"""Builds a TFDS dataset of HF volumes with tissue maps.

    python -m launch.build_data --dataset NAME [--manual_dir DIR] [--data_dir DIR]

NAME is iqt_template, hcp, lemon or nifti_folder (see iqt/data/datasets/), or
NAME/CONFIG such as hcp/t2w.
Prints a progress bar, then a summary: subjects per split, voxel sizes, size on disk.
"""
from __future__ import annotations

from pathlib import Path

from absl import flags

from iqt import cli, io_utils
from iqt.data import datasets
from iqt.data.config import DEFAULT_DATA_DIR, default_config

_DATASET = flags.DEFINE_string("dataset", "iqt_template", f"Dataset to build: {', '.join(datasets.DATASETS)} "
                               "(or NAME/CONFIG, e.g. hcp/t2w).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "hcp/lemon: the downloaded folder; "
                                  "nifti_folder: the manifest CSV (or its folder).")
_DATA_DIR = flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "Where built datasets are kept.")
_CONFIG = flags.DEFINE_string("builder_config", "", "hcp: t1w (default) or t2w.")


def main(argv) -> None:
    del argv
    config = default_config(_DATASET.value)
    config.manual_dir = _MANUAL_DIR.value
    config.data_dir = _DATA_DIR.value
    io_utils.check_output_folder(Path(_DATA_DIR.value).expanduser(), "--data_dir")
    if _CONFIG.value:
        config.builder_config = _CONFIG.value
    summary = datasets.describe(datasets.ensure_built(config, progress=True))
    print(f"{summary['dataset']}/{summary['config']} in {summary['path']}")
    print("subjects: " + ", ".join(f"{s} {n}" for s, n in summary["subjects"].items()))
    print("voxel sizes (mm): " + "; ".join(" x ".join(f"{v:g}" for v in vs)
                                           for vs in summary["voxel_sizes_mm"]))
    print(f"size on disk: {summary['size_bytes'] / 2 ** 20:.1f} MiB")


if __name__ == "__main__":
    cli.run(main)

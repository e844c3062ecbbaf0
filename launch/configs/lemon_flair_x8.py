"""MPI-LEMON FLAIR, ×8 along slices (docs/method.md §4).

    python -m launch.train --config launch/configs/lemon_flair_x8.py --workdir runs/lemon_flair_x8

The published simulator protocol (one SNR draw per subject, thickness 0.75 of the
spacing; `--config.sim.draw_mode=per_sample` and the `design` ranges of
`simulators.default_config` for this project's draws). Runtime: 100 epochs of
batch 32 as published; not measured on this project's machines (no HCP/LEMON data
there). Expected result on simulated test data (Lin et al., MedIA 2023): no published figure for this setting.

Needs the LEMON data (manual download): python -m launch.build_data --dataset lemon --manual_dir DIR
"""
from launch.configs.common import make_config


def get_config():
    return make_config(dataset="lemon", sequence="FLAIR", factor=8, hf_voxel_mm=1.0,
                       protocol="published")

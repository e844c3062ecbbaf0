"""MPI-LEMON FLAIR, ×4 along slices (docs/method.md §4).

Needs the LEMON data (manual download): python -m launch.build_data --dataset lemon --manual_dir DIR
"""
from launch.configs.common import make_config


def get_config():
    return make_config(dataset="lemon", sequence="FLAIR", factor=4, hf_voxel_mm=1.0)

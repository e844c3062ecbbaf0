"""HCP T1w (0.7 mm), ×8 along slices: the published setting (docs/method.md §2–4).

Needs the HCP data (manual download): python -m launch.build_data --dataset hcp --manual_dir DIR
"""
from launch.configs.common import make_config


def get_config():
    return make_config(dataset="hcp/t1w", sequence="T1w", factor=8, hf_voxel_mm=0.7)

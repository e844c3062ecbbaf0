"""HCP T1w (0.7 mm), ×8 along slices: the published setting (docs/method.md §2–4).

    python -m launch.train --config launch/configs/hcp_t1w_x8.py --workdir runs/hcp_t1w_x8

The published simulator protocol (one SNR draw per subject, thickness 0.75 of the
spacing; `--config.sim.draw_mode=per_sample` and the `design` ranges of
`simulators.default_config` for this project's draws). Runtime: 100 epochs of
batch 32 as published; not measured on this project's machines (no HCP/LEMON data
there). Expected result on simulated test data (Lin et al., MedIA 2023): ×8: PSNR 29.69 dB, SSIM 0.777.

Needs the HCP data (manual download): python -m launch.build_data --dataset hcp --manual_dir DIR
"""
from launch.configs.common import make_config


def get_config():
    return make_config(dataset="hcp/t1w", sequence="T1w", factor=8, hf_voxel_mm=0.7,
                       protocol="published")

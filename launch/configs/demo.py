"""The demo: the embedded MNI152 template, a small ANISO U-Net, ×8, on a laptop CPU.

    python -m launch.train --config launch/configs/demo.py --workdir runs/demo
    python -m launch.train --config launch/configs/demo.py:tiny ...   # seconds, for tests

Variants: `default` (about 10 minutes on 2 CPU cores), `tiny` (a handful of
steps on a very small network, for tests and smoke runs).
"""
from launch.configs.common import make_config


def get_config(variant: str = "default"):
    c = make_config(dataset="iqt_template", sequence="T1w", factor=8, hf_voxel_mm=1.0)
    c.model.base_features = 8
    c.model.levels = 4
    c.train.batch_size = 8
    c.train.num_steps = 1000
    c.train.log_every = 20
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.train.num_eval_patches = 32
    if variant == "tiny":
        c.model.base_features = 2
        c.model.levels = 2
        c.data.patch_size_hf = (16, 16, 16)
        c.train.batch_size = 4
        c.train.num_steps = 6
        c.train.log_every = 1
        c.train.eval_every = 3
        c.train.checkpoint_every = 2
        c.train.num_eval_patches = 4
        c.train.progress_bar = False
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}: use default or tiny")
    return c

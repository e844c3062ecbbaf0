"""The demo: the embedded MNI152 template, a small ANISO U-Net, the clinical ×6 protocol, on a CPU.

    python -m launch.train --config launch/configs/demo.py --workdir runs/demo
    python -m launch.train --config launch/configs/demo.py:tiny ...   # seconds, for tests

The template at 1 mm with ×6 along the slices is the 0.36 T clinical protocol
of the epilepsy study: a 6 mm slice spacing (5 mm slices with a 1 mm gap). Each
patch draws its own slice thickness (4.5-5.5 mm), in-plane blur and (SNR_WM,
SNR_GM) pair. Variants: `default` (a smoke test of the whole chain: a small
network trained for minutes on one template, not a clinical model), `tiny` (a
handful of steps on a very small network, for tests).

BatchNorm's statistics are re-measured on 96 x 96 x 48 patches at each
validation (`train.bn_calibration_patch_hf`, iqt/bn_calibration.py), so that the
network, trained on 24-voxel patches, normalises whole-volume tiles right.

Runtime: `bash scripts/demo.sh` (set-up, this training, enhancement and
evaluation) took 7 min 52 s on a fresh clone on 2 CPU cores (2026-11); the
training alone 321-379 s on 2 Intel Xeon cores (2026-12-07, other work running);
the generalisation benchmark 114-243 s more. Expected result on the held-out test
slab, over seeds 0-2: IQT 25.2-25.4 dB PSNR / SSIM 0.90-0.91 against cubic
splines' 20.9 dB / 0.83 ('mean' setting), 3.8-4.6 dB ahead in every setting
(README). On Colin27, an unseen brain, under the generalisation benchmark's
acquisitions, after an intensity fit: -0.18 to +0.21 dB against cubic in the
worst case, +0.36 to +0.68 dB on average (docs/results/generalisation_levers.md):
the goal of +1.5 dB in every case is not reached.
"""
from launch.configs.common import make_config


def get_config(variant: str = "default"):
    # tiny: ×8, whose 2-level network takes any even in-plane size (the tests' volumes).
    c = make_config(dataset="iqt_template", sequence="T1w", factor=8 if variant == "tiny" else 6,
                    hf_voxel_mm=1.0)
    c.data.patch_size_hf = (24, 24, 48)   # 8 LF slices: context along the slices
    c.model.base_features = 8
    c.model.levels = 4
    c.model.bn_momentum = 0.9             # running averages settle within ~10 steps
    c.model.residual = "cubic"            # learn the correction to cubic-spline interpolation
    c.train.batch_size = 8
    c.train.num_steps = 600
    c.train.lr_schedule = "cosine"
    c.train.learning_rate = 2e-3
    c.train.warmup_steps = 50
    c.train.augment = True                # one template: flips make it 16 anatomies
    c.train.log_every = 20
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.train.num_eval_patches = 32
    c.train.bn_calibration_patch_hf = (96, 96, 48)   # BatchNorm statistics for whole-volume tiles
    c.train.bn_calibration_patches = 16
    if variant == "tiny":
        c.model.base_features = 2
        c.model.levels = 2
        c.data.patch_size_hf = (16, 16, 16)
        c.train.batch_size = 4
        c.train.num_steps = 6
        c.train.lr_schedule = "inverse_time"   # resumable with more steps (tests raise num_steps)
        c.train.log_every = 1
        c.train.eval_every = 3
        c.train.checkpoint_every = 2
        c.train.num_eval_patches = 4
        c.train.bn_calibration_patch_hf = ()   # off: the tests that need it turn it on
        c.train.progress_bar = False
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}: use default or tiny")
    return c

r"""×4 against ×8 along the slices: how much harder the thicker slices are.

    python -m launch.sweep --config launch/configs/demo.py \
        --sweep launch/configs/sweeps/factor.py --workdir runs/sweeps/factor --seeds 0,1,2

What: the resolution factor r of the simulator at the demo's 1 mm template:
4 mm against 8 mm slice spacing (slice thickness and in-plane blur keep their
fractions of the spacing). The network follows r (its anisotropic upsampling).

Runtime: 6 demo trainings, about an hour on 2 CPU cores. Expected result: both
beat cubic splines; ×8 has the lower PSNR and SSIM in absolute terms and the
larger gain over cubic splines.
"""


def get_sweep():
    return dict(grid={"sim.factor": [4, 8]})

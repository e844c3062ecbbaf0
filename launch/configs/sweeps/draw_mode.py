r"""Per-sample against per-subject draws of the simulator's parameters.

    python -m launch.sweep --config launch/configs/demo.py \
        --sweep launch/configs/sweeps/draw_mode.py --workdir runs/sweeps/draw_mode --seeds 0,1,2

What: `per_sample` (the design protocol) draws new parameters for every patch;
`per_subject` (the published method) draws them once per training subject and
keeps them for every epoch. On the demo's one template, per-subject means one
degradation for the whole training, close to a deterministic model at a random
point: expect it to lose to per-sample away from that point. On HCP (60
subjects, `--config launch/configs/hcp_t1w_x8.py`) the two should be closer.

Runtime: like stochastic_vs_deterministic (6 demo trainings: about an hour on 2
CPU cores). Expected result: per_sample at least as good in every test setting.
"""


def get_sweep():
    return dict(
        settings=[("per_sample", {"sim.draw_mode": "per_sample"}),
                  ("per_subject", {"sim.draw_mode": "per_subject"})],
        test_settings=["mean", "snr_low", "snr_high", "thin_slices", "thick_slices"],
    )

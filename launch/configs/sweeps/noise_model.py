r"""Gaussian against Rician noise in the training simulator.

    python -m launch.sweep --config launch/configs/demo.py \
        --sweep launch/configs/sweeps/noise_model.py --workdir runs/sweeps/noise_model --seeds 0,1,2

What: the LF magnitude image's noise, `gaussian` (additive, the reference's) or
`rician` (the magnitude of complex Gaussian noise, as a scanner's magnitude image
has; it raises the dark background and CSF). Each model is evaluated on test data
simulated with its own noise model.

Runtime: 6 demo trainings, about an hour on 2 CPU cores. Expected result: at
the demo's SNR (about 55-65 in tissue) the two differ little in tissue; Rician
matters at low SNR (the `snr_low` row and `--evaluate_only --axis snr` below 0.5).
"""


def get_sweep():
    return dict(grid={"sim.noise": ["gaussian", "rician"]})

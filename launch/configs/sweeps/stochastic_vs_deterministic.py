r"""Stochastic against deterministic simulation: the published method's central claim.

    python -m launch.sweep --config launch/configs/demo.py \
        --sweep launch/configs/sweeps/stochastic_vs_deterministic.py --workdir runs/sweeps/svd --seeds 0,1,2
    python -m launch.sweep --evaluate_only --workdirs runs/sweeps/svd/*/seed* --axis snr
    python -m launch.sweep --evaluate_only --workdirs runs/sweeps/svd/*/seed* --axis thickness

What: `stochastic` draws every patch's slice thickness, in-plane blur and (SNR_WM,
SNR_GM) from the config's distributions; `deterministic` gives every patch the
means (the noise itself stays random). Both are evaluated in all five test
settings, so the Wilcoxon test has 5 (volume × setting) pairs per test volume.

Runtime: at demo scale on 2 CPU cores, 6 trainings of 600 steps and their
evaluations; see docs/results/stochastic_vs_deterministic.md for the measured wall time.
Expected result (the claim): the stochastic model is the more robust one away
from the mean parameters (low SNR, thin or thick slices, the robustness curves),
at little cost at the mean. The measured result at demo scale is in
docs/results/stochastic_vs_deterministic.md.
"""


def get_sweep():
    return dict(
        settings=[("stochastic", {"sim.deterministic": False}),
                  ("deterministic", {"sim.deterministic": True})],
        test_settings=["mean", "snr_low", "snr_high", "thin_slices", "thick_slices"],
    )

r"""The tiny sweep, for tests: two settings of a 4-step `demo:tiny` network, 2 test settings.

    python -m launch.sweep --config demo:tiny --sweep tiny --workdir /tmp/sweep --seeds 0,1

What: stochastic against deterministic simulation (`sim.deterministic`), with the
`demo:tiny` network, evaluated in two test settings on the template's validation slab
(197 × 32 × 189 voxels, less than half the test slab's work). Runtime: about a minute on
2 CPU cores. Expected result: none; the models are untrained (a test of the machinery).
"""


def get_sweep():
    return dict(
        settings=[("stochastic", {"sim.deterministic": False}),
                  ("deterministic", {"sim.deterministic": True})],
        overrides={"train.num_steps": 4, "train.eval_every": 4, "train.checkpoint_every": 2,
                   "data.test_split": "validation"},
        test_settings=["mean", "snr_low"],
    )

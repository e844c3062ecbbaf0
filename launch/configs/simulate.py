"""Config of `python -m launch.simulate`: the simulator section alone.

    --config launch/configs/simulate.py            # T1w, ×8 (docs/method.md §3)
    --config launch/configs/simulate.py:FLAIR      # T1w | T2w | FLAIR
    --config launch/configs/simulate.py:T2w,4      # sequence and resolution factor

Fields can be overridden as usual, e.g. `--config.sim.noise=rician`.
"""
import ml_collections

import simulators


def get_config(variant: str = "T1w"):
    sequence, _, factor = variant.partition(",")
    if sequence not in simulators.SEQUENCES or (factor and not factor.isdigit()):
        raise ValueError(f"unknown variant {variant!r}: use SEQUENCE or SEQUENCE,FACTOR with "
                         f"SEQUENCE one of {simulators.SEQUENCES} and FACTOR a positive integer")
    c = ml_collections.ConfigDict()
    c.sim = simulators.default_config(sequence, int(factor) if factor else 8)
    return c

"""The simulator's one exception type for a bad config or bad input arrays.

`simulators` imports nothing from `iqt`, so it cannot raise `iqt.errors.UserError`
itself; command lines turn `SimulatorInputError` into a `UserError`.
"""


class SimulatorInputError(ValueError):
    """A simulator config field or input array is invalid; the message names it."""

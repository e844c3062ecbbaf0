"""The one exception type that means "the user gave us something wrong".

`analysis/` may not import `iqt`, so it keeps its own twin of
`iqt.errors.UserError`; `analysis._cli.run` maps it to the error contract.
"""


class UserError(Exception):
    """Bad input: a missing or malformed file, a bad value, a bad flag.

    The message names the file, row or value at fault and says what to do.
    """

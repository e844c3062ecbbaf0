"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """Bad input from the user: a missing or malformed file, a bad flag value.

    Command lines turn it into one line on stderr and exit status 2
    (see `iqt.cli.run`); library code raises it with a message that names the
    file, row or value at fault and says what to do.
    """

"""Errors the command line turns into one clear line and exit status 2."""


class UserError(Exception):
    """Bad input from the user: an unknown name, a wrong value, a missing file."""


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

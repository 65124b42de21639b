"""Errors of the local parts, each carrying what a person needs to act on it."""


class LocalPartError(RuntimeError):
    """A local part could not be installed, started or reached.

    The message names the failing command or part and ends with the tail of
    its output or log, so a test failure shows the cause, not a fixture's
    stack.
    """

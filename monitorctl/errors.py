"""Errors that map to the contract's exit codes (CONTRACT §6)."""


class MonitorError(Exception):
    """A failure reported as one line; ``exit_code`` follows the contract."""

    exit_code = 1


class UsageError(MonitorError):
    """Bad input: a value, an option or a config file. Exit 2."""

    exit_code = 2


class DatabaseUnavailable(MonitorError):
    """The database cannot be reached, is not installed, or is too new. Exit 3."""

    exit_code = 3

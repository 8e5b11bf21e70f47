"""Errors that map to the exit codes of README.md ("Exit codes")."""


class MonitorError(Exception):
    """A failure reported as one line; ``exit_code`` follows README.md's table of exit codes."""

    exit_code = 1


class UsageError(MonitorError):
    """Bad input: a value, an option or a config file. Exit 2."""

    exit_code = 2


class DatabaseUnavailable(MonitorError):
    """The database cannot be reached, is not installed, or is too new. Exit 3."""

    exit_code = 3


class UnknownDetector(UsageError):
    """A detector name that is not registered. Exit 2."""

    def __init__(self, name: str, known: str):
        self.name, self.known = name, known
        super().__init__(f"unknown detector {name} (known: {known or 'none'})")

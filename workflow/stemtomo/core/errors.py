"""Errors that stop a stage with a message naming the file or key, the problem and the fix."""

from __future__ import annotations


class StemtomoError(Exception):
    """Base class: the message is shown to the user as it is, without a traceback."""


class InputError(StemtomoError):
    """Bad input data: names the file (or config key), what is wrong and how to fix it."""

    def __init__(self, source: str, problem: str, fix: str | None = None) -> None:
        self.source = str(source)
        self.problem = problem
        self.fix = fix
        message = f"{self.source}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)


class ConfigError(InputError):
    """Bad configuration value; `source` is the dotted key, e.g. samples.demo.simulate.size."""


class OutputError(InputError):
    """An output cannot be written (folder read-only, disk full): names the folder and the fix."""

"""Errors that reach the user as one sentence and an exit code, never a traceback."""

from __future__ import annotations

import click


class BatchbenchError(click.ClickException):
    """A problem with the user's input: printed as one message, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: D102 - click's signature
        click.echo(f"error: {self.format_message()}", err=True)


class ConfigError(BatchbenchError):
    """A config that cannot be used; the message names the file and the key path."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.reason = message
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class OutputError(BatchbenchError):
    """The run directory cannot be written."""


class InterruptedSweep(click.ClickException):
    """Ctrl-C or SIGTERM: what finished is kept, exit code 130."""

    exit_code = 130

    def show(self, file=None) -> None:  # noqa: D102
        click.echo(self.format_message(), err=True)

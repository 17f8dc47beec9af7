"""Errors that reach the user as one sentence and an exit code, never a traceback.

Plain exceptions (the worker imports them, and needs no click); the CLI's command group turns
them into their message on stderr and their exit code."""

from __future__ import annotations

import sys


class UserFacing(Exception):
    """An exception whose message is for the user, with the exit code it ends the command with."""

    exit_code = 1
    prefix = ""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        print(f"{self.prefix}{self.format_message()}", file=file or sys.stderr, flush=True)


class BatchbenchError(UserFacing):
    """A problem with the user's input: printed as one message, exit code 2."""

    exit_code = 2
    prefix = "error: "


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


class InterruptedSweep(UserFacing):
    """Ctrl-C or SIGTERM: what finished is kept, exit code 130 (not a BatchbenchError: nothing
    was wrong with the input)."""

    exit_code = 130

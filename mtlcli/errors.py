"""Errors a user can cause. The CLI prints them as one line and exits non-zero.

Anything that is not an ``MtlcliError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_ERROR = 1        # a user error: bad config, missing data, bad checkpoint, ...
EXIT_USAGE = 2        # bad command-line usage (Typer/Click's own code too)
EXIT_INTERRUPTED = 130  # Ctrl-C: state saved, run can be resumed


class MtlcliError(Exception):
    """A user-caused error: ``str(err)`` is the one line the user sees."""

    exit_code = EXIT_ERROR


class UsageError(MtlcliError):
    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Origin:
    """Where a config value came from: a file position or a command-line override."""

    path: str
    line: int = 0  # 1-based; 0 when unknown
    col: int = 0   # 1-based; 0 when unknown

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.col}"
        return self.path


class ConfigError(MtlcliError):
    """A mistake in a config file or override, reported as ``path:line:col: message``."""

    def __init__(self, message: str, origin: Origin | None = None, hint: str | None = None):
        self.message = message
        self.origin = origin
        self.hint = hint
        text = f"{origin}: {message}" if origin else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)

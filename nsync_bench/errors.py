"""Errors that teach: each names the bad value, what is allowed, and how to fix it.

The CLI catches :class:`NsyncBenchError` and prints its message without a traceback; library
users get an ordinary exception with the same text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NsyncBenchError(Exception):
    """Base class of every error a user can fix by changing input, config or environment."""


class ConfigError(NsyncBenchError, ValueError):
    """A config key, value, profile or protocol is unknown or invalid."""


class UnknownNameError(NsyncBenchError, KeyError):
    """A style, method, profile, protocol or rule name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(NsyncBenchError, FileNotFoundError):
    """A base model or weights file is missing (typically: offline and not cached)."""


class DataError(NsyncBenchError, ValueError):
    """A dataset, image or caption is missing or unusable."""


class TrainingError(NsyncBenchError, FloatingPointError):
    """Training cannot continue correctly (e.g. a non-finite gradient with no loss scale to back off)."""


class CorruptFileError(NsyncBenchError):
    """A file the project wrote earlier and now trusts is torn, truncated or altered (its name is in the message)."""


class DiskFullError(NsyncBenchError):
    """A folder's file system has no room for a file the project must write; nothing written before is lost."""

    exit_code = 1  # the run failed; nothing is wrong with the input


def unknown_name(kind: str, value: str, allowed: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an :class:`UnknownNameError` listing the valid names and the closest match."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(value, allowed, n=1)
    message = f"unknown {kind} {value!r}; valid {kind}s: {', '.join(allowed)}."
    if close:
        message += f" Did you mean {close[0]!r}?"
    if hint:
        message += f" {hint}"
    return UnknownNameError(message)

"""The errors dbnotify raises into its host, under one base class.

A delivery failure is never one of these: it is a :class:`~dbnotify.results.RecipientResult`.
These are for what the host (or the operator's configuration) got wrong, or what stops
dbnotify from keeping its promise (an outbox that cannot commit)::

    DbnotifyError
     ├── ConfigError    (also a ValueError)   every problem of a configuration, located
     ├── EventError     (also a ValueError)   an event that cannot be described
     └── OutboxError                          the outbox cannot take or record work

This module imports nothing of the framework, so that every layer may raise them.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


class DbnotifyError(Exception):
    """The base of every error dbnotify raises on purpose: ``except DbnotifyError``."""


def join_path(prefix: str, path: str) -> str:
    """``channels.ops-mail`` + ``port`` -> ``channels.ops-mail.port`` (``to[1]`` kept)."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


@attrs.frozen
class ConfigIssue:
    """One problem: where (``channels.ops-mail.port``) and what (``must be ...``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(DbnotifyError, ValueError):
    """Every problem found in a configuration, each with its path."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = len(self.issues)
        head = f"{count} configuration error{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])

    def prefixed(self, prefix: str) -> ConfigError:
        return ConfigError(ConfigIssue(join_path(prefix, i.path), i.message) for i in self.issues)


class InvalidField(ValueError):
    """Raised from ``__attrs_post_init__`` for a check across fields: names the field.

    Structuring turns it into a :class:`ConfigIssue` at that field's path; it never
    reaches the host on its own.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EventError(DbnotifyError, ValueError):
    """The host passed an event that cannot be described (a missing key, a bad value)."""


class OutboxError(DbnotifyError):
    """The outbox cannot take or record work: locked, full, unwritable. Never silent."""


class Unreachable(OutboxError):
    """The outbox could not be reached, or the connection to it broke (a database server
    restarted, a network cut): the same operation may succeed a moment later. The worker
    tries to record an attempt again while its lease lasts (the fencing number keeps a
    late record from standing over another worker's); any other failure to record stops
    it at once."""

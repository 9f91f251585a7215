"""The configuration's classes: what a valid file becomes.

Plain attrs classes with their field descriptions (for error messages and ``dbnotify
schema``); they import only field helpers and the event catalogue's types.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any

import attrs

from dbnotify.config.fields import Duration, in_range, positive, setting
from dbnotify.events import JobRule, NotifyUser


@attrs.frozen
class EventRouting:
    enabled: bool | None = setting(
        default=None, description="send this event at all (default: the catalogue's)"
    )
    channels: tuple[str, ...] | None = setting(
        default=None, description="channels for this event instead of the global ones"
    )
    notify_user: NotifyUser = setting(
        default=NotifyUser.NONE,
        description="user_login / user_created only: none (admins), also, only (the user)",
    )


@attrs.frozen
class Routing:
    channels: tuple[str, ...] = setting(factory=tuple, description="the global channels")
    events: dict[str, EventRouting] = setting(factory=dict, description="per event type")
    user_channel: str | None = setting(
        default=None, description="channel for per-user copies (default: the first email channel)"
    )


def _timezone(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _templates_dir(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not Path(value).expanduser().is_dir():
        raise ValueError(f"folder {value!r} does not exist")


@attrs.frozen
class RenderingSettings:
    subject_prefix: str = setting(default="[DBackup]", description="put before every subject")
    app_name: str = setting(default="DBackup", description="shown in the footer")
    timezone: str = setting(
        default="UTC", validator=_timezone, description="time zone of timestamps shown in messages"
    )
    templates_dir: str | None = setting(
        default=None,
        validator=_templates_dir,
        description="folder whose templates override the defaults (sandboxed)",
    )


@attrs.frozen
class DispatchSettings:
    deadline: float = setting(
        default=60.0, validator=positive, description="seconds one target may take before it fails"
    )


@attrs.frozen
class RetryOverride:
    """``[outbox.retry.<event type or default>]``: any of these, over the built-in policy."""

    attempts: int | None = setting(
        default=None, validator=in_range(1, 1000), description="attempts in all"
    )
    first_delay: Duration | None = setting(default=None, description="wait before attempt 2")
    max_delay: Duration | None = setting(default=None, description="longest wait between")
    max_age: Duration | None = setting(
        default=None, description="give up when the notification is older than this"
    )


def _outbox_path(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    scheme, sep, _rest = value.partition("://")
    if sep and scheme.replace("+", "").isalpha():  # a URL may carry a password: never echo it
        raise ValueError(
            f"must be the path of a SQLite file, not a {scheme}:// URL (an outbox on a "
            "database server is not supported yet)"
        )
    folder = Path(value).expanduser().parent
    if not folder.is_dir():
        raise ValueError(
            f"folder {str(folder)!r} does not exist; create it, or choose another path"
        )


@attrs.frozen
class OutboxSettings:
    """``[outbox]``: durable delivery through a SQLite file (several processes may share it)."""

    path: str = setting(
        validator=_outbox_path,
        description="the outbox's SQLite file",
        example='"/var/lib/dbackup/dbnotify-outbox.sqlite"',
    )
    retention: Duration = setting(
        default=Duration(30 * 86400.0), description="history kept this long (purge)"
    )
    busy_timeout: float = setting(
        default=5.0,
        validator=positive,
        description="seconds to wait for another process holding the file",
    )
    retry: dict[str, RetryOverride] = setting(
        factory=dict, description="retry limits per event type, and 'default'"
    )


@attrs.frozen
class ChannelSettings:
    """One configured channel: its name, its type, and the plugin's validated config."""

    name: str
    type: str
    config: Any = attrs.field(repr=False)


@attrs.frozen
class Config:
    channels: dict[str, ChannelSettings]
    routing: Routing = attrs.field(factory=Routing)
    jobs: dict[str, JobRule] = attrs.field(factory=dict)
    rendering: RenderingSettings = attrs.field(factory=RenderingSettings)
    dispatch: DispatchSettings = attrs.field(factory=DispatchSettings)
    outbox: OutboxSettings | None = None

"""The configuration's classes: what a valid file becomes.

Plain attrs classes with their field descriptions (for error messages and ``dbnotify
schema``); they import only field helpers and the event catalogue's types.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from pathlib import Path
from typing import Any

import attrs

from dbnotify.config.fields import Duration, in_range, positive, setting
from dbnotify.events import JobRule, NotifyUser
from dbnotify.secrets import Secret, redacted_url


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
    fallback: str | None = setting(
        default=None,
        description="channel told when another channel breaks (parked, or a delivery dead); "
        "needs [outbox]",
    )
    fallbacks: dict[str, str] = setting(
        factory=dict, description="per channel, its own fallback channel (over fallback)"
    )

    def fallback_for(self, channel: str) -> str | None:
        """Where to say that ``channel`` broke: its own fallback, else the global one,
        never itself."""
        found = self.fallbacks.get(channel, self.fallback)
        return found if found != channel else None


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


POSTGRES_SCHEMES = ("postgresql", "postgres")
"""What an ``[outbox] url`` may start with (libpq's two spellings)."""


def _outbox_path(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    scheme, sep, _rest = value.partition("://")
    if sep and scheme.replace("+", "").isalpha():  # a URL may carry a password: never echo it
        fix = "put it in [outbox] url" if scheme in POSTGRES_SCHEMES else "use a file path"
        raise ValueError(f"must be the path of a SQLite file, not a {scheme}:// URL; {fix}")
    folder = Path(value).expanduser().parent
    if not folder.is_dir():
        raise ValueError(
            f"folder {str(folder)!r} does not exist; create it, or choose another path"
        )


def _outbox_url(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    scheme, sep, _rest = value.partition("://")
    if not sep or scheme not in POSTGRES_SCHEMES:  # never echoed: it may hold a password
        raise ValueError(
            "must be a PostgreSQL URL such as "
            '"postgresql://dbnotify@db.internal:5432/dbnotify" (for a SQLite file, use path)'
        )


def _schema_name(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    if not (value.isascii() and value.isidentifier() and value == value.lower()):
        raise ValueError(
            f"must be a lower-case SQL name of letters, digits and _ (got {value!r}); "
            'e.g. schema = "dbnotify"'
        )
    if value.startswith("pg_"):
        raise ValueError(f"{value!r}: names starting pg_ are PostgreSQL's own; choose another")


class Writer(enum.Enum):
    """Where a SQLite outbox's work runs (``[outbox] writer``). Unset, the program that
    opens the outbox chooses (:func:`dbnotify.outbox.store.open_store`): a process for
    ``dbnotify serve`` and ``dbnotify worker``, a thread anywhere else."""

    THREAD = "thread"
    """A thread of the process that uses it: nothing more to run."""
    PROCESS = "process"
    """A child process of its own, off the host's interpreter lock: for bursts of
    thousands of notifications (:mod:`dbnotify.outbox.sqlite.writer`)."""


@attrs.frozen
class OutboxSettings:
    """``[outbox]``: durable delivery, through a SQLite file (``path``: processes of one
    host) or a PostgreSQL database (``url``: any number of hosts)."""

    path: str | None = setting(
        default=None,
        validator=_outbox_path,
        description="the outbox's SQLite file (one host; or url)",
        example='"/var/lib/dbackup/dbnotify-outbox.sqlite"',
    )
    url: str | None = setting(
        default=None,
        validator=_outbox_url,
        repr=False,
        description="the outbox's PostgreSQL database (several hosts; or path)",
        example='"postgresql://dbnotify@db.internal:5432/dbnotify"',
    )
    password: Secret | None = setting(
        default=None,
        description="PostgreSQL: the password (else the URL's, PGPASSWORD or ~/.pgpass)",
    )
    schema: str = setting(
        default="dbnotify",
        validator=_schema_name,
        description="PostgreSQL: the schema that holds the outbox's tables",
    )
    listen: bool = setting(
        default=True,
        description="PostgreSQL: wake workers with LISTEN/NOTIFY; false polls only and "
        "prepares no statements (behind PgBouncer in transaction mode)",
    )
    pool_size: int = setting(
        default=4,
        validator=in_range(1, 100),
        description="PostgreSQL: connections each process keeps open at most",
    )
    timeout: float = setting(
        default=10.0,
        validator=positive,
        description="PostgreSQL: seconds to connect, wait for a pooled connection, a lock "
        "or a statement before the operation fails",
    )
    retention: Duration = setting(
        default=Duration(30 * 86400.0), description="history kept this long (purge)"
    )
    busy_timeout: float = setting(
        default=5.0,
        validator=positive,
        description="SQLite: seconds to wait for another process holding the file",
    )
    writer: Writer | None = setting(
        default=None,
        description='SQLite: where its work runs: "thread" (in this process) or "process" '
        '(a child process: faster in bursts of thousands); unset, "process" for dbnotify '
        'serve and dbnotify worker, "thread" anywhere else',
    )
    retry: dict[str, RetryOverride] = setting(
        factory=dict, description="retry limits per event type, and 'default'"
    )

    @property
    def where(self) -> str:
        """The outbox as messages name it: the file, or the URL with no password."""
        return redacted_url(self.url) if self.url is not None else str(self.path)


class GroupBy(enum.Enum):
    """What, besides the channel, makes notifications one group."""

    TYPE = "type"
    JOB = "job"
    SEVERITY = "severity"
    CHANNEL = "channel"
    """Always so: one message goes through one channel. Accepted for clarity."""


@attrs.frozen
class GroupingRule:
    """``[grouping.<event type or default>]``: hold a group's first notification for
    ``wait`` to gather the others, and send them as one message."""

    by: tuple[GroupBy, ...] = setting(
        default=(GroupBy.TYPE,),
        description="what makes a group besides the channel: type, job, severity, channel",
    )
    wait: Duration = setting(
        default=Duration(30.0),
        description="hold a group's first notification this long to gather others",
    )
    interval: Duration = setting(
        default=Duration(300.0),
        description="after a group's message, hold the next one of that group until this "
        "long after it",
    )
    repeat: Duration = setting(
        default=Duration(4 * 3600.0),
        description="a job failing again within this long of its last message is counted, not sent",
    )
    resolved: bool = setting(
        default=True, description="send a 'resolved' message when a failing job succeeds"
    )


_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _clock_time(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    if not _CLOCK.fullmatch(value):
        raise ValueError(f'must be a time of day as "HH:MM", 24-hour (got {value!r})')


@attrs.frozen
class QuietHours:
    """A channel's ``quiet_hours``: what arrives in the window is held, and sent as one
    digest when it ends; severities or event types in ``except`` go at once."""

    from_: str = setting(
        key="from", validator=_clock_time, description="start of the window", example='"22:00"'
    )
    to: str = setting(validator=_clock_time, description="end of the window", example='"07:00"')
    timezone: str = setting(
        default="UTC", validator=_timezone, description="time zone of from and to"
    )
    except_: tuple[str, ...] = setting(
        key="except",
        factory=tuple,
        description="severities (failure, warning, ...) or event types sent at once",
    )


@attrs.frozen
class DigestRule:
    """``[digest.<name>]``: these events to these channels are not sent one by one but
    summarised in one message at ``at`` each day."""

    channels: tuple[str, ...] = setting(description="the channels it summarises for")
    events: tuple[str, ...] = setting(description="the event types it summarises")
    at: str = setting(validator=_clock_time, description="when it is sent", example='"08:00"')
    timezone: str = setting(default="UTC", validator=_timezone, description="time zone of at")


_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PER |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}


@attrs.frozen
class RateLimit:
    """A channel's ``rate_limit`` (``"6/min"``): at most ``count`` messages each
    ``per`` seconds; what comes beyond is held and sent as one, never dropped."""

    count: int
    per: float

    @classmethod
    def parse(cls, value: Any) -> RateLimit:
        match = _RATE.fullmatch(value) if isinstance(value, str) else None
        if match is None or int(match[1]) < 1 or match[2] == "0":
            raise ValueError(
                f'must be messages per time, e.g. "6/min", "100/hour", "1/30s" (got {value!r})'
            )
        return cls(int(match[1]), int(match[2] or 1) * float(_PER[match[3]]))

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


class Scope(enum.Enum):
    """What an API token may do. ``admin`` may do everything, ``read`` only reads."""

    SEND = "send"
    """``POST /v1/events``: what a host such as DBackup needs, and nothing more."""
    READ = "read"
    """Notifications, history, outbox, channels (secrets never), plugins, metrics."""
    ADMIN = "admin"
    """Channels created, changed, deleted and tested; dead deliveries retried; mutes."""

    def allows(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or self is needed


MIN_TOKEN_LENGTH = 24
"""Shorter API tokens are refused: a token is a password that scripts hold."""


def _token_secret(_inst: Any, _attr: attrs.Attribute[Any], value: Secret) -> None:
    if len(value.reveal()) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"an API token must be at least {MIN_TOKEN_LENGTH} characters (this one, from "
            f"{value.source}, is shorter); make one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def _scopes(_inst: Any, _attr: attrs.Attribute[Any], value: tuple[Scope, ...]) -> None:
    if not value:
        raise ValueError('name at least one of "send", "read", "admin"; e.g. scopes = ["send"]')


@attrs.frozen
class ApiToken:
    """``[serve.tokens.<name>]``: a bearer token for the HTTP API and the console."""

    secret: Secret = setting(
        validator=_token_secret,
        description="the token; better from the environment or a file than literal",
        example='{ env = "DBNOTIFY_TOKEN_DBACKUP" }',
    )
    scopes: tuple[Scope, ...] = setting(
        validator=_scopes, description="what it may do: send, read, admin", example='["send"]'
    )

    def allows(self, needed: Scope) -> bool:
        return any(scope.allows(needed) for scope in self.scopes)


def _listen(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f'must be HOST:PORT, e.g. "127.0.0.1:8025" or "[::1]:8025" (got {value!r})'
        )


@attrs.frozen
class ServeSettings:
    """``[serve]``: ``dbnotify serve``, the HTTP API and the web console."""

    listen: str = setting(
        default="127.0.0.1:8025",
        validator=_listen,
        description="address and port to listen on (loopback unless you say otherwise)",
    )
    tokens: dict[str, ApiToken] = setting(
        factory=dict, description="API and console tokens by name, each with its scopes"
    )
    max_body: int = setting(
        default=1_048_576,
        validator=in_range(1024, 64 * 1_048_576),
        description="largest request body accepted, in bytes (larger: 413)",
    )
    console: bool = setting(default=True, description="serve the web console at /console")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


CORE_CHANNEL_KEYS = frozenset({"type", "quiet_hours", "rate_limit"})
"""Keys of a channel's block that dbnotify reads itself; the plugin gets the others."""


@attrs.frozen
class ChannelSettings:
    """One configured channel: its name, its type, and the plugin's validated config."""

    name: str
    type: str
    config: Any = attrs.field(repr=False)
    quiet_hours: QuietHours | None = None
    rate_limit: RateLimit | None = None


@attrs.frozen
class Config:
    channels: dict[str, ChannelSettings]
    routing: Routing = attrs.field(factory=Routing)
    jobs: dict[str, JobRule] = attrs.field(factory=dict)
    rendering: RenderingSettings = attrs.field(factory=RenderingSettings)
    dispatch: DispatchSettings = attrs.field(factory=DispatchSettings)
    outbox: OutboxSettings | None = None
    grouping: dict[str, GroupingRule] = attrs.field(factory=dict)
    digest: dict[str, DigestRule] = attrs.field(factory=dict)
    serve: ServeSettings | None = None

    def grouping_for(self, event_type: str) -> GroupingRule | None:
        """The event type's grouping rule, else ``default``'s; ``None``: sent one by one."""
        return self.grouping.get(event_type, self.grouping.get("default"))

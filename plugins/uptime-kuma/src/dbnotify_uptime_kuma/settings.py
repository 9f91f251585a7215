"""The Uptime Kuma channel's configuration block."""

from __future__ import annotations

import enum
import re
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import attrs

from dbnotify.channel import Secret, describe_value, positive, setting
from dbnotify.http import url_problem, where


class Beat(enum.Enum):
    """The status of a push: Uptime Kuma takes anything but ``up`` as down."""

    UP = "up"
    DOWN = "down"


DEFAULT_SIGNALS: dict[str, Beat] = {
    "backup_success": Beat.UP,
    "backup_failure": Beat.DOWN,
}
"""Which events push, and with which status."""

EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
"""What dbnotify accepts as an event type (see ``dbnotify.Event``)."""
PUSH_PATH = "/api/push/"


def _signals(_inst: Any, _attr: Any, value: dict[str, Beat]) -> None:
    for name in value:
        if not EVENT_TYPE.fullmatch(name):
            raise ValueError(
                f"{describe_value(name)} is not an event type: 1 to 100 letters, digits "
                "and _ . : - (e.g. backup_failure)"
            )


SIGNALS_SCHEMA = {
    "type": "object",
    # unanchored: Python's $ also matches before a final line break
    "propertyNames": {"minLength": 1, "maxLength": 100, "not": {"pattern": "[^A-Za-z0-9_.:-]"}},
    "additionalProperties": {"enum": [b.value for b in Beat]},
}


def split_push_url(url: str) -> tuple[str, str]:
    """``(base, token)`` of a push URL: ``https://kuma.example.com/api/push/`` and the
    token. The query Uptime Kuma shows with it (``?status=up&msg=OK&ping=``) is dropped:
    the channel writes its own."""
    parts = urlsplit(url)
    head, _, token = parts.path.rpartition(PUSH_PATH)
    base = urlunsplit((parts.scheme, parts.netloc, head + PUSH_PATH, "", ""))
    return base, unquote(token.strip("/"))


def push_url_problem(url: str) -> str | None:
    """Why ``url`` is not a push monitor's URL, in words that never repeat it (the
    token in it is the credential)."""
    problem = url_problem(url)
    if problem:
        return problem
    path = urlsplit(url).path
    token = path.rpartition(PUSH_PATH)[2].strip("/")
    if PUSH_PATH not in path or not token or "/" in token:
        return (
            "must be a push monitor's URL, .../api/push/<token> (Uptime Kuma shows it on "
            "the monitor's page, monitor type Push)"
        )
    return None


def _push_url(_inst: Any, _attr: Any, value: Secret) -> None:
    problem = push_url_problem(value.reveal())
    if problem:
        raise ValueError(problem)


@attrs.frozen(repr=False)
class UptimeKumaConfig:
    push_url: Secret = setting(
        validator=_push_url,
        description="the push monitor's URL, a secret: its token is the credential",
        example='{ env = "UPTIME_KUMA_PUSH_URL" }',
    )
    signals: dict[str, Beat] = setting(
        factory=lambda: dict(DEFAULT_SIGNALS),
        validator=_signals,
        description="event type -> up | down; other events are skipped "
        "(default: backup_success = up, backup_failure = down)",
        schema=SIGNALS_SCHEMA,
    )
    duration_as_ping: bool = setting(
        default=True,
        description="send an event's Duration, in milliseconds, as the beat's ping",
    )
    timeout: float = setting(
        default=10.0, validator=positive, description="seconds to wait for Uptime Kuma"
    )

    @property
    def token(self) -> str:
        return split_push_url(self.push_url.reveal())[1]

    def url(self, beat: Beat, msg: str, ping: int | None) -> Secret:
        """The URL to push to, a secret as the push URL is."""
        base, token = split_push_url(self.push_url.reveal())
        query = urlencode(
            {"status": beat.value, "msg": msg, "ping": "" if ping is None else str(ping)}
        )
        return Secret(f"{base}{quote(token, safe='')}?{query}", source=self.push_url.source)

    @property
    def where(self) -> str:
        """``https://kuma.example.com``: scheme and host, never the token."""
        return where(self.push_url.reveal())

    def __repr__(self) -> str:
        shown: dict[str, Any] = {
            "push_url": self.where,
            "signals": {k: v.value for k, v in self.signals.items()},
            "duration_as_ping": self.duration_as_ping,
            "timeout": self.timeout,
        }
        return "UptimeKumaConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

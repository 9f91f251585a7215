"""The Healthchecks channel's configuration block."""

from __future__ import annotations

import enum
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from dbnotify.channel import Secret, describe_value, in_range, positive, setting
from dbnotify.http import url_problem, where


class Signal(enum.Enum):
    """What a ping tells Healthchecks: the suffix of the ping URL."""

    START = "start"
    SUCCESS = "success"
    FAIL = "fail"
    LOG = "log"

    @property
    def suffix(self) -> str:
        """``/start``, ``/fail``, ``/log``; nothing for a success."""
        return "" if self is Signal.SUCCESS else f"/{self.value}"


DEFAULT_SIGNALS: dict[str, Signal] = {
    "backup_started": Signal.START,
    "backup_success": Signal.SUCCESS,
    "backup_failure": Signal.FAIL,
}
"""Which events ping, and how. ``backup_started`` is not in DBackup's catalogue: a host
that reports a start (an event of its own, with a title) gets ``/start``."""

BODY_LIMIT = 100_000
"""Bytes of the log sent with a ping: what healthchecks.io keeps of a body (100 kB)."""

EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
"""What dbnotify accepts as an event type (see ``dbnotify.Event``)."""
_SIGNAL_WORDS = frozenset({"start", "fail", "log"})
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _signals(_inst: Any, _attr: Any, value: dict[str, Signal]) -> None:
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
    "additionalProperties": {"enum": [s.value for s in Signal]},
}


def ping_url_problem(url: str) -> str | None:
    """Why ``url`` is not a check's ping URL, in words that never repeat it (the UUID or
    the ping key in it is the credential)."""
    problem = url_problem(url)
    if problem:
        return problem
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return (
            "has no check in its path: copy the check's ping URL, e.g. "
            "https://hc-ping.com/<uuid> or https://hc-ping.com/<ping-key>/<slug>"
        )
    last = segments[-1]
    after_uuid = len(segments) > 1 and UUID.fullmatch(segments[-2]) is not None
    if after_uuid and (last in _SIGNAL_WORDS or last.isdigit()):
        return (
            f"must be the check's ping URL without /{'<exit-status>' if last.isdigit() else last}"
            ": the channel adds /start, /fail or /log itself"
        )
    if any(key == "rid" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return "must not carry rid=: the channel sets the run id itself (see run_id)"
    return None


def _ping_url(_inst: Any, _attr: Any, value: Secret) -> None:
    problem = ping_url_problem(value.reveal())
    if problem:
        raise ValueError(problem)


@attrs.frozen(repr=False)
class HealthchecksConfig:
    ping_url: Secret = setting(
        validator=_ping_url,
        description="the check's ping URL, a secret: its UUID (or ping key) is the credential",
        example='{ env = "HEALTHCHECKS_PING_URL" }',
    )
    signals: dict[str, Signal] = setting(
        factory=lambda: dict(DEFAULT_SIGNALS),
        validator=_signals,
        description="event type -> start | success | fail | log; other events are skipped "
        "(default: backup_started = start, backup_success = success, backup_failure = fail)",
        schema=SIGNALS_SCHEMA,
    )
    run_id: bool = setting(
        default=True,
        description="send a run id (rid) derived from the job's name, so that a job's start "
        "and finish pair up",
    )
    body_limit: int = setting(
        default=BODY_LIMIT,
        validator=in_range(0, 1_000_000),
        description="bytes of the log sent with each ping (healthchecks.io keeps 100 kB)",
    )
    timeout: float = setting(
        default=10.0, validator=positive, description="seconds to wait for Healthchecks"
    )

    def url(self, signal: Signal, rid: str | None) -> Secret:
        """The URL to ping for ``signal``: the check's, the suffix, the user's query (such
        as ``create=1``) and ``rid``. A secret, as the ping URL is."""
        parts = urlsplit(self.ping_url.reveal())
        query = parse_qsl(parts.query, keep_blank_values=True)
        if rid is not None:
            query.append(("rid", rid))
        path = parts.path.rstrip("/") + signal.suffix
        url = urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))
        return Secret(url, source=self.ping_url.source)

    @property
    def where(self) -> str:
        """``https://hc-ping.com``: scheme and host, never the check's UUID."""
        return where(self.ping_url.reveal())

    def __repr__(self) -> str:
        shown: dict[str, Any] = {
            "ping_url": self.where,
            "signals": {k: v.value for k, v in self.signals.items()},
            "run_id": self.run_id,
            "body_limit": self.body_limit,
            "timeout": self.timeout,
        }
        return "HealthchecksConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

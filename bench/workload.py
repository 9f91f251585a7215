"""What is sent: the events, the dbnotify configurations, and the baselines' message.

The baselines send the same content as dbnotify: the subject, text and HTML of a
``backup_success`` notification rendered once by dbnotify's own renderer, so that both
sides put messages of the same size on the wire.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from dbnotify import Event, User
from dbnotify.events import Notification, to_notification
from dbnotify.rendering import Renderer

SENDER = "dbackup@example.com"
FROM = f"DBackup <{SENDER}>"
RECIPIENTS = ("ops@example.com", "dba@example.com", "oncall@example.com")
USER_EMAIL = "alice@example.com"

DEADLINE = 600.0
"""Seconds, for the email channel's ``deadline`` and ``dispatch.deadline``.

A burst of 2,000 events through 8 connections queues for those connections; with the
defaults (50 s, 60 s) a slow pipeline would see the tail of the burst failed by its
deadline instead of measured. The bench measures throughput, so it raises both; a
delivery that fails anyway still makes its figure invalid.
"""


def backup_event(number: int) -> Event:
    """The ``number``-th of a night's backup jobs, finished."""
    return Event(
        "backup_success",
        {
            "job_name": f"nightly-{number:05d}",
            "source_name": f"pg-{number % 17:02d}.db.internal",
            "duration_ms": 61_000 + 37 * number,
            "size_bytes": 1_500_000_000 + 7919 * number,
        },
    )


def failure_event(number: int) -> Event:
    return Event(
        "backup_failure",
        {
            "job_name": f"nightly-{number:05d}",
            "source_name": f"mysql-{number % 11:02d}.db.internal",
            "error": f"mysqldump: Got error: 2013: Lost connection to server during query "
            f"(attempt {number % 3 + 1} of 3)",
        },
    )


def mixed_notifications(count: int, start: int = 0) -> list[Notification]:
    """Distinct notifications, three successes to one failure."""
    return [
        to_notification(failure_event(i) if i % 4 == 3 else backup_event(i))
        for i in range(start, start + count)
    ]


def login_event() -> Event:
    return Event(
        "user_login",
        {
            "user_name": "alice",
            "ip_address": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        },
        user=User(name="alice", email=USER_EMAIL),
    )


def email_channel(port: int, *, max_connections: int = 8) -> dict[str, Any]:
    return {**_plain_email(port), "max_connections": max_connections, "deadline": DEADLINE}


def throughput_config(port: int, outbox: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """Scenarios 1 and 2: every backup event to one email channel, 3 recipients; the
    outbox a SQLite file (its path) or ``[outbox]`` itself (PostgreSQL)."""
    config: dict[str, Any] = {
        "channels": {"ops-mail": email_channel(port)},
        "routing": {"channels": ["ops-mail"]},
        "dispatch": {"deadline": DEADLINE + 10},
    }
    if outbox is not None:
        config["outbox"] = {"path": outbox} if isinstance(outbox, str) else outbox
    return config


def _plain_email(port: int) -> dict[str, Any]:
    """An email channel as a host would write it: defaults for the rest."""
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": FROM,
        "to": list(RECIPIENTS),
    }


def email_only_config(smtp_port: int) -> dict[str, Any]:
    """Scenario 3's reference: the same email channel, alone."""
    return {
        "channels": {"ops-mail": _plain_email(smtp_port)},
        "routing": {"channels": ["ops-mail"]},
    }


def fanout_config(smtp_port: int, http_port: int) -> dict[str, Any]:
    """Scenario 3: an email channel, a webhook, and the user's own copy of a login."""
    return {
        "channels": {
            "ops-mail": _plain_email(smtp_port),
            "ops-hook": {"type": "webhook", "webhook_url": f"http://127.0.0.1:{http_port}/hook"},
        },
        "routing": {
            "channels": ["ops-mail", "ops-hook"],
            "events": {"user_login": {"enabled": True, "notify_user": "also"}},
        },
    }


@dataclasses.dataclass(frozen=True)
class Content:
    """Rendered once: what the baselines put in their messages."""

    subject: str
    text: str
    html: str

    @classmethod
    def sample(cls) -> Content:
        renderer = Renderer()
        notification = to_notification(backup_event(0))
        return cls(
            renderer.subject(notification), renderer.text(notification), renderer.html(notification)
        )


def naive_message(content: Content, number: int) -> EmailMessage:
    """What a naive client builds: EmailMessage, set_content, add_alternative."""
    msg = EmailMessage()
    msg["Subject"] = content.subject
    msg["From"] = FROM
    msg["To"] = ", ".join(RECIPIENTS)
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = f"<bench.{number}@example.com>"
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    return msg


def prebuilt_message(content: Content) -> bytes:
    """The naive message as the bytes that go over SMTP (CRLF line ends)."""
    return naive_message(content, 0).as_bytes(policy=SMTP)

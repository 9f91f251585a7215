"""Shared pieces of the Twilio SMS channel's tests: a real HTTP server (pytest-httpserver's
``httpserver``), a port with nothing listening, and the events they send."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from typing import Any

import pytest

from dbnotify import Event, Notifier

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dcafe" * 4
WHEN = dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.UTC)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def failure_event() -> Event:
    return Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"}, timestamp=WHEN)


@pytest.fixture
def success_event() -> Event:
    return Event(
        "backup_success",
        {"job_name": "nightly-pg", "duration_ms": 83000, "size_bytes": 1536000},
        timestamp=WHEN,
    )


@pytest.fixture
def make_notifier() -> Callable[..., Notifier]:
    """``make_notifier(api_url, **options)``: one Twilio SMS channel ``sms`` from
    +15017122661 to +4915112345678 and +4917612345678, routed for every event."""

    def make(api_url: str, **options: Any) -> Notifier:
        rendering = options.pop("rendering", None)
        block = {
            "type": "twilio-sms",
            "api_url": api_url,
            "account_sid": SID,
            "auth_token": TOKEN,
            "from": "+15017122661",
            "to": ["+4915112345678", "+4917612345678"],
            **options,
        }
        config: dict[str, Any] = {
            "channels": {"sms": block},
            "routing": {"channels": ["sms"]},
            "dispatch": {"deadline": 20},
        }
        if rendering is not None:
            config["rendering"] = rendering
        return Notifier.from_config(config)

    return make

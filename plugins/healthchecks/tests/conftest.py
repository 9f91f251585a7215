"""Shared pieces of the Healthchecks channel's tests: a real HTTP server (pytest-httpserver's
``httpserver``), a port with nothing listening, and the events they send."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from typing import Any

import pytest

from dbnotify import Event, Notifier

CHECK = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
"""The check's UUID: the credential of a ping URL."""
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
    """``make_notifier(ping_url, **options)``: one healthchecks channel ``hc``, routed for
    every event."""

    def make(ping_url: str, **options: Any) -> Notifier:
        rendering = options.pop("rendering", None)
        block = {"type": "healthchecks", "ping_url": ping_url, **options}
        config: dict[str, Any] = {
            "channels": {"hc": block},
            "routing": {"channels": ["hc"]},
            "dispatch": {"deadline": 20},
        }
        if rendering is not None:
            config["rendering"] = rendering
        return Notifier.from_config(config)

    return make

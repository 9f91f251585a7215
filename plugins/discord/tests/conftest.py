"""A real HTTP server (pytest-httpserver) and the shared webhook fixtures, for discord."""

from __future__ import annotations

import pytest

from dbnotify.testing.webhooks import (  # noqa: F401 - fixtures
    answer,
    client_logs,
    closed_port,
    hook_url,
    make_notifier,
    received,
    token,
)


@pytest.fixture
def channel_type() -> str:
    return "discord"

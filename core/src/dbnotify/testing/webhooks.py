"""Fixtures for testing webhook-style channels against a real local HTTP server.

Uses pytest-httpserver (``pip install pytest-httpserver``). In a plugin's
``tests/conftest.py``, import the fixtures and name the channel type::

    from dbnotify.testing.webhooks import (  # noqa: F401 - fixtures
        answer, client_logs, closed_port, hook_url, make_notifier, received, token,
    )

    @pytest.fixture
    def channel_type() -> str:
        return "discord"

The channel's config must take its URL as ``webhook_url``.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import METHOD_ALL

from dbnotify import Notifier

TOKEN = "s3cr3t-t0ken-0f-th3-h00k"  # noqa: S105 - a test value, the one that must never show
"""In the URL's path, as Discord, Slack and Teams put theirs: never shown anywhere."""
PATH = f"/hooks/1234/{TOKEN}"


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def hook_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for(PATH)


@pytest.fixture
def answer(httpserver: HTTPServer) -> Callable[..., None]:
    """``answer(status=200, body="", headers=None, method=None)``: how the hook replies."""

    def respond(
        status: int = 200,
        body: str = "",
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> None:
        httpserver.expect_request(PATH, method=method or METHOD_ALL).respond_with_data(
            body, status=status, headers=headers
        )

    return respond


@pytest.fixture
def make_notifier(hook_url: str, channel_type: str) -> Callable[..., Notifier]:
    """``make_notifier(**options)``: one channel ``hook`` of ``channel_type``, routed for
    every event; ``webhook_url`` defaults to the test server's URL (:data:`TOKEN` in it).
    """

    def make(**options: Any) -> Notifier:
        block: dict[str, Any] = {"type": channel_type, "webhook_url": hook_url, **options}
        return Notifier.from_config(
            {"channels": {"hook": block}, "routing": {"channels": ["hook"]}}
        )

    return make


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


@pytest.fixture
def token() -> str:
    """The secret in the webhook URL's path."""
    return TOKEN


@pytest.fixture
def received(httpserver: HTTPServer) -> Callable[[], list[dict[str, Any]]]:
    """What the server received: method, path, headers (lower-case names), body, JSON."""

    def get() -> list[dict[str, Any]]:
        return [
            {
                "method": request.method,
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": request.get_data(),
                "json": _json_or_none(request.get_data()),
            }
            for request, _response in httpserver.log
        ]

    return get


SERVER_LOGGERS = ("werkzeug", "pytest_httpserver")
"""The test server's own loggers: it sees the URL by nature."""


@pytest.fixture
def client_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """Every log message, DEBUG and up, of every logger but the test server's."""
    with caplog.at_level(logging.DEBUG):
        yield lambda: "\n".join(
            r.getMessage()
            for r in caplog.records
            if not any(r.name == n or r.name.startswith(n + ".") for n in SERVER_LOGGERS)
        )

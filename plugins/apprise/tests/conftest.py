"""A real HTTP server on 127.0.0.1 (pytest-httpserver) that Apprise's ``json://`` posts to."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Notifier
from dbnotify.plugins import ALLOW_ENV, PluginRegistry

PASSWORD = "contract-Pa55-apprise-4e2b"
TOKEN = "Tok3n-in-the-path-8c1d"


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def json_url(httpserver: HTTPServer) -> Callable[..., str]:
    """``json_url("/hook", status=200)``: an Apprise json:// URL to the local server, with a
    user, a password and a token in the path; the server answers ``status`` there."""

    def make(path: str = "/hook", status: int = 200, user: str = "dbackup") -> str:
        full = f"{path}/{TOKEN}"
        httpserver.expect_request(full, method="POST").respond_with_data(
            "ok" if status < 300 else "refused", status=status
        )
        return f"json://{user}:{PASSWORD}@127.0.0.1:{httpserver.port}{full}"

    return make


@pytest.fixture
def posted(httpserver: HTTPServer) -> Callable[[], list[dict[str, Any]]]:
    """The JSON bodies the local server received, in order."""

    def bodies() -> list[dict[str, Any]]:
        return [json.loads(request.get_data()) for request, _response in httpserver.log]

    return bodies


@pytest.fixture
def make_notifier() -> Callable[..., Notifier]:
    """``make_notifier(urls)``: one apprise channel ``alerts`` routed for every event."""

    def make(urls: list[Any]) -> Notifier:
        config = {
            "channels": {"alerts": {"type": "apprise", "urls": urls}},
            "routing": {"channels": ["alerts"]},
            "dispatch": {"deadline": 20},
        }
        return Notifier.from_config(config, plugins=PluginRegistry(environ={ALLOW_ENV: "apprise"}))

    return make


@pytest.fixture
def url_secrets() -> tuple[str, str]:
    """The password and the path token in every ``json_url``."""
    return PASSWORD, TOKEN

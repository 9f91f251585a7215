"""The ntfy channel passes the plugin contract suite, against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify.testing.contract import ChannelContract

TOKEN = "tk_contractntfyt0ken5e1f2a9d"
TOPIC = "dbackup-contract"
FORBIDDEN = "reserved-topic"


class TestNtfyContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "ntfy"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """ntfy: one topic that takes the token, one this token may not write to (403)."""
        httpserver.expect_request(
            f"/{TOPIC}", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
        ).respond_with_json({"id": "x", "event": "message", "topic": TOPIC})
        httpserver.expect_request(f"/{FORBIDDEN}", method="POST").respond_with_data(
            '{"code":40301,"http":403,"error":"forbidden"}',
            status=403,
            content_type="application/json",
        )
        return httpserver

    def _options(self, url: str, topic: str = TOPIC) -> dict[str, Any]:
        return {"server_url": url, "topic": topic, "access_token": TOKEN, "timeout": 5}

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"))

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return self._options(f"http://127.0.0.1:{closed_port}")

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"), FORBIDDEN)

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(1 for request, _ in server.log if request.path == f"/{TOPIC}")

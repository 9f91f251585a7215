"""The Uptime Kuma channel passes the plugin contract suite, against a real local HTTP
server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify.testing.contract import EVENT_TYPE, ChannelContract

TOKEN = "cT9fKq2LmZ7xWb4R"
PAUSED = "pA8sEdMoNiToR0x1"


class TestUptimeKumaContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "uptime-kuma"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """Uptime Kuma: one active push monitor, one paused (404, as Uptime Kuma says)."""
        httpserver.expect_request(f"/api/push/{TOKEN}", method="GET").respond_with_json(
            {"ok": True}
        )
        httpserver.expect_request(f"/api/push/{PAUSED}", method="GET").respond_with_json(
            {"ok": False, "msg": "Monitor not found or not active."}, status=404
        )
        return httpserver

    def _options(self, url: str) -> dict[str, Any]:
        # the contract's event is outside the catalogue: it is given a status here
        return {"push_url": url, "signals": {EVENT_TYPE: "down"}, "timeout": 5}

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for(f"/api/push/{TOKEN}") + "?status=up&msg=OK&ping=")

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return self._options(f"http://127.0.0.1:{closed_port}/api/push/{TOKEN}")

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for(f"/api/push/{PAUSED}"))

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(1 for request, _ in server.log if request.path == f"/api/push/{TOKEN}")

"""The Healthchecks channel passes the plugin contract suite, against a real local HTTP
server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify.testing.contract import EVENT_TYPE, ChannelContract

CHECK = "0f4b7f3e-9d1c-4a57-8e2b-6c3d5a1b9e70"
DELETED = "7d2c4e11-5b6a-4f08-9c3e-1a2b3c4d5e6f"


class TestHealthchecksContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "healthchecks"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """Healthchecks: one check that takes every signal, one deleted check (404)."""
        for suffix in ("", "/start", "/fail", "/log"):
            httpserver.expect_request(f"/ping/{CHECK}{suffix}", method="POST").respond_with_data(
                "OK", content_type="text/plain; charset=utf-8"
            )
        httpserver.expect_request(f"/ping/{DELETED}", method="POST").respond_with_data(
            "not found", status=404, content_type="text/plain; charset=utf-8"
        )
        return httpserver

    def _options(self, url: str) -> dict[str, Any]:
        # the contract's event is outside the catalogue: it is given a signal here
        return {"ping_url": url, "signals": {EVENT_TYPE: "success"}, "timeout": 5}

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for(f"/ping/{CHECK}"))

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return self._options(f"http://127.0.0.1:{closed_port}/ping/{CHECK}")

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for(f"/ping/{DELETED}"))

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [CHECK]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(
            1 for request, _ in server.log if request.path.startswith(f"/ping/{CHECK}")
        )

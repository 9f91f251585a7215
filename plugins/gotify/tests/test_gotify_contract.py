"""The Gotify channel passes the plugin contract suite, against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify.testing.contract import ChannelContract

TOKEN = "AcontractGotifyT0ken"
REFUSED_TOKEN = "ArevokedGotifyT0ken"


class TestGotifyContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "gotify"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """Gotify: the good token is accepted, the revoked one refused with 401."""
        httpserver.expect_request(
            "/message", method="POST", headers={"X-Gotify-Key": TOKEN}
        ).respond_with_json({"id": 1})
        httpserver.expect_request("/message", method="POST").respond_with_data(
            '{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide '
            'a valid access token or user credentials to access this api"}',
            status=401,
            content_type="application/json",
        )
        return httpserver

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return {"server_url": server.url_for("/"), "app_token": TOKEN, "timeout": 5}

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return {"server_url": f"http://127.0.0.1:{closed_port}", "app_token": TOKEN}

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return {"server_url": server.url_for("/"), "app_token": REFUSED_TOKEN, "timeout": 5}

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(
            1 for request, _ in server.log if request.headers.get("X-Gotify-Key") == TOKEN
        )

"""The teams channel passes the plugin contract suite, against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify.testing.contract import ChannelContract

TOKEN = "contract-t0ken-teams-5e1f2a"
OK_PATH = f"/hooks/ok/{TOKEN}"
REFUSED_PATH = f"/hooks/refused/{TOKEN}"


class TestTeamsContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "teams"

    @pytest.fixture
    def valid_options(self, httpserver: HTTPServer) -> dict[str, Any]:
        httpserver.expect_request(OK_PATH, method="POST").respond_with_data("1", status=200)
        return {"webhook_url": httpserver.url_for(OK_PATH)}

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return {"webhook_url": f"http://127.0.0.1:{closed_port}{OK_PATH}"}

    @pytest.fixture
    def rejecting_options(self, httpserver: HTTPServer) -> dict[str, Any]:
        httpserver.expect_request(REFUSED_PATH).respond_with_data("gone", status=404)
        return {"webhook_url": httpserver.url_for(REFUSED_PATH)}

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN]

    @pytest.fixture
    def received(self, httpserver: HTTPServer) -> Callable[[], int]:
        return lambda: sum(1 for request, _ in httpserver.log if request.path == OK_PATH)

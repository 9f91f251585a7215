"""The apprise channel passes the plugin contract suite, against a real HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbnotify.testing.contract import ChannelContract


class TestAppriseContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "apprise"

    @pytest.fixture
    def valid_options(self, json_url: Any) -> dict[str, Any]:
        return {"urls": [json_url("/hook")]}

    @pytest.fixture
    def unreachable_options(self, closed_port: int, url_secrets: Any) -> dict[str, Any]:
        password, token = url_secrets
        return {"urls": [f"json://dbackup:{password}@127.0.0.1:{closed_port}/hook/{token}"]}

    @pytest.fixture
    def rejecting_options(self, json_url: Any) -> dict[str, Any]:
        return {"urls": [json_url("/denied", status=403)]}

    @pytest.fixture
    def secret_values(self, valid_options: dict[str, Any], url_secrets: Any) -> list[str]:
        return [*url_secrets, valid_options["urls"][0]]

    @pytest.fixture
    def received(self, httpserver: Any) -> Callable[[], int]:
        return lambda: len(httpserver.log)

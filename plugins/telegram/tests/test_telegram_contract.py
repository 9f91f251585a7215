"""The Telegram channel passes the plugin contract suite, against a real local HTTP server
standing in for the Bot API (the bot token is in every URL path: the suite checks that it
never shows, httpx's request log included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dbnotify.testing.contract import ChannelContract

TOKEN = "987654321:AAcontractTelegramT0ken_5e1f2a9d"
PATH = f"/bot{TOKEN}/sendMessage"
CHAT = -1001234567890
GONE_CHAT = -1009999999999


class TestTelegramContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "telegram"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """The Bot API: the known chat takes messages, the other is not found (400)."""
        httpserver.expect_request(PATH, method="POST").respond_with_handler(
            lambda request: _answer(request.get_json())
        )
        return httpserver

    def _options(self, url: str, chat: int = CHAT) -> dict[str, Any]:
        return {"api_url": url, "bot_token": TOKEN, "chat_id": chat, "timeout": 5}

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"))

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return self._options(f"http://127.0.0.1:{closed_port}")

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"), GONE_CHAT)

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN, TOKEN.partition(":")[2]]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(
            1
            for request, response in server.log
            if request.path == PATH and response.status_code == 200
        )


def _answer(body: Any) -> Response:
    if isinstance(body, dict) and body.get("chat_id") == CHAT:
        return Response('{"ok":true,"result":{"message_id":1}}', content_type="application/json")
    return Response(
        '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}',
        status=400,
        content_type="application/json",
    )

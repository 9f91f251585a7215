"""The Twilio SMS channel passes the plugin contract suite, against a real local HTTP
server standing in for Twilio's REST API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dbnotify.testing.contract import ChannelContract

SID = "AC" + "5e1f2a9d" * 4
TOKEN = "c0ntract" + "7f3a" * 6
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
GOOD = ["+4915112345678", "+4917612345678"]
STOPPED = "+4916012345678"


def _answer(request: Request) -> Response:
    if request.form.get("To") == STOPPED:
        body = {
            "code": 21610,
            "message": "Attempt to send to unsubscribed recipient",
            "more_info": "https://www.twilio.com/docs/errors/21610",
            "status": 400,
        }
        return Response(json.dumps(body), status=400, content_type="application/json")
    return Response('{"sid": "SM1", "status": "queued"}', status=201)


class TestTwilioSmsContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "twilio-sms"

    @pytest.fixture
    def server(self, httpserver: HTTPServer) -> HTTPServer:
        """Twilio: every number takes the SMS, but one that replied STOP (21610)."""
        httpserver.expect_request(PATH, method="POST").respond_with_handler(_answer)
        return httpserver

    def _options(self, url: str, to: list[str]) -> dict[str, Any]:
        return {
            "api_url": url,
            "account_sid": SID,
            "auth_token": TOKEN,
            "from": "+15017122661",
            "to": to,
            "timeout": 5,
        }

    @pytest.fixture
    def valid_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"), GOOD)

    @pytest.fixture
    def unreachable_options(self, closed_port: int) -> dict[str, Any]:
        return self._options(f"http://127.0.0.1:{closed_port}", GOOD)

    @pytest.fixture
    def rejecting_options(self, server: HTTPServer) -> dict[str, Any]:
        return self._options(server.url_for("/"), [STOPPED])

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [TOKEN]

    @pytest.fixture
    def received(self, server: HTTPServer) -> Callable[[], int]:
        return lambda: sum(1 for _, response in server.log if response.status_code == 201)

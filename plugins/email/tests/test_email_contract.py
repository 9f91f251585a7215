"""The email channel passes the plugin contract suite, against a real local SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbnotify.testing.contract import ChannelContract
from dbnotify.testing.smtpd import LocalSMTPServer

USER = "mailer"
PASSWORD = "contract-Pa55word-9d1e"
TO = "ops@example.com"
REFUSED = "gone@example.com"


class TestEmailContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "email"

    @pytest.fixture
    async def server(self, smtp_server: Any) -> LocalSMTPServer:
        """STARTTLS (trustme CA) and AUTH, one address refused for good."""
        server: LocalSMTPServer = await smtp_server(
            starttls=True,
            credentials={USER: PASSWORD},
            auth_require_tls=True,
            rcpt_replies={REFUSED: "550 5.1.1 <gone@example.com>: no such user"},
        )
        return server

    @pytest.fixture
    def ca_file(self, tls: Any) -> str:
        return str(tls.ca_file)

    def _options(self, port: int, ca_file: str, to: str = TO) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": port,
            "security": "starttls",
            "tls_ca_file": ca_file,
            "user": USER,
            "password": PASSWORD,
            "from": "DBackup <dbackup@example.com>",
            "to": [to],
            "timeout": 5,
        }

    @pytest.fixture
    def valid_options(self, server: LocalSMTPServer, ca_file: str) -> dict[str, Any]:
        return self._options(server.port, ca_file)

    @pytest.fixture
    def unreachable_options(self, closed_port: int, ca_file: str) -> dict[str, Any]:
        return self._options(closed_port, ca_file)

    @pytest.fixture
    def rejecting_options(self, server: LocalSMTPServer, ca_file: str) -> dict[str, Any]:
        return self._options(server.port, ca_file, to=REFUSED)

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [PASSWORD]

    @pytest.fixture
    def received(self, server: LocalSMTPServer) -> Callable[[], int]:
        return lambda: len(server.messages)

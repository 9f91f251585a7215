"""A real SMTP server on 127.0.0.1 that keeps what it receives.

aiosmtpd's protocol on the caller's own event loop, on a port the OS picks. Used by
``dbnotify demo`` and by tests: TLS (implicit or STARTTLS), AUTH and per-command
replies are configurable so tests can make it misbehave.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import attrs
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@attrs.frozen
class Received:
    """One message as the server got it: envelope and parsed content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    auth_user: str | None = None
    tls: bool = False

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content = body.get_content()
        assert isinstance(content, str)
        return content


@attrs.define
class _Handler:
    server: LocalSMTPServer

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _options: list[str],
    ) -> str:
        reply = self.server.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        received = Received(
            str(envelope.mail_from),
            tuple(envelope.rcpt_tos),
            content,
            auth_user=self.server.auth_users.get(id(session)),
            tls=session.ssl is not None or self.server.implicit_tls,
        )
        self.server.messages.append(received)
        for callback in self.server.on_message:
            callback(received)
        self.server.arrived.set()
        return "250 Message accepted for delivery"


@attrs.define
class LocalSMTPServer:
    """``async with LocalSMTPServer() as server:`` then send to ``server.port``."""

    host: str = "127.0.0.1"
    tls_context: ssl.SSLContext | None = None
    """Server-side context: enables STARTTLS, or implicit TLS with ``implicit_tls``."""
    implicit_tls: bool = False
    require_starttls: bool = False
    credentials: dict[str, str] | None = None
    """user -> password; when set, AUTH is offered (and required)."""
    auth_require_tls: bool = False
    rcpt_replies: dict[str, str] = attrs.field(factory=dict)
    """address -> reply, e.g. ``{"bad@example.com": "550 5.1.1 no such user"}``."""
    messages: list[Received] = attrs.field(factory=list)
    on_message: list[Callable[[Received], None]] = attrs.field(factory=list)
    auth_users: dict[int, str] = attrs.field(factory=dict)
    arrived: asyncio.Event = attrs.field(factory=asyncio.Event)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    def _authenticate(
        self,
        _server: SMTP,
        session: Session,
        _envelope: Envelope,
        _mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        ok = self.credentials.get(user) == auth_data.password.decode()
        if ok:
            self.auth_users[id(session)] = user
        return AuthResult(success=ok, handled=False)

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="dbnotify.test",
            tls_context=None if self.implicit_tls else self.tls_context,
            require_starttls=self.require_starttls,
            authenticator=self._authenticate if self.credentials is not None else None,
            auth_required=self.credentials is not None,
            auth_require_tls=self.auth_require_tls,
            decode_data=False,
            enable_SMTPUTF8=True,
        )

    async def start(self) -> LocalSMTPServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, 0, ssl=self.tls_context if self.implicit_tls else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LocalSMTPServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

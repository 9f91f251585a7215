"""Real SMTP servers on 127.0.0.1 for the email channel's tests.

* ``smtp_server``: the core's :class:`LocalSMTPServer` (aiosmtpd) on the test's loop.
* :class:`ScriptedServer`: a raw ``asyncio.start_server`` script for behaviour aiosmtpd
  cannot produce (silence, odd greetings, replies to STARTTLS); it records every command
  line it receives, so tests can say what the client did *not* send.
* TLS certificates come from ``trustme``: one CA for the session, a certificate for
  ``127.0.0.1`` and ``localhost``, and the CA's PEM file for ``tls_ca_file``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trustme

from dbnotify import Notifier
from dbnotify.testing.smtpd import LocalSMTPServer

HOST = "127.0.0.1"
SENDER = "DBackup Alerts <dbackup@example.com>"


# --- TLS ------------------------------------------------------------------------------


@attrs.frozen
class TLS:
    ca: trustme.CA
    server_context: ssl.SSLContext
    ca_file: str
    """PEM of the CA that signed the server's certificate: the client's tls_ca_file."""


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLS(ca, context, str(ca_file))


# --- servers --------------------------------------------------------------------------


ServerFactory = Callable[..., Awaitable[LocalSMTPServer]]


@pytest.fixture
async def smtp_server(tls: TLS) -> AsyncIterator[ServerFactory]:
    """``server = await smtp_server(starttls=True, ...)``; stopped after the test.

    ``starttls=True`` offers STARTTLS, ``implicit_tls=True`` speaks TLS from the start;
    other keywords go to :class:`LocalSMTPServer`.
    """
    started: list[LocalSMTPServer] = []

    async def start(
        *, starttls: bool = False, implicit_tls: bool = False, **options: Any
    ) -> LocalSMTPServer:
        context = tls.server_context if (starttls or implicit_tls) else None
        server = LocalSMTPServer(tls_context=context, implicit_tls=implicit_tls, **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


EHLO_PLAIN = "250-raw.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN"
"""An EHLO reply that offers AUTH but no STARTTLS."""


@attrs.define
class ScriptedServer:
    """A raw SMTP-ish server: a greeting, then one reply per command verb.

    ``greeting=None`` accepts the connection and never says a word. ``replies`` maps a
    verb (``EHLO``, ``STARTTLS``, ``MAIL`` ...) to a reply (CRLF-separated lines).
    ``DATA`` is answered 354, the message read to the dot, then ``replies["."]``.
    ``drop_on`` names a verb whose arrival closes the connection without a reply.
    """

    greeting: str | None = "220 raw.test ESMTP"
    tls_context: ssl.SSLContext | None = None
    """Speak TLS from the start (implicit TLS) with this server-side context."""
    replies: dict[str, str] = attrs.field(factory=dict)
    starttls_context: ssl.SSLContext | None = None
    """Answer STARTTLS with 220 and upgrade with this server-side context."""
    starttls_inject: str | None = None
    """Plaintext sent right after the STARTTLS 220, in the same write (a MITM's trick)."""
    drop_on: str | None = None
    """Close the connection instead of answering this verb (``.`` = after the message)."""
    delay: float = 0.0
    """Seconds to wait before each reply after the greeting (a slow-drip server)."""
    close_after: str | None = None
    """Close the connection right after answering this verb (e.g. ``AUTH``)."""
    drop_mid_data: bool = False
    """Answer DATA with 354, read the first line of the message, then close."""
    endless_on: str | None = None
    """Answer this verb with ``250-`` lines that never end."""
    stale_after: int | None = None
    """After this many messages on one connection, answer the next command with
    ``421 4.4.2 raw.test idle timeout, closing`` and close (an idle timer that fired)."""
    rcpt_limit: int | None = None
    """Answer ``452 4.5.3 Too many recipients`` to every RCPT after this many in a
    transaction."""
    commands: list[str] = attrs.field(factory=list)
    """Every command line received, in order (message content excluded)."""
    data: list[bytes] = attrs.field(factory=list)
    """Every message received (dot-stuffing undone), in order."""
    envelopes: list[tuple[str, tuple[str, ...]]] = attrs.field(factory=list)
    """MAIL FROM and the accepted RCPT TO addresses of each message in ``data``."""
    connections: int = 0
    """Connections accepted."""
    closed: int = 0
    """Connections that have ended (either side closed)."""
    tls_from: int | None = None
    """Index in ``commands`` of the first command received over TLS after STARTTLS."""
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _writers: list[asyncio.StreamWriter] = attrs.field(factory=list)
    _handlers: set[asyncio.Task[None]] = attrs.field(factory=set)

    DEFAULTS = {  # noqa: RUF012 - a class constant
        "EHLO": EHLO_PLAIN,
        "HELO": "250 raw.test",
        "MAIL": "250 2.1.0 OK",
        "RCPT": "250 2.1.5 OK",
        "RSET": "250 OK",
        "NOOP": "250 OK",
        ".": "250 2.0.0 queued",
    }

    @property
    def verbs(self) -> list[str]:
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    async def start(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, HOST, 0, ssl=self.tls_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        # closing a connection ends its handler (the client may still hold it in its
        # pool); cancel only what is still running after that
        for writer in self._writers:
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1)
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def close_idle(self) -> None:
        """Close every open connection, as a server does with idle clients."""
        for writer in self._writers:
            writer.close()

    def _reply(self, verb: str) -> str:
        return self.replies.get(verb, self.DEFAULTS.get(verb, "502 5.5.2 not implemented"))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            if self.greeting is None:
                await reader.read()  # silent until the client gives up
                return
            await self._send(writer, self.greeting)
            mail_from: str = ""
            in_mail = False
            accepted: list[str] = []
            messages = 0
            while line := await reader.readline():
                command = line.decode("utf-8", "replace").rstrip("\r\n")
                self.commands.append(command)
                verb = command.split(" ", 1)[0].upper()
                if self.stale_after is not None and messages >= self.stale_after:
                    await self._send(writer, "421 4.4.2 raw.test idle timeout, closing")
                    return
                if verb == "QUIT":
                    await self._send(writer, "221 2.0.0 bye")
                    return
                if verb == self.drop_on:
                    return
                if verb == self.endless_on:
                    while True:
                        await self._send(writer, "250-" + "x" * 70)
                if verb == "MAIL":
                    mail_from, accepted = _address(command), []
                    in_mail = self._reply("MAIL").startswith("2")
                if verb == "RSET":
                    accepted, in_mail = [], False
                if verb == "RCPT":
                    if not in_mail:  # as Postfix: a pipelined RCPT after a refused MAIL
                        await self._answer(writer, "503 5.5.1 Error: need MAIL command")
                        continue
                    if self.rcpt_limit is not None and len(accepted) >= self.rcpt_limit:
                        await self._answer(writer, "452 4.5.3 Too many recipients")
                        continue
                    if self._reply("RCPT").startswith("2"):
                        accepted.append(_address(command))
                if verb == "STARTTLS" and self.starttls_context is not None:
                    ready = "220 2.0.0 ready to start TLS"
                    if self.starttls_inject is not None:
                        ready += "\r\n" + self.starttls_inject
                    await self._send(writer, ready)
                    await writer.start_tls(self.starttls_context)
                    self.tls_from = len(self.commands)
                    continue
                if verb == "DATA" and not accepted and "DATA" not in self.replies:
                    # RFC 2920: refused, so that a pipelined DATA after refusals sends nothing
                    await self._answer(writer, "554 5.5.1 Error: no valid recipients")
                    continue
                if verb == "DATA" and "DATA" not in self.replies:
                    await self._send(writer, "354 go ahead")
                    if self.drop_mid_data:
                        await reader.readline()
                        return
                    content = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        content += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.data.append(bytes(content))
                    self.envelopes.append((mail_from, tuple(accepted)))
                    accepted, in_mail = [], False
                    messages += 1
                    verb = "."
                    if verb == self.drop_on:
                        return
                reply = self._reply(verb)
                await self._answer(writer, reply)
                if reply.startswith("421") or reply.startswith("554 ") or verb == self.close_after:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass  # a cancelled handler would make asyncio's stream callback log an error
        finally:
            self.closed += 1
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, reply: str) -> None:
        await asyncio.sleep(self.delay)
        await self._send(writer, reply)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: str) -> None:
        writer.write(reply.encode() + b"\r\n")
        await writer.drain()


def _address(command: str) -> str:
    """The address in ``MAIL FROM:<a>`` / ``RCPT TO:<a>``."""
    return command.partition("<")[2].partition(">")[0]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedServer]]]:
    started: list[ScriptedServer] = []

    async def start(**options: Any) -> ScriptedServer:
        server = await ScriptedServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# --- configuration helpers ------------------------------------------------------------
# Fixtures, not importable helpers: test modules are imported with importlib mode and
# cannot import conftest.


def _email_channel(port: int, **options: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "email",
        "host": HOST,
        "port": port,
        "security": "none",
        "from": SENDER,
        "to": ["ops@example.com"],
        "timeout": 5,
    }
    block.update(options)
    return block


def _config(
    port: int, *, routing: dict[str, Any] | None = None, deadline: float = 10, **options: Any
) -> dict[str, Any]:
    return {
        "channels": {"mail": _email_channel(port, **options)},
        "routing": {"channels": ["mail"], **(routing or {})},
        "dispatch": {"deadline": deadline},
    }


@pytest.fixture
def make_notifier() -> Callable[..., Notifier]:
    """``make_notifier(port, **channel_options, routing={...}, deadline=10)``.

    Notifier.from_config with one email channel ``mail`` for 127.0.0.1:port (security
    none, from ``DBackup Alerts <dbackup@example.com>``, to ``ops@example.com``, timeout
    5 s), routed for every event; ``deadline`` is ``dispatch.deadline``.
    """

    def make(port: int, **options: Any) -> Notifier:
        return Notifier.from_config(_config(port, **options))

    return make

"""Real SMTP servers on 127.0.0.1 for the email channel's tests.

* ``smtp_server``: the core's :class:`LocalSMTPServer` (aiosmtpd) on the test's loop.
* ``scripted``: the core's :class:`ScriptedSMTPServer`, a raw script for behaviour
  aiosmtpd cannot produce (silence, odd greetings, replies to STARTTLS); it records every
  command line it receives, so tests can say what the client did *not* send.
* TLS certificates come from ``trustme``: one CA for the session, a certificate for
  ``127.0.0.1`` and ``localhost``, and the CA's PEM file for ``tls_ca_file``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trustme

from dbnotify import Notifier
from dbnotify.testing.scripted import ScriptedSMTPServer
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


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedSMTPServer]]]:
    """``server = await scripted(greeting=None, ...)``: a :class:`ScriptedSMTPServer`,
    stopped after the test."""
    started: list[ScriptedSMTPServer] = []

    async def start(**options: Any) -> ScriptedSMTPServer:
        server = await ScriptedSMTPServer(host=HOST, **options).start()
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

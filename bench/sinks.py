"""Servers that take what they are sent, count it and throw it away.

- :class:`SMTPSink`: aiosmtpd, for machines without Postfix's ``smtp-sink``. Like
  ``smtp-sink`` it offers PIPELINING (aiosmtpd reads commands one after the other, so
  pipelined commands are answered in order) and 8BITMIME, and it counts messages and
  recipients.
- :class:`HTTPSink`: the webhook's endpoint; answers every request ``204 No Content``,
  keep-alive, and counts requests.

Both run in a process of their own (``bench.child``), never on the loop under
measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class _Counter:
    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.messages = 0
        self.recipients = 0
        self.bytes = 0
        self.sessions = 0

    async def handle_EHLO(
        self,
        _server: SMTP,
        session: Session,
        _envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        self.messages += 1
        self.recipients += len(envelope.rcpt_tos)
        content = envelope.original_content or b""
        self.bytes += len(content)
        return "250 2.0.0 Ok: queued"


class SMTPSink:
    def __init__(self, *, pipelining: bool = True) -> None:
        self.counter = _Counter(pipelining)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    def _protocol(self) -> SMTP:
        self.counter.sessions += 1
        return SMTP(
            self.counter,
            hostname="sink.bench.test",
            ident="bench sink",
            decode_data=False,
            enable_SMTPUTF8=True,
        )

    async def start(self, host: str = "127.0.0.1") -> int:
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, 0, backlog=1000)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def stats(self) -> dict[str, Any]:
        c = self.counter
        return {
            "messages": c.messages,
            "recipients": c.recipients,
            "bytes": c.bytes,
            "sessions": c.sessions,
        }


class HTTPSink:
    """Just enough HTTP/1.1: request line, headers, a Content-Length body; keep-alive."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.bytes = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0, backlog=1000)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "connections": self.connections, "bytes": self.bytes}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                    elif name.strip().lower() == b"connection":
                        close = value.strip().lower() == b"close"
                body = await reader.readexactly(length) if length else b""
                self.requests += 1
                self.bytes += len(body)
                writer.write(
                    b"HTTP/1.1 204 No Content\r\nServer: bench-sink\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                )
                await writer.drain()
                if close:
                    return
        except (OSError, ValueError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

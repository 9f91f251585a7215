"""Commands out, replies in: a group of commands in one write where the server allows it.

aiosmtplib sends one command and waits for its reply, and its protocol drops a reply that
arrives while no command waits for one, so it cannot pipeline. With PIPELINING (RFC 2920)
MAIL, every RCPT and DATA go out together and their replies come back together: a message
costs two round trips instead of three plus one per recipient, and one where the next
message's MAIL, RCPT and DATA go out with this one's end of data. While a group is in
flight, the connection's transport hands its bytes to :class:`_Replies`, which keeps every
complete reply in order, and gives them back to aiosmtplib's protocol afterwards. Failures
are aiosmtplib's own exceptions, so they are classified the same way as aiosmtplib's.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Sequence
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse

MAX_REPLY = 32 * 1024
"""Bytes of one reply, continuation lines included (aiosmtplib's own bound)."""
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class _Replies(asyncio.Protocol):
    """Stands in for aiosmtplib's protocol while a group is in flight."""

    def __init__(self, inner: asyncio.BaseProtocol, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._buffer = bytearray()
        self._replies: collections.deque[SMTPResponse] = collections.deque()
        self._error: Exception | None = None
        self._waiter: asyncio.Future[bool] | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while (reply := self._parse()) is not None:
                self._replies.append(reply)
        except aiosmtplib.SMTPResponseException as exc:
            self._fail(exc)
        self._wake()

    def _parse(self) -> SMTPResponse | None:
        lines: list[bytes] = []
        offset = 0
        while (end := self._buffer.find(b"\n", offset)) != -1:
            line = bytes(self._buffer[offset : end + 1])
            offset = end + 1
            if not line[:3].isdigit():
                raise aiosmtplib.SMTPResponseException(
                    -1, f"Malformed SMTP response line: {line.decode('utf-8', 'replace')!r}"
                )
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self._buffer[:offset]
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
                return SMTPResponse(int(line[:3]), text)
        if len(self._buffer) > MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")
        return None

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # the transport closes: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        self._inner.connection_lost(exc)  # aiosmtplib learns of it too

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)

    async def next(self) -> SMTPResponse:
        """The next reply; :class:`TimeoutError` if none comes within the timeout (per
        reply) of asking. A reply already here costs no timer: pipelined replies mostly
        arrive together, and a timer per reply was a tenth of the SMTP side's CPU."""
        while not self._replies:
            if self._error is not None:
                raise self._error
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(self._timeout, _expire, waiter)
            try:
                expired = await waiter
            finally:
                timer.cancel()
            if expired and not self._replies:
                raise TimeoutError
        return self._replies.popleft()

    @property
    def leftover(self) -> bool:
        """Bytes or replies nobody asked for: the two sides no longer agree."""
        return bool(self._buffer or self._replies)


def _expire(waiter: asyncio.Future[bool]) -> None:
    """A result, not an exception: a waiter cancelled meanwhile leaves nothing unread."""
    if not waiter.done():
        waiter.set_result(True)


class Exchange:
    """One session's commands and replies, in groups; a group's replies read in order.

    ``replies`` holds what came back before a failure, so the caller knows how far the
    server got (after MAIL, after some RCPTs, after DATA).

    A group may carry the next transaction's first commands (``then``: RFC 2920 lets
    MAIL, RCPT and DATA follow the end of data in one write). Their replies stay owed:
    the reader stays in place, and the next :meth:`group` with exactly those commands
    reads them without writing anything.
    """

    def __init__(self, smtp: aiosmtplib.SMTP, timeout: float) -> None:
        self._smtp = smtp
        self._timeout = timeout
        self._reader: _Replies | None = None
        self._ahead: tuple[bytes, ...] = ()
        """Commands written with an earlier group whose replies nobody has read yet."""

    async def group(
        self,
        commands: Sequence[bytes],
        replies: list[SMTPResponse],
        *,
        then: Sequence[bytes] = (),
    ) -> None:
        """Write every command at once; append each reply to ``replies`` as it is read.

        ``then`` goes out in the same write; its replies are left for the next group.
        Raises aiosmtplib's exceptions: disconnected, read timeout, unreadable reply.
        """
        transport = cast("asyncio.Transport | None", self._smtp.transport)
        inner = self._smtp.protocol
        if transport is None or inner is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        if self._ahead:
            reader = self._reader
            written, self._ahead = self._ahead, ()
            if reader is None or tuple(commands) != written or then:
                self._smtp.close()  # the server answers other commands than these
                raise aiosmtplib.SMTPResponseException(-1, "commands out of step with replies")
        else:
            reader = self._reader = _Replies(inner, self._timeout)
            transport.set_protocol(reader)
            transport.write(b"".join([*commands, *then]))
        try:
            for _ in commands:
                replies.append(await reader.next())
        except TimeoutError:
            self._smtp.close()  # a reply may still come: never pair it with the next command
            raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from None
        except BaseException:
            if then:  # the replies owed to ``then`` would follow the unread ones
                self._smtp.close()
            raise
        finally:
            if not then and not transport.is_closing():
                transport.set_protocol(inner)
                self._reader = None
        if then:
            self._ahead = tuple(then)
        elif reader.leftover:
            self._smtp.close()
            raise aiosmtplib.SMTPResponseException(-1, "the server sent replies nobody asked for")


def command(verb: bytes, address: str, options: Sequence[str] = ()) -> bytes:
    """``MAIL FROM:<a@b> SMTPUTF8`` as a line; refuses control characters (injection)."""
    line = b" ".join([verb + b"<" + address.encode("utf-8") + b">", *map(str.encode, options)])
    if _CONTROL.search(line):
        raise ValueError("an SMTP command would contain a control character")
    return line + b"\r\n"


def data_block(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, leading dots doubled, then ``.``."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:  # a bare CR or LF
        message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    message = message.replace(b"\r\n.", b"\r\n..")
    return (b"." if message.startswith(b".") else b"") + message + b".\r\n"

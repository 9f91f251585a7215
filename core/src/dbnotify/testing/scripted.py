"""A raw SMTP server on 127.0.0.1 that misbehaves on cue.

:class:`~dbnotify.testing.smtpd.LocalSMTPServer` is a correct server; this one is a
script on ``asyncio.start_server``: a greeting, then one reply per command verb, with
the faults aiosmtpd cannot produce (silence, odd greetings, dropped connections,
endless replies, plaintext injected after STARTTLS ...). It records every command line,
so a test can say what the client did *not* send. Its faults last until
:meth:`ScriptedSMTPServer.heal`, so a test can show that a client which retries gets
through once the server behaves, and no sooner.

Pipelining follows Postfix (RFC 2920): a RCPT after a refused MAIL gets ``503``, a DATA
with no accepted recipient ``554``, so a pipelined message after refusals sends nothing.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import ssl

import attrs

EHLO_PLAIN = "250-raw.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN"
"""An EHLO reply that offers AUTH but no STARTTLS (and no SMTPUTF8)."""

GREETING = "220 raw.test ESMTP"
"""The greeting of a server that behaves."""

NOT_IMPLEMENTED = "502 5.5.2 not implemented"
"""The reply to a verb the server has no reply for."""

_GOOD = {
    "HELO": "250 raw.test",
    "MAIL": "250 2.1.0 OK",
    "RCPT": "250 2.1.5 OK",
    "RSET": "250 OK",
    "NOOP": "250 OK",
    ".": "250 2.0.0 queued",
}


@attrs.define
class ScriptedSMTPServer:
    """``server = await ScriptedSMTPServer(replies={"MAIL": "421 ..."}).start()``.

    The options from ``greeting`` to ``starttls_inject`` are faults: they hold until
    :meth:`heal`, then the server behaves (the usual greeting, the good replies, no
    drops), on the connections already open too. TLS, the good replies and the delays
    are how the server is: healing keeps them.
    """

    host: str = "127.0.0.1"

    # --- faults, until heal() -----------------------------------------------------------
    greeting: str | None = GREETING
    """The first line; None: accept the connection and never say a word (a silent
    connection stays silent, even once healed)."""
    replies: dict[str, str] = attrs.field(factory=dict)
    """verb -> reply (CRLF between the lines of a multi-line one), instead of the good
    one: ``EHLO``, ``MAIL``, ``RCPT``, ``AUTH``, ``STARTTLS`` ...; ``DATA`` answers the
    DATA command itself (e.g. a 554: no message follows), ``.`` the message once read.
    A reply here or in ``rcpt`` that starts ``421`` or ``554 `` closes the connection once
    sent, as a server that gives up does."""
    rcpt: dict[str, str] = attrs.field(factory=dict)
    """address -> the reply to its ``RCPT TO`` (before ``replies["RCPT"]``): one refused
    recipient among accepted ones."""
    drop_on: str | None = None
    """Close the connection instead of answering this verb (``.``: after the message,
    before its reply: it arrived, the client cannot know)."""
    drop_mid_data: bool = False
    """Answer DATA with 354, read the first line of the message, then close."""
    endless_on: str | None = None
    """Answer this verb with ``250-`` lines that never end."""
    close_after: str | None = None
    """Close the connection right after answering this verb (e.g. ``AUTH``)."""
    stale_after: int | None = None
    """After this many messages on one connection, answer the next command with
    ``421 4.4.2 raw.test idle timeout, closing`` and close (an idle timer that fired)."""
    rcpt_limit: int | None = None
    """Answer ``452 4.5.3 Too many recipients`` to every RCPT past this many in one
    transaction."""
    starttls_inject: str | None = None
    """Plaintext sent right after the STARTTLS 220, in the same write (a MITM's trick);
    needs ``starttls_context``."""

    # --- how the server is, healed or not -------------------------------------------------
    tls_context: ssl.SSLContext | None = None
    """Speak TLS from the start (implicit TLS) with this server-side context."""
    starttls_context: ssl.SSLContext | None = None
    """Answer STARTTLS with 220 and upgrade with this server-side context (unless
    ``replies`` names STARTTLS); None: STARTTLS is a verb like any other (502)."""
    good_ehlo: str = EHLO_PLAIN
    """The reply to EHLO when ``replies`` does not name it, or once healed."""
    good_auth: str = "235 2.7.0 Authentication successful"
    """The reply to AUTH when ``replies`` does not name it, or once healed: any
    credentials do (``NOT_IMPLEMENTED`` for a server that offers AUTH and refuses it).
    One reply to the AUTH line: AUTH PLAIN with its initial response, not LOGIN's 334s."""
    delay: float = 0.0
    """Seconds to wait before each reply to a command (a slow-drip server); not before
    the greeting, 354, STARTTLS's 220 or QUIT's 221."""
    final_delay: float = 0.0
    """Seconds to wait before each message's final reply, after the message is stored
    (a server slow to queue; every other reply comes at once)."""
    healed: bool = False
    """Set by :meth:`heal`; a test may set it back (a fault that comes back)."""

    # --- what it saw ----------------------------------------------------------------------
    commands: list[str] = attrs.field(factory=list)
    """Every command line received, in order, on every connection (message content
    excluded)."""
    data: list[bytes] = attrs.field(factory=list)
    """Every message received (dot-stuffing undone), in order."""
    envelopes: list[tuple[str, tuple[str, ...]]] = attrs.field(factory=list)
    """MAIL FROM and the accepted RCPT TO addresses of each message in ``data``."""
    connections: int = 0
    """Connections accepted."""
    closed: int = 0
    """Connections that have ended (either side closed)."""
    tls_from: int | None = None
    """Index in ``commands`` of the first command received over TLS after the latest
    STARTTLS."""
    port: int = 0
    """The port the OS picked, set by :meth:`start`."""
    _server: asyncio.AbstractServer | None = None
    _writers: list[asyncio.StreamWriter] = attrs.field(factory=list)
    _handlers: set[asyncio.Task[None]] = attrs.field(factory=set)

    def heal(self) -> None:
        """From now on, on every connection (open ones too), behave."""
        self.healed = True

    @property
    def verbs(self) -> list[str]:
        """The verb of each of ``commands``, upper case."""
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    def message_ids(self) -> list[str]:
        """The Message-ID of each of ``data``: the same one twice is a resend."""
        parser = email.parser.BytesHeaderParser(policy=email.policy.default)
        found = [parser.parsebytes(d)["Message-ID"] for d in self.data]
        assert None not in found, "a message without a Message-ID"
        return [str(i).strip() for i in found]

    async def start(self) -> ScriptedSMTPServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        # closing a connection ends its handler (the client may still hold it in its
        # pool); cancel only what is still running after that (asleep in a delay)
        self.close_idle()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1)
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ScriptedSMTPServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def close_idle(self) -> None:
        """Close every open connection, as a server does with idle clients."""
        for writer in self._writers:
            writer.close()

    def _reply(self, verb: str) -> str:
        if not self.healed and verb in self.replies:
            return self.replies[verb]
        if verb == "EHLO":
            return self.good_ehlo
        if verb == "AUTH":
            return self.good_auth
        return _GOOD.get(verb, NOT_IMPLEMENTED)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # a cancelled handler would make asyncio's stream callback log an error
        finally:
            self.closed += 1
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.healed and self.greeting is None:
            await reader.read()  # silent until the client gives up
            return
        await _send(writer, GREETING if self.healed or self.greeting is None else self.greeting)
        mail_from = ""
        in_mail = False
        accepted: list[str] = []
        messages = 0
        while line := await reader.readline():
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            bad = not self.healed
            reply: str | None = None
            if bad and self.stale_after is not None and messages >= self.stale_after:
                await _send(writer, "421 4.4.2 raw.test idle timeout, closing")
                return
            if verb == "QUIT":
                await _send(writer, "221 2.0.0 bye")
                return
            if bad and verb == self.drop_on:
                return
            if bad and verb == self.endless_on:
                while True:
                    await _send(writer, "250-" + "x" * 70)
            if (
                verb == "STARTTLS"
                and self.starttls_context is not None
                and not (bad and "STARTTLS" in self.replies)
            ):
                ready = "220 2.0.0 ready to start TLS"
                if bad and self.starttls_inject is not None:
                    ready += "\r\n" + self.starttls_inject
                await _send(writer, ready)
                await writer.start_tls(self.starttls_context)
                self.tls_from = len(self.commands)
                continue
            if verb == "MAIL":
                mail_from, accepted = _address(command), []
                in_mail = self._reply("MAIL").startswith("2")
            elif verb == "RSET":
                accepted, in_mail = [], False
            elif verb == "RCPT":
                if not in_mail:  # as Postfix: a pipelined RCPT after a refused MAIL
                    await self._answer(writer, "503 5.5.1 Error: need MAIL command")
                    continue
                if bad and self.rcpt_limit is not None and len(accepted) >= self.rcpt_limit:
                    await self._answer(writer, "452 4.5.3 Too many recipients")
                    continue
                address = _address(command)
                reply = (self.rcpt.get(address) if bad else None) or self._reply("RCPT")
                if reply.startswith("2"):
                    accepted.append(address)
            elif verb == "DATA" and not (bad and "DATA" in self.replies):
                if not accepted:
                    # RFC 2920: refused, so that a pipelined DATA after refusals sends nothing
                    await self._answer(writer, "554 5.5.1 Error: no valid recipients")
                    continue
                await _send(writer, "354 go ahead")
                if bad and self.drop_mid_data:
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
                if bad and verb == self.drop_on:
                    return
                await asyncio.sleep(self.final_delay)
            if reply is None:
                reply = self._reply(verb)
            await self._answer(writer, reply)
            if reply.startswith(("421", "554 ")) or (bad and verb == self.close_after):
                return

    async def _answer(self, writer: asyncio.StreamWriter, reply: str) -> None:
        await asyncio.sleep(self.delay)
        await _send(writer, reply)


async def _send(writer: asyncio.StreamWriter, reply: str) -> None:
    writer.write(reply.encode("utf-8", "surrogateescape") + b"\r\n")  # "\udce4": byte 0xe4
    await writer.drain()


def _address(command: str) -> str:
    """The address in ``MAIL FROM:<a>`` / ``RCPT TO:<a>``."""
    return command.partition("<")[2].partition(">")[0]

"""ScriptedSMTPServer's own contract, seen by a plain asyncio client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from dbnotify.testing.scripted import ScriptedSMTPServer

MESSAGE = b"Message-ID: <1@x.org>\r\nSubject: hi\r\n\r\n..dot-stuffed\r\n"
HELD = 30.0
"""A delay no test waits out: a reply it holds has not come while the test looks."""


class Client:
    """One connection: its greeting, then lines sent at once (pipelined), whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.greeting = ""

    @classmethod
    async def to(cls, server: ScriptedSMTPServer) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", server.port))
        client.greeting = await client.reply()
        return client

    async def exchange(self, *lines: str) -> list[str]:
        """Send the lines in one write and read one reply to each."""
        self.writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
        return [await self.reply() for _ in lines]

    async def message(self) -> str:
        """After a 354: MESSAGE, the dot, and the reply to it."""
        self.writer.write(MESSAGE + b".\r\n")
        return await self.reply()

    async def reply(self) -> str:
        """One reply, the lines of a multi-line one joined by CRLF."""
        lines: list[str] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 5)
            assert line, "the server closed the connection"
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\r\n".join(lines)

    async def no_reply_yet(self) -> None:
        """Nothing comes while the loop turns for a moment (the server holds it)."""
        waiting = asyncio.create_task(self.reply())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def until(condition: Callable[[], bool], within: float = 5) -> None:
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, f"condition not met within {within}s"
        await asyncio.sleep(0.01)


async def test_greets_and_offers_auth_without_starttls() -> None:
    async with ScriptedSMTPServer() as server:
        client = await Client.to(server)
        assert client.greeting == "220 raw.test ESMTP"
        ehlo, auth, starttls, quit_ = await client.exchange(
            "EHLO me", "AUTH PLAIN AGFAYg==", "STARTTLS", "QUIT"
        )
        assert ehlo.splitlines()[-1] == "250 AUTH PLAIN LOGIN"
        assert "STARTTLS" not in ehlo
        assert auth == "235 2.7.0 Authentication successful"
        assert starttls == "502 5.5.2 not implemented"  # no starttls_context
        assert quit_ == "221 2.0.0 bye"
        await client.close()
    assert server.verbs == ["EHLO", "AUTH", "STARTTLS", "QUIT"]


async def test_pipelined_after_a_refused_mail_nothing_is_sent() -> None:
    async with ScriptedSMTPServer(replies={"MAIL": "550 5.7.1 not you"}) as server:
        client = await Client.to(server)
        assert await client.exchange("MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org>", "DATA") == [
            "550 5.7.1 not you",
            "503 5.5.1 Error: need MAIL command",
            "554 5.5.1 Error: no valid recipients",
        ]
        assert await client.exchange("NOOP") == ["250 OK"]  # the connection stays
        await client.close()
    assert server.data == []
    assert server.envelopes == []


async def test_a_reply_to_data_itself_refuses_the_message() -> None:
    async with ScriptedSMTPServer(replies={"DATA": "554 5.7.1 not from you"}) as server:
        client = await Client.to(server)
        _, _, data = await client.exchange("MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org>", "DATA")
        assert data == "554 5.7.1 not from you"
        assert await client.reader.read() == b""  # and it closed the connection
        await client.close()
    assert server.data == []


async def test_heal_makes_a_refusing_server_accept_on_the_open_connection() -> None:
    async with ScriptedSMTPServer(
        replies={"MAIL": "451 4.3.0 try later"}, rcpt={"c@x.org": "550 5.1.1 no such user"}
    ) as server:
        client = await Client.to(server)
        assert await client.exchange("MAIL FROM:<a@x.org>") == ["451 4.3.0 try later"]
        server.heal()
        assert await client.exchange(
            "MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org>", "RCPT TO:<c@x.org>", "DATA"
        ) == [
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",  # the refusal per address was a fault too
            "354 go ahead",
        ]
        assert await client.message() == "250 2.0.0 queued"
        await client.close()
    assert server.data == [MESSAGE.replace(b"..", b".")]
    assert server.envelopes == [("a@x.org", ("b@x.org", "c@x.org"))]
    assert server.message_ids() == ["<1@x.org>"]


async def test_envelopes_name_the_sender_and_only_the_accepted() -> None:
    refused = {"b@x.org": "550 5.1.1 no such user"}
    async with ScriptedSMTPServer(rcpt=refused, rcpt_limit=2) as server:
        client = await Client.to(server)
        for sender in ("a@x.org", "z@x.org"):
            rcpts = (f"RCPT TO:<{r}@x.org>" for r in "bcde")
            replies = await client.exchange(f"MAIL FROM:<{sender}>", *rcpts, "DATA")
            assert [r[:3] for r in replies] == ["250", "550", "250", "250", "452", "354"]
            assert await client.message() == "250 2.0.0 queued"
        await client.close()
    assert server.envelopes == [
        ("a@x.org", ("c@x.org", "d@x.org")),
        ("z@x.org", ("c@x.org", "d@x.org")),
    ]


async def test_final_delay_holds_only_the_reply_to_the_message() -> None:
    async with ScriptedSMTPServer(final_delay=HELD) as server:
        client = await Client.to(server)
        replies = await client.exchange(
            "EHLO me", "MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org>", "DATA"
        )
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"]
        client.writer.write(MESSAGE + b".\r\n")
        await until(lambda: len(server.data) == 1)  # stored, its reply held
        await client.no_reply_yet()
        await client.close()


async def test_delay_holds_every_reply_but_the_greeting() -> None:
    async with ScriptedSMTPServer(delay=HELD) as server:
        client = await Client.to(server)
        assert client.greeting == "220 raw.test ESMTP"
        client.writer.write(b"EHLO me\r\n")
        await until(lambda: server.verbs == ["EHLO"])  # received, its reply held
        await client.no_reply_yet()
        await client.close()

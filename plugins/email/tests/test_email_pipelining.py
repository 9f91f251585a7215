"""PIPELINING (RFC 2920): one write for MAIL, every RCPT and DATA; replies read in order.

The server here answers nothing until it has read the whole group: a client that waited
for each reply would hang, so these tests fail (by timeout) unless commands are really
pipelined. Replies are written in one go, as a real server's output buffer does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest

from dbnotify import Event, FailureKind, Status

EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
TO = ["a@x.org", "b@x.org", "c@x.org"]


@attrs.define
class GroupServer:
    """Reads a whole group (up to DATA) before answering any of it."""

    rcpt: dict[str, str] = attrs.field(factory=dict)
    """Reply per recipient address (default 250)."""
    data_reply: str = "354 go ahead"
    """The reply to DATA, whatever came before (a server that ignores RFC 2920 3.1)."""
    groups: list[list[str]] = attrs.field(factory=list)
    """The commands of each group, as read."""
    messages: list[bytes] = attrs.field(factory=list)
    after: list[str] = attrs.field(factory=list)
    """Commands after the last group (RSET, QUIT)."""
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 pipe.test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-pipe.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line.startswith(b"MAIL"):
                    self.after.append(line.decode().strip())
                    if not line or line.startswith(b"QUIT"):
                        writer.write(b"221 bye\r\n")
                        return
                    writer.write(b"250 ok\r\n")
                    continue
                group = [line, *(await _until_data(reader))]
                self.groups.append([c.decode().strip() for c in group])
                replies = [b"250 2.1.0 sender ok"]
                for command in group[1:-1]:
                    address = command.decode().partition("<")[2].partition(">")[0]
                    replies.append(self.rcpt.get(address, "250 2.1.5 ok").encode())
                replies.append(self.data_reply.encode())
                writer.write(b"".join(r + b"\r\n" for r in replies))  # all at once
                if not self.data_reply.startswith("354"):
                    continue
                message = bytearray()
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    message += chunk
                self.messages.append(bytes(message))
                writer.write(b"250 2.0.0 queued\r\n")
        finally:
            writer.close()


async def _until_data(reader: asyncio.StreamReader) -> list[bytes]:
    commands = []
    while (line := await reader.readline()) and line != b"DATA\r\n":
        commands.append(line)
    return [*commands, line]


@pytest.fixture
async def group_server() -> AsyncIterator[Callable[..., Awaitable[GroupServer]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(**options: Any) -> GroupServer:
        server = GroupServer(**options)
        listening = await asyncio.start_server(server._handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        servers.append(listening)
        return server

    yield start
    for listening in servers:
        listening.close()


async def test_one_group_per_message_and_every_recipient_delivered(
    group_server: Any, make_notifier: Any
) -> None:
    server = await group_server()
    notifier = make_notifier(server.port, to=TO)

    result = await notifier.notify(EVENT)
    result2 = await notifier.notify(EVENT)
    await notifier.aclose()

    for r in (result, result2):
        assert [(x.recipient, x.status, x.reply) for x in r.recipients] == [
            (address, Status.DELIVERED, "250 2.0.0 queued") for address in TO
        ]
    assert (
        server.groups
        == [["MAIL FROM:<dbackup@example.com>", *[f"RCPT TO:<{a}>" for a in TO], "DATA"]] * 2
    )  # the second message on the same connection, again one group
    assert len(server.messages) == 2
    assert b"Subject: [DBackup] Backup Failed: nightly-pg" in server.messages[0]


async def test_refused_recipient_in_a_group_keeps_its_own_reply(
    group_server: Any, make_notifier: Any
) -> None:
    server = await group_server(rcpt={"b@x.org": "550 5.1.1 no such user"})

    result = await make_notifier(server.port, to=TO).notify(EVENT)

    assert [(r.recipient, r.status, r.kind, r.reply) for r in result.recipients] == [
        ("a@x.org", Status.DELIVERED, None, "250 2.0.0 queued"),
        ("b@x.org", Status.FAILED, FailureKind.PERMANENT, "550 5.1.1 no such user"),
        ("c@x.org", Status.DELIVERED, None, "250 2.0.0 queued"),
    ]


async def test_every_recipient_refused_but_data_accepted_sends_an_empty_dot(
    group_server: Any, make_notifier: Any
) -> None:
    """RFC 2920 3.1: after 354 with no recipient, the client ends DATA with a lone dot."""
    refused = "550 5.1.1 no such user"
    server = await group_server(rcpt=dict.fromkeys(TO, refused))

    result = await make_notifier(server.port, to=TO).notify(EVENT)

    assert {(r.status, r.reply) for r in result.recipients} == {(Status.FAILED, refused)}
    assert server.messages == [b""]  # the dot alone: no content went out
    assert server.after[:1] == ["RSET"]


async def test_data_refused_in_a_group_fails_every_accepted_recipient(
    group_server: Any, make_notifier: Any
) -> None:
    server = await group_server(data_reply="451 4.3.0 try later")

    result = await make_notifier(server.port, to=TO).notify(EVENT)

    assert {(r.status, r.kind, r.reason, r.reply) for r in result.recipients} == {
        (
            Status.FAILED,
            FailureKind.TRANSIENT,
            "the server refused the message",
            "451 4.3.0 try later",
        )
    }
    assert server.messages == []


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\nb", b"a\r\nb\r\n.\r\n"),
        (b"a\rb\r\n", b"a\r\nb\r\n.\r\n"),
        (b".a\r\n.\r\n..b\r\nc.\r\n", b"..a\r\n..\r\n...b\r\nc.\r\n.\r\n"),
        (b"x\n.\n", b"x\r\n..\r\n.\r\n"),
    ],
)
def test_data_block_ends_lines_with_crlf_and_doubles_leading_dots(
    message: bytes, wire: bytes
) -> None:
    from dbnotify_email.wire import data_block

    assert data_block(message) == wire

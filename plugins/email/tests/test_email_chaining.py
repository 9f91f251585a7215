"""The next message's MAIL, RCPT and DATA with this one's end of data (RFC 2920 3.1).

Several notifications at once, one connection (``max_connections = 1``): while one message
is sent, the others wait in line, and where the server offers PIPELINING the first in
line has its envelope sent in the same write as the end of data. These tests run a real
aiosmtpd server that counts what it reads, and check that a message costs one round trip
on a reused connection, that every reply is paired with its own message and recipient
when something fails mid-group, and that no message arrives twice or is reported
delivered without the server's 250.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from dbnotify import DispatchResult, Event, FailureKind, Notifier, Status
from dbnotify_email import pool

TO = ["a@x.org", "b@x.org", "c@x.org"]
MESSAGES = 5


def _event(number: int) -> Event:
    return Event("backup_failure", {"job_name": f"job-{number}", "error": "disk full"})


@attrs.frozen
class Arrived:
    transaction: int
    """Which MAIL FROM of the server's (1, 2, ...), over every connection."""
    job: str
    rcpt_tos: tuple[str, ...]
    message_id: str


@attrs.define
class CountingServer:
    """aiosmtpd, with or without PIPELINING, misbehaving where told (by transaction)."""

    pipelining: bool = True
    refuse_rcpt: dict[tuple[int, str], str] = attrs.field(factory=dict)
    """(transaction, address) -> reply to that RCPT."""
    refuse_data: dict[int, str] = attrs.field(factory=dict)
    """transaction -> reply after its end of data (the message is not kept)."""
    drop_after_data: set[int] = attrs.field(factory=set)
    """Transactions whose message is read (and kept) but the connection dropped before
    the reply to its end of data."""
    drop_at_mail: set[int] = attrs.field(factory=set)
    """Transactions whose MAIL FROM is answered by dropping the connection."""
    drop_at_rcpt: set[tuple[int, str]] = attrs.field(factory=set)
    """(transaction, address): that RCPT TO is answered by dropping the connection."""
    slow_data: dict[int, float] = attrs.field(factory=dict)
    """transaction -> seconds before the reply to its end of data."""
    slow_all: float = 0.0
    """Seconds before the reply to every other end of data."""
    tls_context: ssl.SSLContext | None = None
    """Offer (and require) STARTTLS."""
    transactions: int = 0
    arrived: list[Arrived] = attrs.field(factory=list)
    reads: list[int] = attrs.field(factory=list)
    """Reads of the server's socket, per connection: one per client write it waited for."""
    raw: list[bytearray] = attrs.field(factory=list)
    """What each connection carried from the client (after TLS)."""
    port: int = 0
    _current: dict[int, int] = attrs.field(factory=dict)
    _server: asyncio.AbstractServer | None = None

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

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.transactions += 1
        self._current[id(session)] = self.transactions
        if self.transactions in self.drop_at_mail:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 gone"  # never written: the connection is closed
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 sender ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, _options: list[str]
    ) -> str:
        if (self._current[id(session)], address) in self.drop_at_rcpt:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 gone"  # never written
        reply = self.refuse_rcpt.get((self._current[id(session)], address))
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transaction = self._current[id(session)]
        await asyncio.sleep(self.slow_data.get(transaction, self.slow_all))
        if transaction in self.refuse_data:
            return self.refuse_data[transaction]
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        self.arrived.append(
            Arrived(
                transaction,
                str(parsed["Subject"]).rpartition(": ")[2],
                tuple(envelope.rcpt_tos),
                str(parsed["Message-ID"]),
            )
        )
        if transaction in self.drop_after_data:
            assert server.transport is not None
            server.transport.close()
        return "250 2.0.0 queued"

    def _protocol(self) -> SMTP:
        reads = len(self.reads)
        self.reads.append(0)
        self.raw.append(bytearray())
        outer = self

        class Counting(SMTP):
            def data_received(self, data: bytes) -> None:
                outer.reads[reads] += 1
                outer.raw[reads] += data
                super().data_received(data)

        return Counting(
            self,
            hostname="count.test",
            decode_data=False,
            tls_context=self.tls_context,
            require_starttls=self.tls_context is not None,
        )

    async def start(self) -> CountingServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def jobs(self) -> list[str]:
        return [a.job for a in self.arrived]


@pytest.fixture
async def counting() -> AsyncIterator[Callable[..., Awaitable[CountingServer]]]:
    started: list[CountingServer] = []

    async def start(**options: Any) -> CountingServer:
        server = await CountingServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def _notify_all(make_notifier: Any, port: int, **options: Any) -> list[DispatchResult]:
    """MESSAGES notifications at once over one connection; results in event order."""
    notifier = make_notifier(port, to=TO, max_connections=1, **options)
    try:
        return list(await asyncio.gather(*(notifier.notify(_event(i)) for i in range(MESSAGES))))
    finally:
        await notifier.aclose()


def _outcomes(result: DispatchResult) -> list[tuple[str, Status, str | None]]:
    return [(r.recipient, r.status, r.reply) for r in result.recipients]


def _delivered(reply: str = "250 2.0.0 queued") -> list[tuple[str, Status, str | None]]:
    return [(address, Status.DELIVERED, reply) for address in TO]


def _each_once(server: CountingServer) -> None:
    ids = [a.message_id for a in server.arrived]
    assert len(ids) == len(set(ids)), f"a message arrived twice: {server.jobs()}"


@pytest.mark.parametrize("chain", [True, False])
async def test_one_round_trip_a_message_where_the_server_pipelines(
    counting: Any, make_notifier: Any, monkeypatch: pytest.MonkeyPatch, chain: bool
) -> None:
    monkeypatch.setattr(pool, "CHAIN", chain)
    server = await counting()

    results = await _notify_all(make_notifier, server.port)

    assert [_outcomes(r) for r in results] == [_delivered()] * MESSAGES
    assert sorted(server.jobs()) == [f"job-{i}" for i in range(MESSAGES)]
    _each_once(server)
    # one connection: EHLO, then per message its envelope and its data, then QUIT; with
    # the next envelope sent with the end of data, only the first message waits twice
    (reads,) = server.reads
    assert reads == 1 + (MESSAGES + 1 if chain else 2 * MESSAGES) + 1


async def test_without_pipelining_each_command_waits_for_its_reply(
    counting: Any, make_notifier: Any
) -> None:
    server = await counting(pipelining=False, refuse_rcpt={(2, "b@x.org"): "550 5.1.1 no b"})

    results = await _notify_all(make_notifier, server.port)

    (second,) = [a for a in server.arrived if a.transaction == 2]
    refused = int(second.job.removeprefix("job-"))
    for number, result in enumerate(results):
        expected = _delivered()
        if number == refused:
            expected[1] = ("b@x.org", Status.FAILED, "550 5.1.1 no b")
        assert _outcomes(result) == expected
    assert second.rcpt_tos == ("a@x.org", "c@x.org")
    _each_once(server)
    (reads,) = server.reads
    assert reads == 1 + MESSAGES * (1 + len(TO) + 1 + 1) + 1  # MAIL, RCPTs, DATA, data


async def test_a_recipient_refused_in_a_chained_group_is_that_message_s(
    counting: Any, make_notifier: Any
) -> None:
    """Transaction 3's MAIL, RCPTs and DATA went out with transaction 2's end of data:
    its refused RCPT is reported for its own message and recipient, nowhere else."""
    server = await counting(refuse_rcpt={(3, "b@x.org"): "550 5.1.1 no such user"})

    results = await _notify_all(make_notifier, server.port)

    (third,) = [a for a in server.arrived if a.transaction == 3]
    assert third.rcpt_tos == ("a@x.org", "c@x.org")
    refused = int(third.job.removeprefix("job-"))
    for number, result in enumerate(results):
        expected = _delivered()
        if number == refused:
            expected[1] = ("b@x.org", Status.FAILED, "550 5.1.1 no such user")
        assert _outcomes(result) == expected
    assert [r.recipients[1].kind for r in results].count(FailureKind.PERMANENT) == 1
    _each_once(server)
    assert server.reads == [1 + MESSAGES + 1 + 1]  # still chained


async def test_every_recipient_refused_in_a_chained_group(
    counting: Any, make_notifier: Any
) -> None:
    """No RCPT accepted: the 354 (or 503/554) to the pipelined DATA is dealt with, and the
    messages behind it still go out, each once."""
    server = await counting(refuse_rcpt={(3, address): "550 5.1.1 no such user" for address in TO})

    results = await _notify_all(make_notifier, server.port)

    assert server.transactions == MESSAGES
    assert len(server.arrived) == MESSAGES - 1
    missing = ({f"job-{i}" for i in range(MESSAGES)} - set(server.jobs())).pop()
    for number, result in enumerate(results):
        if f"job-{number}" == missing:
            assert {(r.status, r.reply) for r in result.recipients} == {
                (Status.FAILED, "550 5.1.1 no such user")
            }
        else:
            assert _outcomes(result) == _delivered()
    _each_once(server)


async def test_a_message_rejected_after_its_end_of_data_does_not_touch_the_next(
    counting: Any, make_notifier: Any
) -> None:
    server = await counting(refuse_data={2: "554 5.7.1 rejected: spam"})

    results = await _notify_all(make_notifier, server.port)

    assert len(server.arrived) == MESSAGES - 1
    missing = ({f"job-{i}" for i in range(MESSAGES)} - set(server.jobs())).pop()
    for number, result in enumerate(results):
        if f"job-{number}" == missing:
            assert [(r.status, r.kind, r.reason, r.reply) for r in result.recipients] == [
                (
                    Status.FAILED,
                    FailureKind.PERMANENT,
                    "the server refused the message",
                    "554 5.7.1 rejected: spam",
                )
            ] * len(TO)
        else:
            assert _outcomes(result) == _delivered()
    _each_once(server)
    assert server.reads == [1 + MESSAGES + 1 + 1]


async def test_a_drop_before_the_reply_to_end_of_data(counting: Any, make_notifier: Any) -> None:
    """The server kept message 2 and dropped the connection before saying so; message 3's
    envelope was in the same group. Message 2 may or may not have arrived (never reported
    delivered); message 3 goes out on a new connection, once."""
    server = await counting(drop_after_data={2})

    results = await _notify_all(make_notifier, server.port)

    (second,) = [a for a in server.arrived if a.transaction == 2]
    unknown = int(second.job.removeprefix("job-"))
    for number, result in enumerate(results):
        if number == unknown:
            assert {(r.status, r.kind) for r in result.recipients} == {
                (Status.FAILED, FailureKind.TRANSIENT)
            }
            assert "it may or may not have arrived" in result.recipients[0].reason
        else:
            assert _outcomes(result) == _delivered()
    assert sorted(server.jobs()) == [f"job-{i}" for i in range(MESSAGES)]
    _each_once(server)
    assert len(server.reads) == 2  # the second connection for message 3 and the rest


async def test_a_drop_at_the_chained_mail_after_the_reply_to_end_of_data(
    counting: Any, make_notifier: Any
) -> None:
    """Message 2's 250 came back, then the server dropped instead of answering message
    3's MAIL: message 2 is delivered, message 3 (nothing of it sent but its envelope) goes
    out on a new connection, once."""
    server = await counting(drop_at_mail={3})

    results = await _notify_all(make_notifier, server.port)

    assert [_outcomes(r) for r in results] == [_delivered()] * MESSAGES
    assert sorted(server.jobs()) == [f"job-{i}" for i in range(MESSAGES)]
    _each_once(server)
    assert server.transactions == MESSAGES + 1  # message 3's first MAIL was dropped


async def test_a_drop_at_a_chained_rcpt(counting: Any, make_notifier: Any) -> None:
    """The server dropped at message 3's second RCPT (its envelope went out with message
    2's end of data): no data of message 3 was sent, so it starts again on a new
    connection and arrives once; message 2 is delivered, its 250 read first."""
    server = await counting(drop_at_rcpt={(3, "b@x.org")})

    results = await _notify_all(make_notifier, server.port)

    assert [_outcomes(r) for r in results] == [_delivered()] * MESSAGES
    assert sorted(server.jobs()) == [f"job-{i}" for i in range(MESSAGES)]
    _each_once(server)
    assert server.transactions == MESSAGES + 1


async def test_chained_after_starttls(counting: Any, make_notifier: Any, tls: Any) -> None:
    """Chaining starts on a finished session only: here after STARTTLS and a new EHLO."""
    server = await counting(tls_context=tls.server_context)

    results = await _notify_all(
        make_notifier, server.port, security="starttls", tls_ca_file=tls.ca_file
    )

    assert [_outcomes(r) for r in results] == [_delivered()] * MESSAGES
    _each_once(server)
    assert server.reads == [1 + 1 + 1 + MESSAGES + 1 + 1]  # EHLO, STARTTLS, EHLO, ...


async def test_the_deadline_mid_chain_reports_nothing_delivered_falsely(
    counting: Any, make_notifier: Any
) -> None:
    """Message 1's reply comes after its deadline, message 2's envelope already sent with
    its end of data. Message 2 never arrives by that connection (no data went out for it):
    it starts again on a new one if its own deadline (which began a little later) allows.
    Whatever arrived arrived once, whatever is reported delivered arrived, and the pool
    still has its slot for the next notification."""
    server = await counting(slow_data={1: 3.0})
    notifier = make_notifier(server.port, to=TO, max_connections=1, deadline=1)
    try:
        results = await asyncio.gather(*(notifier.notify(_event(i)) for i in range(MESSAGES)))
        await asyncio.sleep(2.5)  # message 1 arrives late
        assert server.raw[0].count(b"MAIL FROM:") == 2  # message 2's envelope went out
        assert server.raw[0].count(b"\r\n.\r\n") == 1  # but only message 1's data
        assert results[0].recipients[0].status is Status.FAILED
        for number, result in enumerate(results):
            if any(r.status is Status.DELIVERED for r in result.recipients):
                assert _outcomes(result) == _delivered()
                assert f"job-{number}" in server.jobs()
        _each_once(server)

        later = await notifier.notify(_event(9))
    finally:
        await notifier.aclose()

    assert _outcomes(later) == _delivered()
    assert server.jobs()[-1] == "job-9"
    _each_once(server)


async def test_a_burst_keeps_a_next_message_for_every_end_of_data(
    counting: Any, make_notifier: Any
) -> None:
    """Most of a burst waits before it is rendered (pool.AHEAD per connection in line):
    the line never runs dry, so every message after the first is taken along."""
    server = await counting()
    burst = 4 * pool.AHEAD + 3
    notifier = make_notifier(server.port, to=TO, max_connections=1)
    try:
        results = await asyncio.gather(*(notifier.notify(_event(i)) for i in range(burst)))
    finally:
        await notifier.aclose()

    assert [_outcomes(r) for r in results] == [_delivered()] * burst
    assert sorted(server.jobs()) == sorted(f"job-{i}" for i in range(burst))
    _each_once(server)
    assert server.reads == [1 + burst + 1 + 1]


async def test_waiting_for_a_turn_past_the_deadline_says_not_sent(counting: Any) -> None:
    """The channel's deadline counts the wait before rendering too: a notification still
    waiting for its turn at its deadline says "not sent", and it never arrives."""
    server = await counting(slow_all=2.0)
    block = {
        "type": "email",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "from": "dbackup@example.com",
        "to": TO,
        "timeout": 5,
        "deadline": 1.5,
        "max_connections": 1,
    }
    burst = 2 * pool.AHEAD + 3
    async with Notifier.from_config(
        {"channels": {"mail": block}, "routing": {"channels": ["mail"]}}
    ) as notifier:
        results = await asyncio.gather(*(notifier.notify(_event(i)) for i in range(burst)))
    await asyncio.sleep(2.5)  # every slow reply given

    not_sent = (
        "not sent: every connection to 127.0.0.1 that max_connections = 1 allows stayed "
        "busy with other notifications past deadline = 1.5s"
    )
    slow = "the server took longer than deadline = 1.5s in all"
    reasons = [{r.reason for r in result.recipients} for result in results]
    assert all(len(r) == 1 and r <= {not_sent, slow} for r in reasons)
    unsent = {f"job-{i}" for i, r in enumerate(reasons) if r == {not_sent}}
    assert unsent  # (the others got a connection as the ones before them gave up)
    assert not unsent & set(server.jobs())

"""Connection reuse: notifications sent together share connections; stale ones are replaced.

The scripted server counts connections and records every command, so each test can say
how many connections were opened and whether QUIT was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from dbnotify import DispatchResult, Event, FailureKind, Status
from dbnotify.testing.smtpd import LocalSMTPServer
from dbnotify_email import pool

EVENTS = [Event("backup_success", {"job_name": f"job-{i}"}) for i in range(3)]
ONE_MESSAGE = ["MAIL", "RCPT", "DATA"]


def all_delivered(*results: DispatchResult) -> bool:
    return all(r.status is Status.DELIVERED for result in results for r in result.recipients)


async def wait_until(condition: Callable[[], bool], within: float = 2.0) -> None:
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_notifications_sent_together_share_one_connection(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, max_connections=1)

    results = await asyncio.gather(*(notifier.notify(e) for e in EVENTS))
    assert all_delivered(*results)
    assert server.connections == 1
    assert server.verbs == ["EHLO", *ONE_MESSAGE * 3]  # one greeting, three messages
    subjects = sorted(d.split(b"Subject: ")[1].split(b"\r\n")[0] for d in server.data)
    assert subjects == [f"[DBackup] Backup Successful: job-{i}".encode() for i in range(3)]

    await notifier.aclose()  # the shutdown hook: QUIT, then close
    assert server.verbs[-1] == "QUIT"
    await wait_until(lambda: server.closed == 1)


async def test_max_connections_bounds_parallel_connections(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted(delay=0.05)  # slow enough that the three overlap
    async with make_notifier(server.port, max_connections=2) as notifier:
        results = await asyncio.gather(*(notifier.notify(e) for e in EVENTS))
    assert all_delivered(*results)
    assert server.connections == 2
    assert server.verbs.count("MAIL") == 3
    assert server.verbs.count("QUIT") == 2  # `async with` closed both


class CountingSMTPServer(LocalSMTPServer):
    """aiosmtpd's server, its protocol factory wrapped to count the connections."""

    opened = 0

    def _protocol(self) -> Any:
        self.opened += 1
        return super()._protocol()


async def test_connection_reuse_with_aiosmtpd(make_notifier: Any) -> None:
    async with CountingSMTPServer() as server:
        async with make_notifier(server.port, max_connections=1) as notifier:
            results = await asyncio.gather(*(notifier.notify(e) for e in EVENTS))
        assert all_delivered(*results)
        assert len(server.messages) == 3
        assert server.opened == 1


async def test_connection_closed_by_the_server_while_idle_is_replaced(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port)

    assert all_delivered(await notifier.notify(EVENTS[0]))
    server.close_idle()  # the server's idle timer: it hangs up on the pooled connection
    await wait_until(lambda: server.closed == 1)
    assert all_delivered(await notifier.notify(EVENTS[1]))

    assert server.connections == 2
    assert len(server.data) == 2  # nothing lost
    assert server.verbs == ["EHLO", *ONE_MESSAGE, "EHLO", *ONE_MESSAGE]
    await notifier.aclose()


async def test_stale_connection_answering_421_is_retried_once_on_a_fresh_one(
    scripted: Any, make_notifier: Any
) -> None:
    # the pooled connection looks fine, but the server's idle timer fired just as MAIL
    # arrived: 421 before anything was sent, so a fresh connection gets the message
    server = await scripted(stale_after=1)
    notifier = make_notifier(server.port)

    assert all_delivered(await notifier.notify(EVENTS[0]))
    assert all_delivered(await notifier.notify(EVENTS[1]))

    assert server.connections == 2
    assert server.verbs == ["EHLO", *ONE_MESSAGE, "MAIL", "EHLO", *ONE_MESSAGE]
    assert len(server.data) == 2
    await notifier.aclose()


async def test_421_on_a_fresh_connection_is_not_retried(scripted: Any, make_notifier: Any) -> None:
    server = await scripted(replies={"MAIL": "421 4.3.2 raw.test shutting down"})
    notifier = make_notifier(server.port)

    (recipient,) = (await notifier.notify(EVENTS[0])).recipients
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == "the server is closing the connection"
    assert recipient.reply == "421 4.3.2 raw.test shutting down"
    assert recipient.hint == "try again later"
    assert server.connections == 1  # nothing to suspect: no second attempt


async def test_idle_connections_are_closed_politely_after_keepalive(
    scripted: Any, make_notifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "KEEPALIVE", 0.2)
    server = await scripted()
    notifier = make_notifier(server.port)

    assert all_delivered(await notifier.notify(EVENTS[0]))
    await wait_until(lambda: server.closed == 1)  # the reaper, without aclose()
    assert server.verbs == ["EHLO", *ONE_MESSAGE, "QUIT"]
    assert all_delivered(await notifier.notify(EVENTS[1]))  # a new connection
    assert server.connections == 2
    await notifier.aclose()


async def test_a_failed_connection_is_not_reused(scripted: Any, make_notifier: Any) -> None:
    server = await scripted(drop_on=".")
    notifier = make_notifier(server.port)

    (lost,) = (await notifier.notify(EVENTS[0])).recipients
    assert lost.kind is FailureKind.TRANSIENT
    server.drop_on = None
    assert all_delivered(await notifier.notify(EVENTS[1]))
    assert server.connections == 2
    await notifier.aclose()


async def test_notifications_one_after_another_reuse_the_connection(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port)

    assert all_delivered(await notifier.notify(EVENTS[0]))
    assert all_delivered(await notifier.notify(EVENTS[1]))
    assert server.connections == 1
    assert server.verbs == ["EHLO", *ONE_MESSAGE * 2]
    await notifier.aclose()
    await notifier.aclose()  # closing twice is harmless
    assert server.verbs.count("QUIT") == 1

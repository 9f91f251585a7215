"""Proof 6: the connection pool exhausted, connections used up, and an idle transaction
holding row locks: clear errors, within ``[outbox] timeout``, and no hang.

- A process whose one pooled connection (``pool_size = 1``) is held by a long
  transaction: its next operation fails after ``timeout`` saying that every pooled
  connection is busy; a pool that cannot log in says why.
- The server's connections for the outbox's user used up (``CONNECTION LIMIT``): a
  producer's ``notify()`` raises an ``OutboxError`` that names the cause.
- Another session's transaction left idle holding a delivery's row lock: the worker that
  holds that delivery cannot record it, and stops with the error that names the lock
  timeout; ``dbnotify retry`` of it fails likewise; new work is delivered meanwhile
  (claims skip locked rows), and once the lock is gone the delivery goes again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dbnotify.errors import OutboxError
from dbnotify.secrets import Secret

TIMEOUT = 2.0
SLACK = 1.5  # seconds beyond the timeout for the rest of the operation (a loaded machine)
LEASE = 6.0


@pytest.mark.timeout(60)
async def test_pool_exhausted_and_connections_used_up_fail_clearly_in_time(
    own_outbox: Any, mailbox: Any, hosts: Any
) -> None:
    outbox = own_outbox
    store = outbox.store(pool_size=1, timeout=TIMEOUT)
    await store.counts()  # the schema made, the one connection open
    async with store.database.transaction() as held:  # a long transaction holds it
        await held.execute("SELECT 1")
        started = time.monotonic()
        with pytest.raises(OutboxError) as exhausted:
            await store.counts()
        pool_waited = time.monotonic() - started
    assert (await store.counts())["pending"] == 0  # given back, it serves again
    await store.aclose()

    # a pool that cannot log in says so, not only that it gave no connection
    wrong = outbox.store(password=Secret("not-the-password"), timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(OutboxError) as refused:
        await wrong.counts()
    login_waited = time.monotonic() - started

    # the server's connections for this user used up: what a host's notify() says
    server = outbox.server
    await asyncio.to_thread(server.admin, "ALTER ROLE dbnotify CONNECTION LIMIT 2")
    box = await mailbox()
    config = outbox.config(box.port, timeout=TIMEOUT)
    taken = [await outbox.connect() for _ in range(2)]
    try:
        started = time.monotonic()
        producer = await hosts.producer(outbox, config, 1, "limit")
        assert await producer.wait() == 0, producer.output
        producer_took = time.monotonic() - started
    finally:
        for conn in taken:
            await conn.close()
        await asyncio.to_thread(server.admin, "ALTER ROLE dbnotify CONNECTION LIMIT -1")
    (raised,) = producer.lines("raised")

    summary = (
        f"proof 6 (pool, connections): pool_size 1 held by a transaction: "
        f"{type(exhausted.value).__name__} after {pool_waited:.1f}s (timeout {TIMEOUT:g}s): "
        f"{exhausted.value}; a wrong password: after {login_waited:.1f}s: {refused.value}; "
        f"connections used up (CONNECTION LIMIT 2, both taken): the "
        f"producer process ended after {producer_took:.1f}s (start-up included), notify() "
        f"raised {raised}"
    )
    print("\n" + summary)
    assert str(exhausted.value) == (
        f"the PostgreSQL outbox {outbox.url()} gave no connection within {TIMEOUT:g}s "
        "(every pooled connection busy, or the server unreachable); check the server, or "
        "raise [outbox] pool_size or timeout"
    ), summary
    assert pool_waited < TIMEOUT + SLACK, summary
    assert str(refused.value).startswith(
        f"PostgreSQL refused the login to the outbox {outbox.url()}: "
    ), summary
    assert "password authentication failed" in str(refused.value), summary
    assert login_waited < TIMEOUT + SLACK, summary
    assert raised.startswith(("Unreachable ", "OutboxError ")), summary
    assert "too many connections for role" in raised, summary
    assert "Traceback" not in producer.output, summary


@pytest.mark.timeout(90)
async def test_an_idle_transaction_holding_a_row_lock_fails_clearly_in_time(
    outbox: Any, mailbox: Any, hosts: Any, until: Any, tmp_path: Path
) -> None:
    box = await mailbox()
    box.hold()
    config = outbox.config(box.port, deadline=5, timeout=TIMEOUT)
    first = await hosts.worker(outbox, config, lease=LEASE)
    producer = await hosts.producer(outbox, config, 3, "locked", batch=3)
    assert await producer.wait() == 0, producer.output
    queued = set(producer.lines("ok"))

    async def all_claimed() -> bool:
        return first.owner is not None and await outbox.leased_by(first.owner) == 3

    await until(all_claimed, within=20)
    await until(lambda: len(box.held) == 3, within=20, step=0.01)

    # another session locks one of them and goes idle, its transaction open
    locker = await outbox.connect()
    await locker.set_autocommit(False)
    cursor = await locker.execute(
        f'SELECT id FROM "{outbox.schema}".delivery ORDER BY id LIMIT 1 FOR UPDATE'
    )
    (locked,) = await cursor.fetchone()
    try:
        box.release()  # the worker sends all three, then records them
        released = time.monotonic()
        code = await first.wait(within=30)
        worker_took = time.monotonic() - released

        started = time.monotonic()
        retry = await _run(outbox, "retry", str(locked), "-c", str(config))
        retry_took = time.monotonic() - started

        # new work flows meanwhile: claims skip the locked row
        second = await hosts.worker(outbox, config)
        more = await hosts.producer(outbox, config, 2, "meanwhile", batch=2)
        assert await more.wait() == 0, more.output
        later = set(more.lines("ok"))
        await until(lambda: set(box.copies()) >= later, within=20, step=0.05)
        locked_state = await outbox.value("SELECT state FROM {s}.delivery WHERE id = %s", (locked,))
    finally:
        await locker.rollback()  # the lock goes
        await locker.close()
    await until(lambda: set(box.copies()) >= queued, within=LEASE + 20, step=0.1)
    await until(outbox.drained, within=20, step=0.1)
    assert await second.stop() == 0, second.output

    (error,) = [line for line in first.output.splitlines() if line.startswith("error:")]
    summary = (
        f"proof 6 (idle transaction holding delivery #{locked}'s row lock): the worker "
        f"holding it stopped {worker_took:.1f}s after its sends (timeout {TIMEOUT:g}s; "
        f"exit code {code}): {error}; `dbnotify retry {locked}` failed after "
        f"{retry_took:.1f}s (start-up included; exit code {retry[0]}): {retry[1].strip()}; "
        f"meanwhile {len(later)} new notifications were delivered and #{locked} stayed "
        f"{locked_state}; once the lock went, all {len(queued) + len(later)} delivered "
        f"({len(box.messages)} messages, duplicates {box.duplicates()}: the stopped worker's "
        "unrecorded sends)"
    )
    print("\n" + summary)
    assert code == 1, summary
    assert f"delivery #{locked} was attempted but its outcome could not be recorded: " in error
    # the statement's timeout and the lock's are both [outbox] timeout: either may fire
    assert f"did not answer within {TIMEOUT:g}s (canceling statement due to " in error, summary
    assert "while locking tuple" in error, summary
    assert "a long transaction of another session may hold its rows" in error, summary
    assert worker_took < 2 * TIMEOUT + 5, summary  # the group's wait, then its own
    assert retry[0] != 0, summary
    assert f"did not answer within {TIMEOUT:g}s (canceling statement due to " in retry[1]
    assert "a long transaction of another session may hold its rows" in retry[1], summary
    assert retry_took < TIMEOUT + 10, summary  # a command's start-up, then the timeout
    assert locked_state == "pending", summary
    assert set(box.copies()) == queued | later, summary
    assert box.duplicates() <= 3, summary  # at most what the stopped worker held


async def _run(outbox: Any, *args: str) -> tuple[int, str]:
    """``dbnotify ARGS``: exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("dbnotify")),
        *args,
        env=outbox.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()

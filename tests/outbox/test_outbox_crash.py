"""A worker killed with SIGKILL in the middle of a burst loses nothing.

1,000 notifications are committed to the outbox; ``dbnotify worker`` sends them to a
local SMTP server and is killed (SIGKILL: no cleanup, no lease given back) after about a
third have arrived; a new worker takes over. Every notification must arrive, and the
only duplicates allowed are the deliveries that were in flight at the kill (sent, not yet
recorded): those go again when their lease runs out (dispatch.deadline + 30 s), because a
duplicate is better than a loss.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from typing import Any

from dbnotify import Event, Notifier
from dbnotify.outbox.defaults import CONCURRENCY  # deliveries claimed (leased) at once
from dbnotify.outbox.model import RecipientState

BURST = 1000


async def test_sigkill_mid_burst_loses_nothing_and_duplicates_at_most_the_in_flight(
    files: Any, smtp_on: Any, start_worker: Any, until: Any, cpu_seconds: Any
) -> None:
    server = await smtp_on()
    # deadline 1 s: a lease of 31 s, the time the dead worker's deliveries stay held
    config = files.config(server.port, deadline=1, channel="max_connections = 16")
    notifier = Notifier.from_config(config)
    started = time.monotonic()
    for index in range(BURST):
        await notifier.notify(Event("backup_failure", {"job_name": f"job-{index}", "error": "x"}))
    await notifier.aclose()
    enqueued = time.monotonic() - started
    store = files.store()
    assert (await store.counts())["pending"] == BURST

    first = await start_worker(config)
    await until(lambda: len(server.messages) >= BURST // 3, within=60, step=0.001)
    first.kill()
    arrived_at_kill = len(server.messages)
    assert await asyncio.wait_for(first.proc.wait(), 10) == -signal.SIGKILL
    in_flight = (
        store.database.connect()
        .execute(
            "SELECT count(*) FROM delivery WHERE state = 'pending' AND lease_owner IS NOT NULL"
        )
        .fetchone()[0]
    )
    killed_at = time.monotonic()

    second = await start_worker(config)
    await until(lambda: len(set(server.message_ids())) >= BURST, within=90, step=0.05)
    all_arrived = time.monotonic() - killed_at
    cpu_before = cpu_seconds(second.pid)
    await until(lambda: files.counts(pending=0), within=60, step=0.1)
    all_recorded = time.monotonic() - killed_at
    # only the dead worker's leased deliveries were left: the new worker had nothing to do
    waiting_cpu = cpu_seconds(second.pid) - cpu_before
    assert await second.stop() == 0
    assert "worker stopped after" in second.output

    ids = server.message_ids()
    copies = collections.Counter(ids)
    duplicates = len(ids) - len(copies)
    print(
        f"\ncrash: {len(copies)} of {BURST} distinct Message-IDs arrived, {duplicates} "
        f"duplicates; in flight at the kill: {in_flight} (bound {CONCURRENCY}); killed after "
        f"{arrived_at_kill} arrived; all arrived {all_arrived:.1f}s and all were recorded "
        f"{all_recorded:.1f}s after the kill (lease 31 s); "
        f"enqueue of {BURST}: {enqueued:.1f}s; the new worker used {waiting_cpu:.1f}s CPU "
        f"in the {all_recorded - all_arrived:.1f}s it waited for those leases"
    )
    assert len(copies) == BURST
    assert duplicates <= in_flight <= CONCURRENCY
    assert max(copies.values()) <= 2
    assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": BURST}
    # the history names every one as delivered, once per notification
    rows = await store.history(status=RecipientState.DELIVERED, limit=10_000)
    assert len({r.notification_id for r in rows}) == BURST

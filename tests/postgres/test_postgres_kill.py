"""Proof 2: workers killed with SIGKILL at random points, ten times during a burst.

Four producer processes commit a burst (ten at a time, 0.4 s apart: about 12 s) while
three ``dbnotify worker`` processes deliver it to an SMTP server that takes 0.15 s per
message, so that the workers fall behind and each holds a full pipeline. Ten times, at a
random moment, a random worker is killed (SIGKILL: no cleanup, no lease given back) and a
new one started in its place. Nothing may be lost. The only duplicates allowed are the
deliveries in flight at each kill (sent, maybe, but not recorded), which another worker
sends again once their lease runs out: each kill's count is what the dead worker still
held in the outbox (its ``lease_owner`` rows, read as it died), and their sum bounds the
duplicates.

The lease here is 20 s (``Worker.lease``, otherwise ``[dispatch] deadline`` + 30 s) with
a deadline of 10 s: the last kill's deliveries wait for it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import pytest

from dbnotify.outbox.defaults import POSTGRES_CONCURRENCY
from dbnotify.outbox.model import RecipientState

PRODUCERS = 4
PER_PRODUCER = 300
TOTAL = PRODUCERS * PER_PRODUCER
WORKERS = 3
KILLS = 10
LEASE = 20.0
SMTP_DELAY = 0.15


@pytest.mark.timeout(170)
async def test_ten_sigkills_during_a_burst_lose_nothing(
    outbox: Any, mailbox: Any, hosts: Any, until: Any
) -> None:
    box = await mailbox()
    box.delay = SMTP_DELAY  # the workers fall behind: each holds a full pipeline of leases
    config = outbox.config(box.port, deadline=10)
    workers = [await hosts.worker(outbox, config, lease=LEASE) for _ in range(WORKERS)]
    rng = random.Random()
    started = time.monotonic()
    producers = [
        await hosts.producer(outbox, config, PER_PRODUCER, f"p{n}", batch=10, pause=0.4)
        for n in range(PRODUCERS)
    ]

    await until(lambda: len(box.messages) >= 50, within=60, step=0.02)  # the burst is on
    kills: list[tuple[float, int, int, int]] = []  # at, arrived, leased before, leased dead
    while len(kills) < KILLS:
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        ready = [w for w in workers if w.alive and w.owner is not None]
        if len(ready) < 2:  # keep one working while the replacements start
            continue
        victim = rng.choice(ready)
        owner = victim.owner
        assert owner is not None
        victim.signal(signal.SIGSTOP)  # it claims nothing more while we count
        before = await outbox.leased_by(owner)
        victim.signal(signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL
        # what it held as it died: any claim it sent was committed by now or never
        dead = await outbox.leased_by(owner)
        kills.append((time.monotonic() - started, len(box.messages), before, dead))
        workers.remove(victim)
        workers.append(await hosts.worker(outbox, config, lease=LEASE, ready=False))
    last_kill = time.monotonic()
    pending_at_last_kill = await outbox.pending()

    for producer in producers:
        assert await producer.wait(within=120) == 0, producer.output
        assert producer.lines("raised") == [], producer.output
    queued = {ident for p in producers for ident in p.lines("ok")}
    assert len(queued) == TOTAL

    await until(lambda: len(box.copies()) >= TOTAL, within=LEASE + 60, step=0.1)
    await until(outbox.drained, within=LEASE + 30, step=0.1)
    all_recorded = time.monotonic() - last_kill
    await asyncio.sleep(1.0)  # anything sent twice more would arrive by now
    for worker in workers:
        assert await worker.stop() == 0, worker.output

    copies = box.copies()
    lost = len(queued - set(copies))
    duplicates = box.duplicates()
    in_flight = sum(dead for *_, dead in kills)
    store = outbox.store()
    history = await store.history(limit=10 * TOTAL)
    summary = (
        f"proof 2: {TOTAL} notifications, {KILLS} SIGKILLs at "
        + ", ".join(f"{at:.1f}s" for at, *_ in kills)
        + f" (messages arrived by then: {', '.join(str(n) for _, n, *_ in kills)}); "
        f"leased by the killed worker just before each kill: "
        f"{', '.join(str(b) for *_, b, _ in kills)}, as it died: "
        f"{', '.join(str(d) for *_, d in kills)} (sum {in_flight}; bound per kill "
        f"{POSTGRES_CONCURRENCY}); pending at the last kill {pending_at_last_kill}; "
        f"{len(box.messages)} messages arrived, {len(copies)} distinct: lost {lost}, "
        f"duplicates {duplicates} <= in flight {in_flight}; all recorded {all_recorded:.1f}s "
        f"after the last kill (lease {LEASE:g}s)"
    )
    print("\n" + summary)
    assert lost == 0, summary
    assert set(copies) == queued, summary
    assert duplicates <= in_flight, summary
    assert all(dead <= POSTGRES_CONCURRENCY for *_, dead in kills), summary
    assert pending_at_last_kill > 0, summary  # the kills fell within the burst
    assert {row.notification_id for row in history} == queued, summary
    assert {row.status for row in history} == {RecipientState.DELIVERED}, summary
    assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": TOTAL}

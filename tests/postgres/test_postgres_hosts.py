"""Proof 1: four producer processes and three worker processes on one PostgreSQL outbox.

3,000 notifications, committed by four host processes at once (each with ten calls in
flight, sharing commits) while three ``dbnotify worker`` processes deliver them to one
SMTP server: every one arrives, none twice, and the history names each as delivered,
after one attempt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from dbnotify.outbox.model import RecipientState

PRODUCERS = 4
WORKERS = 3
PER_PRODUCER = 750
TOTAL = PRODUCERS * PER_PRODUCER


@pytest.mark.timeout(150)
async def test_four_producers_three_workers_3000_all_arrive_none_twice(
    outbox: Any, mailbox: Any, hosts: Any, until: Any
) -> None:
    box = await mailbox()
    config = outbox.config(box.port, deadline=10)
    workers = [await hosts.worker(outbox, config) for _ in range(WORKERS)]

    started = time.monotonic()
    producers = [
        await hosts.producer(outbox, config, PER_PRODUCER, f"p{n}", batch=10)
        for n in range(PRODUCERS)
    ]
    codes = await asyncio.gather(*(p.wait(within=120) for p in producers))
    committed = time.monotonic() - started
    for producer, code in zip(producers, codes, strict=True):
        assert code == 0, producer.output
        assert producer.lines("raised") == [], producer.output
    queued = {ident for p in producers for ident in p.lines("ok")}
    assert len(queued) == TOTAL

    await until(lambda: len(box.copies()) >= TOTAL, within=120, step=0.1)
    arrived = time.monotonic() - started
    await until(outbox.drained, within=30, step=0.1)
    await asyncio.sleep(1.0)  # anything sent twice would arrive by now
    for worker in workers:
        assert await worker.stop() == 0, worker.output
    attempts = [
        int(worker.output.rpartition("worker stopped after ")[2].split()[0]) for worker in workers
    ]

    copies = box.copies()
    store = outbox.store()
    history = await store.history(limit=10 * TOTAL)
    states = {row.status for row in history}
    summary = (
        f"proof 1: {PRODUCERS} producer processes x {PER_PRODUCER} = {TOTAL} committed in "
        f"{committed:.1f}s; {WORKERS} worker processes attempted {' + '.join(map(str, attempts))}"
        f" = {sum(attempts)}; {len(box.messages)} messages arrived ({arrived:.1f}s), "
        f"{len(copies)} distinct, lost {len(queued - set(copies))}, duplicates "
        f"{box.duplicates()}; history: {len(history)} rows, states {sorted(map(str, states))}"
    )
    print("\n" + summary)
    assert set(copies) == queued, summary
    assert box.duplicates() == 0, summary
    assert sum(attempts) == TOTAL, summary
    assert min(attempts) > 0, summary  # every worker took part
    assert len(history) == TOTAL, summary
    assert {row.notification_id for row in history} == queued, summary
    assert states == {RecipientState.DELIVERED}, summary
    assert {row.attempts for row in history} == {1}, summary
    assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": TOTAL}

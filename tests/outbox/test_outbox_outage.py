"""The SMTP server is down for a while, then returns.

A ``dbnotify worker`` process faces a closed port: every attempt fails (transient), the
retries follow the backoff (first_delay 0.2 s doubling to max_delay 1 s, jittered), the
worker does not spin while it waits, and once a server listens on that port again every
queued notification arrives, once.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from typing import Any

from dbnotify import Event, Notifier

QUEUED = 10
IDLE_SECONDS = 3.0
CPU_LIMIT = 0.3  # seconds of CPU allowed over IDLE_SECONDS of wall time, idle
WAITING_CPU_LIMIT = 1.0
"""The same while the server is down: a third of a core, where a worker that spins takes
all of one. Its attempts are work, not waiting: 10 deliveries retried about every 0.75 s
make about 13 a second, each a claim, a render, a refused connection and a record with
its fsync, 8-10 ms of CPU each on the 2-core CI machine (0.37-0.49 s in 3 s)."""
FIRST_DELAY, MAX_DELAY = 0.2, 1.0


async def test_outage_then_recovery_backoff_and_idle_cpu(
    files: Any,
    free_port: int,
    smtp_on: Any,
    start_worker: Any,
    until: Any,
    cpu_seconds: Any,
) -> None:
    config = files.config(free_port, first_delay=f"{FIRST_DELAY}s", max_delay=f"{MAX_DELAY}s")
    worker = await start_worker(config)
    await until(lambda: "due now" in worker.output, within=20)

    # nothing to do: the worker only looks for new notifications once a second
    before = cpu_seconds(worker.pid)
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu = cpu_seconds(worker.pid) - before

    notifier = Notifier.from_config(config)
    ids = []
    for index in range(QUEUED):
        result = await notifier.notify(
            Event("backup_failure", {"job_name": f"job-{index}", "error": "x"})
        )
        ids += result.delivery_ids
    await notifier.aclose()
    store = files.store()

    async def all_failed_once() -> bool:
        return len(await store.failures_since(0)) >= QUEUED

    await until(all_failed_once, within=5)
    await asyncio.sleep(1.5)  # the backoff reaches max_delay

    # the server is down: the worker waits between retries
    before = cpu_seconds(worker.pid)
    await asyncio.sleep(IDLE_SECONDS)
    waiting_cpu = cpu_seconds(worker.pid) - before
    assert (await store.counts())["delivered"] == 0

    server = await smtp_on(free_port)  # back, on the same port
    back = time.monotonic()
    await until(lambda: len(server.messages) >= QUEUED, within=10)
    recovered = time.monotonic() - back
    await until(lambda: files.counts(pending=0), within=5)
    assert await worker.stop() == 0

    # every one arrived, once
    assert sorted(server.message_ids()) == sorted(set(server.message_ids()))
    assert len(server.messages) == QUEUED
    assert await files.counts(delivered=QUEUED, dead=0)

    # the attempts, per delivery, from the outbox's own log
    times: dict[int, list[float]] = defaultdict(list)
    db = store.database.connect()
    for delivery, at in db.execute("SELECT delivery_id, at FROM attempt ORDER BY at"):
        times[delivery].append(at)
    assert sorted(times) == sorted(ids)
    gaps_by_attempt: dict[int, list[float]] = defaultdict(list)
    for delivery in ids:
        ats = times[delivery]
        for n, (a, b) in enumerate(itertools.pairwise(ats), start=1):
            base = min(MAX_DELAY, FIRST_DELAY * 2 ** (n - 1))
            # jitter 50-100 % of the backoff, plus the worker's own latency
            assert base / 2 - 0.02 <= b - a <= base + 0.25, (delivery, n, b - a)
            gaps_by_attempt[n].append(b - a)
    medians = {n: statistics.median(g) for n, g in sorted(gaps_by_attempt.items())}
    attempts = [len(times[d]) for d in ids]
    print(
        f"\noutage: idle worker {idle_cpu:.2f}s CPU in {IDLE_SECONDS:g}s; waiting worker "
        f"(server down, {QUEUED} queued) {waiting_cpu:.2f}s CPU in {IDLE_SECONDS:g}s; all "
        f"{QUEUED} arrived {recovered:.2f}s after the server came back; attempts per "
        f"notification {min(attempts)}-{max(attempts)}; median gap by attempt: "
        + ", ".join(f"{n}->{n + 1}: {m:.2f}s" for n, m in list(medians.items())[:6])
    )
    assert idle_cpu < CPU_LIMIT
    assert waiting_cpu < WAITING_CPU_LIMIT
    assert recovered < MAX_DELAY + 1.5  # the next retry, or the next look
    assert min(attempts) >= 5
    # the waits grow: 0.1-0.2 s, 0.2-0.4 s, 0.4-0.8 s, then 0.5-1 s
    assert medians[1] < medians[2] < medians[3]
    assert all(m <= MAX_DELAY + 0.25 for m in medians.values())

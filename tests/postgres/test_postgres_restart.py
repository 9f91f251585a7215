"""Proof 5: PostgreSQL restarted in the middle of a burst.

Four producer processes commit a burst while three ``dbnotify worker`` processes deliver
it; meanwhile the server crashes (``pg_ctl stop -m immediate``: no checkpoint, every
connection dropped), stays down three seconds, longer than ``[outbox] timeout`` (2 s),
and starts again (recovering from its WAL).
Each ``notify()`` either returned (its notification committed) or raised an
:class:`~dbnotify.errors.OutboxError` that says what happened, never psycopg's own
exception; every notification whose ``notify()`` returned arrives; the same three
workers deliver the rest once the server is back, without being restarted.

The lease is 15 s (``Worker.lease``, otherwise ``[dispatch] deadline`` + 30 s): an
attempt whose record the crash broke is sent again once it ends.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from typing import Any

import pytest

from dbnotify.outbox.model import RecipientState

PRODUCERS = 4
PER_PRODUCER = 300
TOTAL = PRODUCERS * PER_PRODUCER
WORKERS = 3
LEASE = 15.0
DOWN = 3.0


@pytest.mark.timeout(150)
async def test_postgres_restarted_mid_burst_acknowledged_work_is_delivered(
    own_outbox: Any, mailbox: Any, hosts: Any, until: Any
) -> None:
    outbox = own_outbox
    server = outbox.server
    box = await mailbox()
    config = outbox.config(box.port, deadline=10, timeout=2)
    workers = [await hosts.worker(outbox, config, lease=LEASE, verbose=True) for _ in range(3)]
    started = time.monotonic()
    producers = [
        await hosts.producer(outbox, config, PER_PRODUCER, f"p{n}", batch=10, pause=0.05)
        for n in range(PRODUCERS)
    ]
    await until(lambda: len(box.messages) >= TOTAL // 5, within=60, step=0.02)
    arrived_before = len(box.messages)
    crash_at = time.monotonic() - started
    await asyncio.to_thread(server.stop, "immediate")
    await asyncio.sleep(DOWN)
    await asyncio.to_thread(server.start)
    back = time.monotonic()
    producers_running = sum(p.alive for p in producers)

    for producer in producers:
        assert await producer.wait(within=120) == 0, producer.output
    acknowledged = {ident for p in producers for ident in p.lines("ok")}
    errors = [line for p in producers for line in p.lines("raised")]
    await until(lambda: set(box.copies()) >= acknowledged, within=LEASE + 60, step=0.1)
    await until(outbox.drained, within=LEASE + 30, step=0.1)
    recovered = time.monotonic() - back
    await asyncio.sleep(1.0)
    alive = [w.alive for w in workers]
    codes = [await w.stop() for w in workers]

    copies = box.copies()
    lost = acknowledged - set(copies)
    kinds = collections.Counter(line.split(" ", 1)[0] for line in errors)
    causes = collections.Counter(_cause(line) for line in errors)
    outputs = "".join(p.output for p in producers)
    # what else the hosts printed: psycopg_pool's own warnings (through logging's last
    # resort handler, in a host that configured no logging), never a traceback
    other = collections.Counter(
        _cause(line)
        for line in outputs.splitlines()
        if line.split(" ", 1)[0] not in {"ok", "raised", "done"} and not line[:1].isspace()
    )
    worker_said = collections.Counter(
        _cause(line)
        for w in workers
        for line in w.output.splitlines()
        if line.startswith(("error:", "warning:"))
    )
    store = outbox.store()
    history = await store.history(limit=10 * TOTAL)
    twice = sorted(row.delivery_id for row in history if row.attempts != 1)
    attempt_rows = await outbox.value("SELECT count(*) FROM {s}.attempt")
    summary = (
        f"proof 5: crash (immediate stop) at {crash_at:.1f}s, {arrived_before} messages "
        f"arrived by then, {producers_running} of {PRODUCERS} producers still running when "
        f"the server was back {DOWN:g}s later; notify() returned {len(acknowledged)} of "
        f"{TOTAL}, raised {len(errors)} ({dict(kinds)}: {dict(causes)}); the producers "
        f"also printed {dict(other)}; "
        f"{len(box.messages)} messages, {len(copies)} distinct: acknowledged and lost "
        f"{len(lost)}, duplicates {box.duplicates()}; all delivered {recovered:.1f}s after "
        f"the restart ({attempt_rows} attempts recorded; recipients recorded more than once: "
        f"{len(twice)}) by the same {WORKERS} workers (alive: {alive}, exit codes {codes}); "
        f"the workers said: {dict(worker_said)}"
    )
    print("\n" + summary)
    assert not lost, summary
    assert "Traceback" not in outputs, outputs
    assert set(kinds) <= {"OutboxError", "Unreachable", "InDoubt"}, summary  # OutboxErrors
    assert all(alive), summary  # the same workers, never restarted
    assert codes == [0] * WORKERS, summary
    assert {row.status for row in history} == {RecipientState.DELIVERED}, summary
    assert acknowledged <= {row.notification_id for row in history}, summary
    assert twice == [], summary  # no attempt recorded twice: no claim, no record in doubt


def _cause(line: str) -> str:
    """A message without its details: what kind of failure, for counting."""
    words = re.sub(r" at 0x[0-9a-f]+", "", line).split()
    for marker in ("in doubt", "cannot reach", "gave no connection", "did not answer"):
        if marker in line:
            return marker
    return " ".join(words[:8])


@pytest.mark.timeout(60)
async def test_a_claim_survives_a_crash_of_the_server_its_fence_is_never_given_twice(
    own_outbox: Any,
) -> None:
    """A worker's claim is committed durably: were it lost when the server crashed, the
    delivery would be claimed again, with the same fencing number, while the worker that
    claimed it first (on another host, alive) still sends it, and both records would
    stand."""
    from dbnotify.events import Event, to_notification
    from dbnotify.outbox.model import Enqueue
    from dbnotify.outbox.policy import policy_for
    from dbnotify.results import Delivery, Target

    outbox = own_outbox
    store = outbox.store()
    event = Event("backup_failure", {"job_name": "crash", "error": "x"})
    plan = [Delivery("ops-mail", Target.CHANNEL)]
    (ids,) = await store.enqueue_many(
        [Enqueue(to_notification(event), None, plan, policy_for(event.type, {}), ())]
    )
    (claimed,) = await store.claim("first", limit=1, lease=60, only=ids)
    await asyncio.to_thread(outbox.server.stop, "immediate")  # at once: no checkpoint
    await store.aclose()
    await asyncio.to_thread(outbox.server.start)
    again = await outbox.store().claim("second", limit=1, lease=60, only=ids)
    (row,) = await outbox.rows("SELECT fence, lease_owner FROM {s}.delivery")
    print(f"\nclaim (fence {claimed.fence}), server crashed: {row}; claimed again: {again}")
    assert row == (claimed.fence, "first")
    assert again == []

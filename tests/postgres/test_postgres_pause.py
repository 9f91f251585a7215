"""Proof 3: a worker paused (SIGSTOP) past its lease; another takes over; the fence holds.

The first worker claims the one notification and sends it; the SMTP server holds its
reply while the test pauses the worker, then accepts the message (the paused worker has
sent it, and not recorded it). Once the lease has run out, a second worker claims the
delivery (the fencing number moves on) and delivers it again. Resumed (SIGCONT), the
first worker records its attempt: refused by the fence, so the history reports the
delivery once, the second worker's attempt; the first worker's log says it was taken
over. The recipient got the message twice, which the warning says.

The lease is 5 s (``Worker.lease``, otherwise ``[dispatch] deadline`` + 30 s). The first
worker runs with ``-v``: by default ``dbnotify`` logs only errors, and the takeover is a
warning.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from dbnotify.outbox.model import RecipientState

LEASE = 5.0


@pytest.mark.timeout(90)
async def test_paused_worker_past_its_lease_is_fenced_off(
    outbox: Any, mailbox: Any, hosts: Any, until: Any
) -> None:
    box = await mailbox()
    box.hold()
    config = outbox.config(box.port, deadline=3)
    first = await hosts.worker(outbox, config, lease=LEASE, verbose=True)
    producer = await hosts.producer(outbox, config, 1, "paused")
    assert await producer.wait() == 0, producer.output
    (ident,) = producer.lines("ok")

    await until(lambda: box.held == [ident], within=20, step=0.01)
    first.signal(signal.SIGSTOP)  # paused while the server holds its message
    paused = time.monotonic()
    (row,) = await outbox.rows(
        "SELECT id, fence, lease_owner, lease_until - extract(epoch FROM clock_timestamp()) "
        "FROM {s}.delivery"
    )
    delivery, fence_first, owner, lease_left = row
    assert (fence_first, owner) == (1, first.owner)
    box.release()  # the message is accepted; the paused worker has not read the reply
    await until(lambda: len(box.messages) == 1, within=5, step=0.01)

    second = await hosts.worker(outbox, config, lease=LEASE)
    await until(outbox.drained, within=LEASE + 20, step=0.1)
    taken_after = time.monotonic() - paused
    (row,) = await outbox.rows("SELECT fence, state, lease_owner FROM {s}.delivery")
    fence_second, state, _ = row
    assert (fence_second, state) == (2, "done")
    assert len(box.messages) == 2

    first.signal(signal.SIGCONT)
    resumed_after = time.monotonic() - paused
    await until(lambda: "taken it over" in first.output, within=15, step=0.05)
    assert await first.stop() == 0, first.output
    assert await second.stop() == 0, second.output

    store = outbox.store()
    history = await store.history(notification_id=ident)
    attempts = await outbox.value("SELECT count(*) FROM {s}.attempt")
    (warning,) = [line for line in first.output.splitlines() if "taken it over" in line]
    summary = (
        f"proof 3: worker paused {resumed_after:.1f}s (lease {LEASE:g}s, {lease_left:.1f}s "
        f"left at the pause); the second worker delivered {taken_after:.1f}s after the pause "
        f"(fence {fence_first} -> {fence_second}); messages arrived {len(box.messages)} "
        f"(duplicates {box.duplicates()}: the paused worker's send); history rows "
        f"{len(history)}: {[(r.status.value, r.attempts) for r in history]}; attempt rows "
        f"{attempts}; the first worker's log: {warning.strip()!r}"
    )
    print("\n" + summary)
    assert box.copies() == {ident: 2}, summary
    assert len(history) == 1, summary
    (only,) = history
    assert (only.status, only.attempts, only.delivery_id) == (
        RecipientState.DELIVERED,
        1,
        delivery,
    ), summary
    assert attempts == 1, summary  # the late attempt is not recorded at all
    assert f"delivery #{delivery}: this worker held it past its lease" in warning, summary

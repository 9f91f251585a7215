"""Proof 4: a worker cut off from the database, but not from the SMTP server.

The worker runs in a network namespace of its own ("another host"), linked to this one
by two veth pairs: one to PostgreSQL, one to the SMTP server. It claims the burst; the
SMTP server holds its replies while the test takes the database's link down (the host's
end of the veth: the worker's packets go nowhere and no reset comes back, a cable
pulled), then lets the messages through. The worker has sent them and cannot record
them: it stops with the error that says so, rather than send them again each time a
lease runs out. A worker on this host takes the deliveries over once their lease ends
and sends them again: nothing is lost, and the duplicates (the cut-off worker's sends)
are counted, by the address each message came from.

Real links, not a proxy: the machine must allow ``ip netns`` (root); the test skips
otherwise, or fails under CI. PostgreSQL listens on the database link's address too.
The lease is 6 s (``Worker.lease``, otherwise ``[dispatch] deadline`` + 30 s).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dbnotify.outbox.model import RecipientState

BURST = 20
LEASE = 6.0


@pytest.mark.timeout(120)
async def test_worker_cut_off_from_the_database_stops_another_resends(
    own_outbox: Any, netns: Any, postgres_on: Any, mailbox: Any, hosts: Any, until: Any
) -> None:
    outbox = own_outbox
    postgres_on(outbox.server, netns.db.host)
    box = await mailbox(host=netns.smtp.host)
    remote = outbox.config(
        box.port, name="remote.toml", smtp_host=netns.smtp.host, db_host=netns.db.host,
        deadline=5, timeout=2,
    )  # fmt: skip
    local = outbox.config(box.port, name="local.toml", smtp_host=netns.smtp.host, deadline=5)

    box.hold()
    cut_off = await hosts.worker(outbox, remote, lease=LEASE, netns=netns.name, verbose=True)
    assert cut_off.owner is not None
    producer = await hosts.producer(outbox, local, BURST, "cut", batch=BURST)
    assert await producer.wait() == 0, producer.output
    queued = set(producer.lines("ok"))
    assert len(queued) == BURST

    async def all_claimed() -> bool:
        return await outbox.leased_by(cut_off.owner) == BURST

    await until(all_claimed, within=20)
    await until(lambda: len(box.held) > 0, within=20, step=0.01)
    netns.db.cut()
    cut = time.monotonic()
    box.release()  # the SMTP link still works: the worker sends what it holds

    code = await cut_off.wait(within=60)
    stopped_after = time.monotonic() - cut
    sent = list(zip(box.ids(), box.peers, strict=True))
    from_remote = [ident for ident, peer in sent if peer == netns.smtp.peer]
    sent_by_cut_off = len(from_remote)

    takes_over = await hosts.worker(outbox, local)
    await until(lambda: set(box.copies()) >= queued, within=LEASE + 30, step=0.1)
    await until(outbox.drained, within=30, step=0.1)
    resent_after = time.monotonic() - cut
    assert await takes_over.stop() == 0, takes_over.output

    copies = box.copies()
    from_local = [
        ident for ident, peer in zip(box.ids(), box.peers, strict=True) if peer != netns.smtp.peer
    ]
    error = [line for line in cut_off.output.splitlines() if "could not be recorded" in line]
    store = outbox.store()
    history = await store.history(limit=10 * BURST)
    summary = (
        f"proof 4 (network namespace, veth link to PostgreSQL taken down): the cut-off "
        f"worker claimed {BURST}, sent {sent_by_cut_off} (each once: "
        f"{len(set(from_remote))} distinct) and stopped {stopped_after:.1f}s after the cut "
        f"with exit code {code}; the other worker sent {len(from_local)}, all delivered "
        f"{resent_after:.1f}s after the cut (lease {LEASE:g}s); {len(box.messages)} "
        f"messages, {len(copies)} distinct: lost {len(queued - set(copies))}, duplicates "
        f"{box.duplicates()}; history: {len(history)} rows, all delivered once; the "
        f"cut-off worker said: {error[0] if error else cut_off.output!r}"
    )
    print("\n" + summary)
    assert set(copies) == queued, summary
    assert sent_by_cut_off > 0, summary
    assert len(set(from_remote)) == sent_by_cut_off, summary  # never twice from there
    assert sorted(from_local) == sorted(queued), summary  # every lease ran out: all again
    assert box.duplicates() == sent_by_cut_off, summary
    assert code == 1, summary
    assert len(error) == 1, summary
    assert error[0].startswith("error: delivery #"), summary
    assert "was attempted but its outcome could not be recorded: " in error[0], summary
    assert "the worker stops rather than send it again and again" in error[0], summary
    assert "Traceback" not in cut_off.output, summary
    assert {row.notification_id for row in history} == queued, summary
    assert {(row.status, row.attempts) for row in history} == {(RecipientState.DELIVERED, 1)}

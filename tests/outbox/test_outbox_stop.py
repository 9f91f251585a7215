"""SIGTERM: a worker finishes what it holds, or gives it back, within a bounded time."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

SEND = ("send", "backup_failure", "--data", "job_name=j", "--data", "error=e", "--no-wait")


async def test_sigterm_lets_an_attempt_in_flight_finish_and_record(
    files: Any, scripted: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    server = await scripted(final_delay=1.5)  # the message is stored, its 250 comes late
    config = files.config(server.port)
    worker = await start_worker(config)
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: len(server.data) == 1, within=15)  # sent, the reply on its way
    assert await worker.stop(within=15) == 0
    assert "stopping; attempts in flight get 10s to finish" in worker.output
    assert "worker stopped after 1 attempt\n" in worker.output
    assert await files.counts(pending=0, delivered=1)


async def test_sigterm_gives_back_what_does_not_finish_in_its_grace(
    files: Any, scripted: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    server = await scripted(final_delay=30)  # stored, no reply for longer than the grace
    config = files.config(server.port, deadline=60)
    worker = await start_worker(config, "--grace", "0.5")
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: len(server.data) == 1, within=15)
    started = time.monotonic()
    assert await worker.stop(within=10) == 0
    assert time.monotonic() - started < 5  # bounded by the grace, not the 90 s lease
    assert (
        "worker stopped after 1 attempt; gave back 1 delivery not finished in time" in worker.output
    )
    store = files.store()
    (taken,) = await store.claim("next-worker", limit=5, lease=30)  # at once, no lease wait
    assert taken.attempts == 0


async def test_drain_ends_with_an_error_when_the_outbox_cannot_be_written(
    files: Any, scripted: Any, dbnotify: Any
) -> None:
    """It used to log and try again forever: a drain that cannot drain must say so."""
    import sqlite3

    server = await scripted()
    config = files.config(server.port, busy_timeout=0.3)
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    holder = sqlite3.connect(files.outbox, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = time.monotonic()
        drained = await dbnotify("worker", "-c", str(config), "--drain")
        assert time.monotonic() - started < 20
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert drained.code == 1
    assert f"error: the outbox {files.outbox} is locked by another process" in drained.err
    assert server.data == []


PLAIN_AUTH = 'user = "mailer"\npassword = "s3cret"\nallow_plaintext_auth = true'


async def test_outbox_shows_a_parked_channel_as_it_is_once_its_configuration_changed(
    files: Any, scripted: Any, dbnotify: Any
) -> None:
    """Parked for a refused password; the password was fixed in the file: `outbox` no
    longer says PARKED (a worker would unpark it at its start; `outbox` does the same)."""
    server = await scripted(replies={"AUTH": "535 5.7.8 Authentication credentials invalid"})
    config = files.config(server.port, channel=PLAIN_AUTH)
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    assert (await dbnotify("worker", "-c", str(config), "--drain")).code == 0
    before = await dbnotify("outbox", "-c", str(config))
    assert "channel ops-mail is PARKED since" in before.out
    files.config(server.port, channel=PLAIN_AUTH.replace("s3cret", "n3w-s3cret"))
    after = await dbnotify("outbox", "-c", str(config))
    assert after.out.splitlines()[:2] == [
        "channel ops-mail: its configuration changed since it was parked; its queue goes "
        "again (a running worker sends it)",
        "1 pending, 0 dead",
    ]
    assert "PARKED" not in after.out


async def test_outbox_shows_a_delivery_held_by_a_worker_that_died(
    files: Any, scripted: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    server = await scripted(final_delay=30)
    config = files.config(server.port, deadline=60)
    worker = await start_worker(config)
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: len(server.data) == 1, within=15)
    worker.kill()  # kill -9: its lease stays until it runs out
    await worker.proc.wait()
    listed = await dbnotify("outbox", "-c", str(config))
    (line,) = [x for x in listed.out.splitlines() if x.startswith("  #1 ")]
    assert f"held by worker {socket.gethostname()}:{worker.pid}:" in line
    assert "(if that worker is gone, it goes again then)" in line
    rows = json.loads((await dbnotify("outbox", "-c", str(config), "--json")).out)["pending"]
    assert rows[0]["held_by"].startswith(f"{socket.gethostname()}:{worker.pid}:")

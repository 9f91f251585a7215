"""Several processes on one outbox file: writers at once, workers at once, nothing twice.

Hosts in several processes enqueue into the same SQLite file while two ``dbnotify worker``
processes drain it: every notification is committed (no "database is locked" for a
writer that waits its busy_timeout), and each is sent exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import re
import textwrap
import time
from typing import Any

WRITERS = 4
PER_WRITER = 40
CLI_SENDS = 3

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from dbnotify import Event, Notifier

    async def main():
        notifier = Notifier.from_config(sys.argv[1])
        for index in range(int(sys.argv[2])):
            result = await notifier.notify(
                Event("backup_failure", {"job_name": f"{sys.argv[3]}-{index}", "error": "x"})
            )
            print(result.notification_id)

    asyncio.run(main())
    """
)


async def test_writers_and_two_workers_at_once_send_each_notification_once(
    files: Any, scripted: Any, start_worker: Any, python: Any, dbnotify: Any, until: Any
) -> None:
    # a server that takes a moment per message, one connection per worker: one worker
    # alone cannot keep up with the writers, so both must take part (with a faster
    # server one worker could drain the outbox as fast as it fills, and the other, whose
    # next look comes a second later, would find nothing due)
    server = await scripted(final_delay=0.02)
    server.heal()  # no faults: a plain, slow server
    config = files.config(server.port, channel="max_connections = 1")
    first = await start_worker(config)
    second = await start_worker(config)
    await until(lambda: "due now" in first.output and "due now" in second.output, within=20)

    started = time.monotonic()
    runs = await asyncio.gather(
        *(python(WRITER, str(config), str(PER_WRITER), f"w{n}") for n in range(WRITERS)),
        *(
            dbnotify(
                "send", "backup_failure", "-c", str(config), "--no-wait",
                "--data", f"job_name=cli-{n}", "--data", "error=x",
            )
            for n in range(CLI_SENDS)
        ),
    )  # fmt: skip
    wrote = time.monotonic() - started
    for run in runs:
        assert run.code == 0, run.err
    total = WRITERS * PER_WRITER + CLI_SENDS
    queued = {line for run in runs[:WRITERS] for line in run.out.split()}
    assert len(queued) == WRITERS * PER_WRITER

    store = files.store()
    await until(lambda: len(server.data) >= total, within=60)
    await until(lambda: files.counts(pending=0), within=10)
    await asyncio.sleep(0.5)  # anything sent twice would arrive by now
    assert await first.stop() == 0
    assert await second.stop() == 0

    ids = server.message_ids()
    copies = collections.Counter(ids)
    attempts = [
        int(re.search(r"worker stopped after (\d+) attempts?", w.output)[1])  # type: ignore[index]
        for w in (first, second)
    ]
    print(
        f"\n{WRITERS} writer processes x {PER_WRITER} + {CLI_SENDS} `dbnotify send` at once: "
        f"{total} committed in {wrote:.1f}s; two workers sent {attempts[0]} + {attempts[1]}; "
        f"{len(ids)} messages arrived, {len(copies)} distinct, "
        f"{len(ids) - len(copies)} duplicates"
    )
    assert len(copies) == total
    assert len(ids) == total  # zero duplicates
    assert sum(attempts) == total
    assert min(attempts) > 0  # both workers took part
    assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": total}


async def test_durable_send_commits_then_tries_once_and_the_worker_finishes(
    files: Any, smtp_on: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    server = await smtp_on(rcpt_replies={"b@x.org": "451 4.2.0 mailbox busy, try later"})
    config = files.config(server.port, to=("a@x.org", "b@x.org"))
    run = await dbnotify(
        "send", "backup_failure", "-c", str(config), "--data", "job_name=j", "--data", "error=e"
    )
    assert run.code == 1  # not everyone has it yet
    assert "first attempts:" in run.out
    assert re.search(r"#1 backup_failure ops-mail a@x\.org: delivered", run.out), run.out
    assert re.search(
        r"#1 backup_failure ops-mail b@x\.org: pending \(transient\) - the server refused this "
        r"recipient - server said: 451 4\.2\.0 mailbox busy, try later - next attempt ",
        run.out,
    ), run.out
    assert len(server.messages) == 1

    del server.rcpt_replies["b@x.org"]
    worker = await start_worker(config, "--drain")
    # --drain stops when nothing is due: run it again until the retry was due
    store = files.store()
    end = time.monotonic() + 10
    while (await store.counts())["pending"]:
        assert time.monotonic() < end
        assert await asyncio.wait_for(worker.proc.wait(), 10) == 0
        if (await store.counts())["pending"]:
            await asyncio.sleep(0.2)
            worker = await start_worker(config, "--drain")
    first, second = server.messages
    assert (first.rcpt_tos, second.rcpt_tos) == (("a@x.org",), ("b@x.org",))
    assert first.message["Message-ID"] == second.message["Message-ID"]

    history = await dbnotify("history", "-c", str(config), "--status", "delivered")
    assert history.code == 0
    lines = history.out.splitlines()
    assert len(lines) == 2
    assert all(" delivered [attempts " in line for line in lines)

"""Group commit: concurrent writes share a transaction; a failing write fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dbnotify import Event, Notifier, Status
from dbnotify.errors import OutboxError
from dbnotify.outbox.group import GroupCommit
from dbnotify.outbox.memory import MemoryStore
from dbnotify.outbox.model import Enqueue
from dbnotify.testing.smtpd import LocalSMTPServer


def submit(group: GroupCommit[str, str], item: str) -> asyncio.Future[str]:
    """What ``item`` was committed as, awaitable."""
    committed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    group.submit(item, committed)
    return committed


class Store:
    """Records each transaction's items; refuses any group holding a "bad" item."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.gate = asyncio.Event()

    async def write_many(self, items: Sequence[str]) -> list[str]:
        # the first transaction waits, so that the others gather
        await asyncio.wait_for(self.gate.wait(), 5)
        if "bad" in items:
            raise OutboxError(f"cannot store {len(items)} item(s): one is bad")
        self.transactions.append(list(items))
        return [item.upper() for item in items]


async def test_writes_that_arrive_together_share_one_transaction() -> None:
    store = Store()
    group = GroupCommit(store.write_many, limit=500)

    first = submit(group, "a")
    await asyncio.sleep(0.05)  # "a" is being written; the rest gather behind it
    rest = [submit(group, x) for x in "bcdef"]
    await asyncio.sleep(0.05)
    store.gate.set()

    assert await first == "A"
    assert await asyncio.gather(*rest) == list("BCDEF")
    assert store.transactions == [["a"], list("bcdef")]


async def test_a_write_that_fails_fails_alone_with_its_own_error() -> None:
    store = Store()
    store.gate.set()
    group = GroupCommit(store.write_many, limit=500)

    outcomes = await asyncio.gather(
        *(submit(group, x) for x in ["a", "bad", "c"]), return_exceptions=True
    )

    assert (outcomes[0], outcomes[2]) == ("A", "C")
    assert isinstance(outcomes[1], OutboxError)
    assert str(outcomes[1]) == "cannot store 1 item(s): one is bad"
    assert sorted(map(tuple, store.transactions)) == [("a",), ("c",)]


class SmallGroups(MemoryStore):
    """A store that takes at most two writes a transaction, and counts them."""

    write_group = 2

    def __init__(self) -> None:
        super().__init__()
        self.transactions: list[int] = []

    async def enqueue_many(
        self, items: Sequence[Enqueue], *, now: float | None = None
    ) -> list[list[int]]:
        self.transactions.append(len(items))
        return await super().enqueue_many(items, now=now)


async def test_a_burst_is_committed_in_groups_no_larger_than_the_store_takes(
    smtp: LocalSMTPServer, local_email_channel: Callable[..., dict[str, Any]]
) -> None:
    """A writer process takes small groups, so that the worker's first claim is not queued
    behind a burst's enqueue of hundreds (OutboxStore.write_group)."""
    store = SmallGroups()
    config = Notifier.from_config(
        {"channels": {"mail": local_email_channel(smtp.port)}, "routing": {"channels": ["mail"]}}
    ).config
    notifier = Notifier(config, outbox=store)
    events = [Event("backup_success", {"job_name": f"job-{i}"}) for i in range(5)]

    results = await asyncio.gather(*(notifier.notify(e) for e in events))

    assert [r.delivery_ids for r in results] == [(1,), (2,), (3,), (4,), (5,)]
    assert store.transactions == [2, 2, 1]


async def test_concurrent_notify_calls_are_each_committed_and_delivered(
    tmp_path: Path, smtp: LocalSMTPServer, local_email_channel: Callable[..., dict[str, Any]]
) -> None:
    notifier = Notifier.from_config(
        {
            "channels": {"mail": local_email_channel(smtp.port)},
            "routing": {"channels": ["mail"]},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        }
    )
    assert notifier.outbox is not None
    events = [Event("backup_success", {"job_name": f"job-{i}"}) for i in range(40)]

    results = await asyncio.gather(*(notifier.notify(e) for e in events))

    assert {r.status for result in results for r in result.recipients} == {Status.QUEUED}
    assert len({i for result in results for i in result.delivery_ids}) == 40
    assert (await notifier.outbox.counts())["pending"] == 40
    notifier.start()
    for _ in range(200):
        if (await notifier.outbox.counts())["pending"] == 0:
            break
        await asyncio.sleep(0.05)
    await notifier.aclose()
    counts = await notifier.outbox.counts()
    assert counts["pending"] == counts["dead"] == 0
    subjects = sorted(m.message["Subject"] for m in smtp.messages)
    assert subjects == sorted(f"[DBackup] Backup Successful: job-{i}" for i in range(40))

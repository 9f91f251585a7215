"""The worker, in process: durable notify(), retries, parking, limits, several workers.

A channel plugin written for these tests (``rooms``) answers each room from a script
(``ok``, ``4xx``, ``5xx``, ``park``; the last entry repeats) and records every call, so
each test can say what was sent, when, and what was *not* sent. The email channel's own
end-to-end retry (same Message-ID) runs against a real local SMTP server.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify import Event, Notifier, Status, load_config
from dbnotify.config.structure import structure
from dbnotify.delivery import Deliverer
from dbnotify.errors import OutboxError, Unreachable
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.outbox.memory import MemoryStore
from dbnotify.outbox.model import Claimed
from dbnotify.outbox.sqlite import SQLiteStore
from dbnotify.outbox.worker import Worker
from dbnotify.plugins import PluginRegistry
from dbnotify.results import FailureKind, RecipientResult, TestReport, TestStage
from dbnotify.testing.smtpd import LocalSMTPServer

FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
LOGIN = Event("user_login", {"user_name": "alice"})


@attrs.frozen
class RoomsConfig:
    rooms: tuple[str, ...] = ("room-1",)
    token: str = "t-1"


@attrs.frozen
class Call:
    at: float
    notification_id: str
    rooms: tuple[str, ...]
    retry_only: tuple[str, ...] | None


@attrs.define
class Rooms:
    """A channel plugin: per room a script of outcomes, the last one repeating."""

    script: dict[str, list[str]] = attrs.field(factory=dict)
    delay: float = 0.0
    calls: list[Call] = attrs.field(factory=list)
    sent: dict[tuple[str, str], int] = attrs.field(factory=dict)

    @hookimpl
    def channel_info(self) -> ChannelInfo:
        return ChannelInfo("rooms for tests", RoomsConfig)

    @hookimpl
    def validate_config(self, options: Any) -> RoomsConfig:
        return structure(RoomsConfig, options)

    @hookimpl
    async def send(
        self, config: RoomsConfig, notification: Any, retry_only: tuple[str, ...] | None
    ) -> list[RecipientResult]:
        rooms = tuple(r for r in config.rooms if retry_only is None or r in retry_only)
        self.calls.append(Call(time.monotonic(), notification.id, rooms, retry_only))
        if self.delay:
            await asyncio.sleep(self.delay)
        results = []
        for room in rooms:
            count = self.sent.get((notification.id, room), 0)
            self.sent[(notification.id, room)] = count + 1
            plan = self.script.get(room, ["ok"])
            outcome = plan[min(count, len(plan) - 1)]
            results.append(_result(room, outcome))
        return results

    @hookimpl
    async def test(self, config: RoomsConfig) -> TestReport:
        return TestReport((TestStage("connect", True, f"rooms {', '.join(config.rooms)}"),))

    def calls_for(self, notification_id: str) -> list[Call]:
        return [c for c in self.calls if c.notification_id == notification_id]


def _result(room: str, outcome: str) -> RecipientResult:
    if outcome == "ok":
        return RecipientResult.delivered(room, reply="200 posted")
    if outcome == "4xx":
        return RecipientResult.failed(
            room, FailureKind.TRANSIENT, "the room is busy", reply="429 slow down"
        )
    if outcome == "5xx":
        return RecipientResult.failed(
            room, FailureKind.PERMANENT, "no such room", reply="404 no such room"
        )
    assert outcome == "park"
    return RecipientResult.failed(
        room, FailureKind.PERMANENT, "Invalid token", reply="401 bad token", parks_channel=True
    )


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until ``condition()`` (a bool, or an awaitable of one, to ask a store) holds."""
    end = time.monotonic() + within
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


@attrs.define
class Setup:
    path: Path
    plugin: Rooms
    registry: PluginRegistry
    store: SQLiteStore
    """The outbox, as another process (a CLI command) sees it."""

    def notifier(self, *, retry: dict[str, Any] | None = None, **rooms: Any) -> Notifier:
        retry = retry or {"default": {"first_delay": 0.1, "max_delay": 0.4, "attempts": 10}}
        config = load_config(
            {
                "channels": {"rooms": {"type": "rooms", **rooms}},
                "routing": {
                    "channels": ["rooms"],
                    "events": {"user_login": {"enabled": True}},
                },
                "dispatch": {"deadline": 2},
                "outbox": {"path": str(self.path), "busy_timeout": 2, "retry": retry},
            },
            self.registry,
        )
        return Notifier(config, plugins=self.registry)

    async def counts(self, **expected: int) -> bool:
        """Whether the outbox's counts are these (``pending=0``), as seen from outside."""
        counts = await self.store.counts()
        return all(counts[key] == value for key, value in expected.items())

    async def parked(self, channel: str) -> bool:
        return channel in await self.store.parked()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    plugin = Rooms()
    registry = PluginRegistry(entry_points=False, environ={})
    registry.register("rooms", plugin, distribution="acme-rooms", version="1.0")
    path = tmp_path / "outbox.sqlite"
    made = Setup(path, plugin, registry, SQLiteStore(path))
    yield made
    await made.store.aclose()


async def no_pending(notifier: Notifier) -> bool:
    assert notifier.outbox is not None
    return (await notifier.outbox.counts())["pending"] == 0


def statuses(rows: Any) -> dict[str, tuple[str, int]]:
    return {r.recipient: (r.status, r.attempts) for r in rows}


# --- durable notify -------------------------------------------------------------------------


async def test_notify_commits_returns_queued_and_the_worker_delivers(setup: Setup) -> None:
    notifier = setup.notifier(rooms=["room-1", "room-2"])
    result = await notifier.notify(FAILURE)
    assert result.ok
    (channel,) = result.channels
    assert channel.status is Status.QUEUED
    (ident,) = result.delivery_ids
    (queued,) = channel.recipients  # the channel's own recipients: known when sent
    assert queued.status is Status.QUEUED
    assert queued.reason is not None
    assert f"#{ident}" in queued.reason
    assert setup.plugin.calls == []  # nothing is sent by notify() itself
    assert [r.status for r in await notifier.history()] == ["pending"]

    task = notifier.start()
    try:
        await until(lambda: len(setup.plugin.calls) == 1)
        await until(lambda: setup.counts(pending=0))
        rows = await notifier.history(delivery_ids=[ident])
        assert statuses(rows) == {"room-1": ("delivered", 1), "room-2": ("delivered", 1)}
        assert (await notifier.last_deliveries())["rooms"].delivery_id == ident
        # a second notify wakes the worker at once (no poll interval to wait for)
        started = time.monotonic()
        await notifier.notify(FAILURE)
        await until(lambda: len(setup.plugin.calls) == 2)
        assert time.monotonic() - started < 0.5
    finally:
        await notifier.aclose()
    assert task.done()


async def test_notify_in_a_host_without_worker_only_queues(setup: Setup) -> None:
    notifier = setup.notifier()
    results = [await notifier.notify(FAILURE) for _ in range(3)]
    await asyncio.sleep(0.3)
    assert setup.plugin.calls == []
    assert (await setup.store.counts())["pending"] == 3
    # a worker elsewhere (here: another Notifier on the same file) delivers them
    other = setup.notifier()
    await Worker(other.outbox, other.deliverer).run(drain=True)
    assert sorted(c.notification_id for c in setup.plugin.calls) == sorted(
        r.notification_id for r in results
    )


async def test_any_store_will_do_a_notifier_on_memory_queues_and_its_worker_delivers(
    setup: Setup,
) -> None:
    """The Notifier and the worker speak only the store interface: no file at all."""
    config = attrs.evolve(setup.notifier().config, outbox=None)
    store = MemoryStore()
    notifier = Notifier(config, plugins=setup.registry, outbox=store)
    result = await notifier.notify(FAILURE)
    assert [r.status for r in result.recipients] == [Status.QUEUED]
    notifier.start()
    try:
        await until(lambda: len(setup.plugin.calls) == 1)
        await until(lambda: no_pending(notifier))
    finally:
        await notifier.aclose()
    (row,) = await notifier.history(delivery_ids=result.delivery_ids)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert not setup.path.exists()


def test_a_worker_keeps_as_many_attempts_in_flight_as_its_store_asks(setup: Setup) -> None:
    """64 on a file, 128 on PostgreSQL (whose records wait for the server): the store's
    worker_concurrency, unless the worker is told (dbnotify worker --concurrency)."""
    notifier = setup.notifier()
    assert notifier.outbox is not None
    assert Worker(notifier.outbox, notifier.deliverer).concurrency == 64
    assert Worker(MemoryStore(), notifier.deliverer).concurrency == 64
    assert Worker(notifier.outbox, notifier.deliverer, concurrency=5).concurrency == 5

    class Remote(MemoryStore):
        worker_concurrency = 128

    assert Worker(Remote(), notifier.deliverer).concurrency == 128


def test_a_worker_needs_at_least_one_attempt_in_flight(setup: Setup) -> None:
    notifier = setup.notifier()
    assert notifier.outbox is not None
    with pytest.raises(ValueError, match="'concurrency' must be >= 1: 0"):
        Worker(notifier.outbox, notifier.deliverer, concurrency=0)


async def test_notify_raises_when_the_outbox_is_locked(setup: Setup) -> None:
    notifier = setup.notifier()
    await notifier.notify(FAILURE)  # creates the file
    notifier = Notifier(
        attrs.evolve(
            notifier.config,
            outbox=attrs.evolve(notifier.config.outbox, busy_timeout=0.3),
        ),
        plugins=setup.registry,
    )
    holder = sqlite3.connect(setup.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OutboxError, match="is locked by another process"):
            await notifier.notify(FAILURE)
    finally:
        holder.close()
    assert (await setup.store.counts())["pending"] == 1  # the second one was never queued


# --- retries ----------------------------------------------------------------------------


async def test_transient_failures_follow_exponential_backoff_then_deliver(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["4xx", "4xx", "4xx", "4xx", "ok"]
    notifier = setup.notifier()
    result = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: setup.counts(delivered=1))
    finally:
        await notifier.aclose()
    calls = setup.plugin.calls_for(result.notification_id)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    print("backoff gaps (s):", [round(g, 3) for g in gaps])
    assert len(gaps) == 4
    # first_delay 0.1 doubling, capped at max_delay 0.4, each jittered to 50-100 %
    for gap, base in zip(gaps, [0.1, 0.2, 0.4, 0.4], strict=True):
        assert base / 2 - 0.01 <= gap <= base + 0.1, (gap, base)
    (row,) = await notifier.history(delivery_ids=result.delivery_ids)
    assert (row.status, row.attempts) == ("delivered", 5)
    failures = await notifier.failures_since(result_time(row.at - 5))
    assert [f.reply for f in failures] == ["429 slow down"] * 4


def result_time(ts: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC)


async def test_permanent_failure_is_dead_after_one_attempt(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["5xx"]
    notifier = setup.notifier()
    result = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: setup.counts(dead=1))
        await asyncio.sleep(1.0)  # several backoff periods: no retry comes
    finally:
        await notifier.aclose()
    assert len(setup.plugin.calls) == 1
    (row,) = await notifier.history(delivery_ids=result.delivery_ids)
    assert (row.status, row.kind, row.reason, row.reply, row.attempts) == (
        "dead",
        "permanent",
        "no such room",
        "404 no such room",
        1,
    )


async def test_per_recipient_only_the_transient_ones_are_retried(setup: Setup) -> None:
    setup.plugin.script.update({"b": ["4xx", "4xx", "ok"], "c": ["5xx"]})
    notifier = setup.notifier(rooms=["a", "b", "c"])
    result = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: setup.counts(pending=0))
    finally:
        await notifier.aclose()
    calls = setup.plugin.calls
    assert [(c.rooms, c.retry_only) for c in calls] == [
        (("a", "b", "c"), None),
        (("b",), ("b",)),
        (("b",), ("b",)),
    ]
    assert {c.notification_id for c in calls} == {result.notification_id}  # the same message
    rows = await notifier.history(delivery_ids=result.delivery_ids)
    assert statuses(rows) == {"a": ("delivered", 1), "b": ("delivered", 3), "c": ("dead", 1)}


async def test_attempts_are_bounded(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["4xx"]
    notifier = setup.notifier(
        retry={"default": {"first_delay": 0.05, "max_delay": 0.1, "attempts": 4}}
    )
    result = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: setup.counts(dead=1))
        await asyncio.sleep(0.5)
    finally:
        await notifier.aclose()
    assert len(setup.plugin.calls) == 4
    (row,) = await notifier.history(delivery_ids=result.delivery_ids)
    assert row.reason == "gave up after 4 attempts: the room is busy"


async def test_max_age_per_event_type(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["4xx"]  # the room stays busy
    notifier = setup.notifier(
        retry={
            "default": {"first_delay": 0.1, "max_delay": 0.2, "attempts": 1000},
            "user_login": {"max_age": "1s"},
        }
    )
    login = await notifier.notify(LOGIN)
    backup = await notifier.notify(FAILURE)
    started = time.monotonic()
    notifier.start()
    try:
        await until(lambda: setup.counts(dead=1), within=5)
        waited = time.monotonic() - started
        (dead,) = await notifier.history(delivery_ids=login.delivery_ids)

        async def tried_more() -> bool:  # than the login alert, which gave up
            (row,) = await setup.store.history(delivery_ids=backup.delivery_ids)
            return row.attempts > dead.attempts

        await until(tried_more)
        (alive,) = await notifier.history(delivery_ids=backup.delivery_ids)
    finally:
        await notifier.aclose()
    print(f"user_login (max_age 1s) gave up after {waited:.2f}s")
    assert 0.5 < waited < 2.0
    assert dead.status == "dead"
    assert dead.reason is not None
    assert "max_age" in dead.reason
    assert alive.status == "pending"  # a backup failure is still worth sending
    assert alive.attempts > dead.attempts
    assert len(setup.plugin.calls_for(login.notification_id)) == dead.attempts


# --- parking: the channel's own failure (bad credentials) --------------------------------------


async def test_bad_credentials_park_the_channel_until_the_configuration_changes(
    setup: Setup,
) -> None:
    setup.plugin.script["room-1"] = ["park"]
    notifier = setup.notifier(token="wrong")
    first = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: len(setup.plugin.calls) == 1)
        await until(lambda: setup.parked("rooms"))
        more = [await notifier.notify(FAILURE) for _ in range(3)]
        await asyncio.sleep(1.5)  # well past the backoff: nothing is attempted
        assert len(setup.plugin.calls) == 1
        rows = await notifier.history()
        assert {r.status for r in rows} == {"pending"}
    finally:
        await notifier.aclose()
    # the same configuration, restarted: still parked
    same = setup.notifier(token="wrong")
    same.start()
    await asyncio.sleep(0.5)
    await same.aclose()
    assert len(setup.plugin.calls) == 1
    # the token fixed: everything goes, the parked one to the same room with the same id
    setup.plugin.script["room-1"] = ["ok"]
    fixed = setup.notifier(token="right")
    fixed.start()
    try:
        await until(lambda: setup.counts(delivered=4))
    finally:
        await fixed.aclose()
    assert await setup.store.parked() == {}
    assert sorted(c.notification_id for c in setup.plugin.calls) == sorted(
        [first.notification_id, first.notification_id, *(m.notification_id for m in more)]
    )


async def test_operator_retry_unparks_the_channel(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["park", "ok"]
    notifier = setup.notifier()
    await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: setup.parked("rooms"))
        await asyncio.sleep(0.5)
        assert len(setup.plugin.calls) == 1
        assert await setup.store.retry(channel="rooms") == 1  # what `dbnotify retry --channel` does
        await until(lambda: setup.counts(delivered=1), within=3)
    finally:
        await notifier.aclose()
    assert len(setup.plugin.calls) == 2


async def test_a_channel_removed_from_the_configuration_ends_dead_with_the_reason(
    setup: Setup,
) -> None:
    notifier = setup.notifier()
    result = await notifier.notify(FAILURE)
    config = attrs.evolve(notifier.config, channels={})
    without = Notifier(config, plugins=setup.registry)
    await Worker(without.outbox, without.deliverer).run(drain=True)
    (row,) = await without.history(delivery_ids=result.delivery_ids)
    assert (row.status, row.reason) == ("dead", "channel 'rooms' is no longer configured")
    assert setup.plugin.calls == []


# --- workers: drain, only, several at once --------------------------------------------------


async def test_run_only_returns_after_one_attempt_of_those(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["4xx"]
    notifier = setup.notifier()
    mine = await notifier.notify(FAILURE)
    await notifier.notify(FAILURE)
    seen: list[tuple[int, str]] = []
    await asyncio.wait_for(
        Worker(notifier.outbox, notifier.deliverer).run(
            only=mine.delivery_ids, on_attempt=lambda c, s: seen.append((c.id, s))
        ),
        timeout=5,
    )
    assert seen == [(mine.delivery_ids[0], "pending")]
    assert [c.notification_id for c in setup.plugin.calls] == [mine.notification_id]


async def test_two_workers_on_one_file_send_nothing_twice(setup: Setup) -> None:
    setup.plugin.delay = 0.01
    notifier = setup.notifier()
    results = [await notifier.notify(FAILURE) for _ in range(120)]
    first, second = setup.notifier(), setup.notifier()  # two connections to the file
    workers = [Worker(first.outbox, first.deliverer), Worker(second.outbox, second.deliverer)]
    await asyncio.wait_for(asyncio.gather(*(w.run(drain=True) for w in workers)), timeout=30)
    sent = [c.notification_id for c in setup.plugin.calls]
    print(f"two workers: {workers[0].attempted} + {workers[1].attempted} attempts, 120 queued")
    assert sorted(sent) == sorted(r.notification_id for r in results)  # all, once each
    assert min(w.attempted for w in workers) > 0


async def test_drain_ends_while_a_channel_is_parked(setup: Setup) -> None:
    setup.plugin.script["room-1"] = ["park"]
    notifier = setup.notifier()
    await notifier.notify(FAILURE)
    await asyncio.wait_for(Worker(notifier.outbox, notifier.deliverer).run(drain=True), timeout=3)
    assert await setup.parked("rooms")
    await asyncio.sleep(0.3)  # its retry is due now, but the channel is parked
    # e.g. `dbnotify worker --drain` from cron, while the password is still wrong
    await asyncio.wait_for(Worker(notifier.outbox, notifier.deliverer).run(drain=True), timeout=2)
    assert len(setup.plugin.calls) == 1


async def test_an_idle_worker_sleeps_while_another_holds_the_due_delivery(
    setup: Setup,
) -> None:
    """A delivery leased by another worker (or a killed one, for dispatch.deadline + 30 s)
    is not due for this one: it looks once a second, it does not spin on claim()."""
    notifier = setup.notifier()
    await notifier.notify(FAILURE)
    assert len(await setup.store.claim("another-worker", limit=1, lease=60)) == 1
    counting = SQLiteStore(setup.path)
    claims = 0
    real_claim = counting.claim

    async def claim(*args: Any, **kwargs: Any) -> list[Claimed]:
        nonlocal claims
        claims += 1
        return await real_claim(*args, **kwargs)

    counting.claim = claim  # type: ignore[method-assign]
    task = asyncio.create_task(Worker(counting, notifier.deliverer).run())
    await asyncio.sleep(2.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    print(f"claims in 2 s while another worker holds the lease: {claims}")
    await counting.aclose()
    assert claims <= 4  # one look a second (POLL), not a busy loop
    assert setup.plugin.calls == []


# --- the email channel: the same message on every attempt -----------------------------------


async def test_email_retry_keeps_the_message_id_and_sends_to_the_4xx_one_only(
    tmp_path: Path, smtp: LocalSMTPServer, local_email_channel: Callable[..., dict[str, Any]]
) -> None:
    smtp.rcpt_replies["b@x.org"] = "451 4.2.0 mailbox busy, try later"
    notifier = Notifier.from_config(
        {
            "channels": {"mail": local_email_channel(smtp.port, to=["a@x.org", "b@x.org"])},
            "routing": {"channels": ["mail"]},
            "dispatch": {"deadline": 5},
            "outbox": {
                "path": str(tmp_path / "outbox.sqlite"),
                "retry": {"default": {"first_delay": 0.3, "max_delay": 0.3}},
            },
        }
    )
    result = await notifier.notify(FAILURE)
    notifier.start()
    try:
        await until(lambda: len(smtp.messages) == 1)
        del smtp.rcpt_replies["b@x.org"]  # the mailbox is free again
        await until(lambda: len(smtp.messages) == 2)
        await until(lambda: no_pending(notifier))
    finally:
        await notifier.aclose()
    first, second = smtp.messages
    assert (first.rcpt_tos, second.rcpt_tos) == (("a@x.org",), ("b@x.org",))
    assert first.message["Message-ID"] == second.message["Message-ID"]
    # the Date is each attempt's own (a late Date scores as spam); the body keeps the event's
    assert first.message["Date"].datetime <= second.message["Date"].datetime
    assert first.message["To"] == second.message["To"] == "a@x.org, b@x.org"
    rows = await notifier.history(delivery_ids=result.delivery_ids)
    assert statuses(rows) == {"a@x.org": ("delivered", 1), "b@x.org": ("delivered", 2)}


class UnrecordableStore(MemoryStore):
    """A store whose every record fails, as a full or damaged disk makes it fail (no
    local file can be made to fail on the record alone, and only then)."""

    async def record_many(self, attempts: Any, *, now: Any = None, delay: Any = None) -> Any:
        raise OutboxError("the outbox cannot record: disk full (simulated)")


async def test_an_attempt_that_cannot_be_recorded_stops_the_worker_instead_of_resending(
    setup: Setup,
) -> None:
    config = attrs.evolve(setup.notifier().config, outbox=None)
    store = UnrecordableStore()
    notifier = Notifier(config, plugins=setup.registry, outbox=store)
    result = await notifier.notify(FAILURE)
    (ident,) = result.delivery_ids
    with pytest.raises(OutboxError) as info:
        await asyncio.wait_for(Worker(store, notifier.deliverer).run(), timeout=10)
    assert str(info.value) == (
        f"delivery #{ident} was attempted but its outcome could not be recorded: the outbox "
        "cannot record: disk full (simulated); the worker stops rather than send it again "
        "and again (a worker started once the outbox is fixed tries it once more)"
    )
    assert len(setup.plugin.calls) == 1  # sent once, not once per lease


@attrs.frozen
class BrokenDeliverer(Deliverer):
    """A deliverer with a bug: it raises instead of returning the results."""

    async def deliver(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in delivery (simulated)")


async def test_an_attempt_that_raises_stops_the_worker_with_its_error_and_records_nothing(
    setup: Setup,
) -> None:
    notifier = setup.notifier()
    result = await notifier.notify(FAILURE)
    (ident,) = result.delivery_ids
    assert notifier.outbox is not None
    deliverer = notifier.deliverer
    broken = BrokenDeliverer(deliverer.config, deliverer.plugins, deliverer.renderer)
    with pytest.raises(RuntimeError, match=r"^a bug in delivery \(simulated\)$"):
        await asyncio.wait_for(Worker(notifier.outbox, broken).run(), timeout=10)
    (row,) = await setup.store.history(delivery_ids=[ident])
    assert (row.status, row.attempts) == ("pending", 0)  # left to its lease, not recorded
    await notifier.outbox.aclose()


class FlakyStore(MemoryStore):
    """A store whose first records fail as a database server's restart makes them fail."""

    failures: int = 2

    async def record_many(self, attempts: Any, *, now: Any = None, delay: Any = None) -> Any:
        if self.failures:
            self.failures -= 1
            raise Unreachable("cannot reach the outbox (simulated restart)")
        return await super().record_many(attempts, now=now, delay=delay)


async def test_a_record_the_outbox_could_not_take_is_tried_again_while_the_lease_lasts(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    config = attrs.evolve(setup.notifier().config, outbox=None)
    store = FlakyStore()
    notifier = Notifier(config, plugins=setup.registry, outbox=store)
    result = await notifier.notify(FAILURE)
    (ident,) = result.delivery_ids
    worker = Worker(store, notifier.deliverer)
    await asyncio.wait_for(worker.run(only=[ident]), timeout=10)
    assert store.failures == 0
    assert len(setup.plugin.calls) == 1  # recorded on the third try, sent once
    assert (await store.counts())["pending"] == 0
    retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == 2
    assert retries[0].startswith(
        f"delivery #{ident}: its outcome could not be recorded: cannot reach the outbox "
        "(simulated restart); trying again in 1s, for as long as its lease lasts ("
    )


async def test_a_record_that_fails_past_the_lease_stops_the_worker(setup: Setup) -> None:
    config = attrs.evolve(setup.notifier().config, outbox=None)
    store = FlakyStore()
    store.failures = 1000
    notifier = Notifier(config, plugins=setup.registry, outbox=store)
    result = await notifier.notify(FAILURE)
    (ident,) = result.delivery_ids

    class ShortLease(Worker):
        @property
        def lease(self) -> float:
            return 2.5

    with pytest.raises(OutboxError) as info:
        await asyncio.wait_for(ShortLease(store, notifier.deliverer).run(), timeout=10)
    assert str(info.value).startswith(
        f"delivery #{ident} was attempted but its outcome could not be recorded: cannot "
        "reach the outbox (simulated restart); the worker stops rather than send it again"
    )
    assert len(setup.plugin.calls) == 1
    assert 1000 - store.failures in (2, 3)  # tried while the lease lasted, then stopped


async def test_a_host_hears_of_a_worker_that_stopped_and_closes_quietly(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    config = attrs.evolve(setup.notifier().config, outbox=None)
    notifier = Notifier(config, plugins=setup.registry, outbox=UnrecordableStore())
    await notifier.notify(FAILURE)
    task = notifier.start()
    await asyncio.wait_for(asyncio.wait([task]), timeout=10)
    assert isinstance(task.exception(), OutboxError)
    assert "the outbox worker stopped: delivery #1 was attempted" in caplog.text
    await notifier.aclose()  # does not raise into the host

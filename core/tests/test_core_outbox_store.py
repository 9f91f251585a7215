"""The outbox store: durable enqueue, leases, outcomes, limits, parking, history.

Written against the :class:`OutboxStore` protocol: every test that takes the ``store``
fixture runs on each backend (SQLite in this process and in a writer process,
PostgreSQL, memory; a new backend adds itself to ``BACKENDS``). PostgreSQL is a real
server (the session's ``postgres`` fixture), each test in a schema of its own. What only
SQLite has (the file, WAL, fsync, locking, a full disk) is at the end, on
``SQLiteStore`` alone; the writer process's own lifecycle is in
``tests/outbox/test_outbox_writer.py``. Time is passed in (``now=``) wherever the store takes
it, so every schedule is exact.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify import Event
from dbnotify.config.model import OutboxSettings, Writer
from dbnotify.errors import OutboxError
from dbnotify.events import Notification, to_notification
from dbnotify.outbox.memory import MemoryStore
from dbnotify.outbox.model import (
    Attempt,
    Claimed,
    DeliveryState,
    Enqueue,
    Hold,
    Mute,
    MuteScope,
    Problem,
    RecipientState,
)
from dbnotify.outbox.policy import RetryPolicy, policy_for
from dbnotify.outbox.sqlite import SQLiteStore
from dbnotify.outbox.sqlite.writer import WriterStore
from dbnotify.outbox.store import OutboxStore, open_store
from dbnotify.results import (
    CHANNEL_LABEL,
    ChannelResult,
    Delivery,
    FailureKind,
    RecipientResult,
    Target,
)
from dbnotify.secrets import Secret

T0 = 1_750_000_000.0
POLICY = RetryPolicy(attempts=3, first_delay=10, max_delay=60, max_age=600)
FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
TRANSIENT, PERMANENT = FailureKind.TRANSIENT, FailureKind.PERMANENT
PENDING, DONE = DeliveryState.PENDING, DeliveryState.DONE


def postgres_store(request: pytest.FixtureRequest) -> OutboxStore:
    from dbnotify.outbox.postgres import PostgresStore

    server = request.getfixturevalue("postgres")
    return PostgresStore(postgres_settings(server))


def postgres_settings(server: Any, **changes: Any) -> OutboxSettings:
    """``[outbox]`` for ``server``, in a schema no other test uses."""
    settings = OutboxSettings(
        url=server.url, password=Secret(server.password), schema=f"t_{uuid.uuid4().hex[:12]}"
    )
    return attrs.evolve(settings, **changes)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], OutboxStore]] = {
    "sqlite": lambda _request, folder: SQLiteStore(folder / "outbox.sqlite"),
    "sqlite-process": lambda _request, folder: WriterStore(folder / "outbox.sqlite"),
    "postgres": lambda request, _folder: postgres_store(request),
    "memory": lambda _request, _folder: MemoryStore(),
}
"""Each backend, made fresh for a test."""


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OutboxStore]:
    made = BACKENDS[request.param](request, tmp_path)
    yield made
    await made.aclose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    made = SQLiteStore(tmp_path / "outbox.sqlite")
    yield made
    await made.aclose()


def ok(who: str) -> RecipientResult:
    return RecipientResult.delivered(who, reply="250 OK")


def later(who: str, reply: str = "451 4.3.0 try later") -> RecipientResult:
    return RecipientResult.failed(who, TRANSIENT, "the server refused this recipient", reply=reply)


def never(who: str, reply: str = "550 5.1.1 no such user") -> RecipientResult:
    return RecipientResult.failed(who, PERMANENT, "the server refused this recipient", reply=reply)


def bad_login(who: str) -> RecipientResult:
    return RecipientResult.failed(
        who, PERMANENT, "Invalid login credentials", reply="535 5.7.8 no", parks_channel=True
    )


async def enqueue(
    store: OutboxStore,
    notification: Notification,
    deliveries: Sequence[Delivery],
    *,
    policy: RetryPolicy = POLICY,
    outcomes: Sequence[ChannelResult] = (),
    now: float | None = T0,
) -> list[int]:
    (ids,) = await store.enqueue_many(
        [Enqueue(notification, None, deliveries, policy, outcomes)], now=now
    )
    return ids


async def put(
    store: OutboxStore,
    *,
    event: Event = FAILURE,
    channel: str = "mail",
    policy: RetryPolicy = POLICY,
    now: float = T0,
    recipients: tuple[str, ...] | None = None,
) -> int:
    target = Target.USER if recipients else Target.CHANNEL
    (ident,) = await enqueue(
        store,
        to_notification(event),
        [Delivery(channel, target, recipients)],
        policy=policy,
        now=now,
    )
    return ident


async def take(
    store: OutboxStore, now: float, *, owner: str = "w1", limit: int = 100
) -> list[Claimed]:
    return await store.claim(owner, limit=limit, lease=30, now=now)


async def record(
    store: OutboxStore,
    claimed: Claimed,
    results: Sequence[RecipientResult],
    *,
    now: float,
    fingerprint: str = "",
    delay: float | None = None,
) -> DeliveryState:
    (state,) = await store.record_many(
        [Attempt(claimed, results, fingerprint)], now=now, delay=delay
    )
    return state


def test_open_store_opens_the_sqlite_file_of_the_settings(tmp_path: Path) -> None:
    settings = OutboxSettings(path=str(tmp_path / "outbox.sqlite"), busy_timeout=0.5)
    store = open_store(settings)
    assert isinstance(store, SQLiteStore)
    assert store.path == settings.path
    assert store.database.busy_timeout == 0.5
    assert not Path(settings.path).exists()  # opened on first use, not before


@pytest.mark.parametrize(
    ("writer", "default_writer", "expected"),
    [
        (None, Writer.THREAD, SQLiteStore),  # a library's host
        (None, Writer.PROCESS, WriterStore),  # dbnotify serve, dbnotify worker
        (Writer.THREAD, Writer.PROCESS, SQLiteStore),  # the file's choice wins
        (Writer.PROCESS, Writer.THREAD, WriterStore),
    ],
)
def test_open_store_runs_the_writer_the_file_names_else_the_programs(
    tmp_path: Path, writer: Writer | None, default_writer: Writer, expected: type
) -> None:
    settings = OutboxSettings(path=str(tmp_path / "outbox.sqlite"), writer=writer)
    store = open_store(settings, default_writer=default_writer)
    assert type(store) is expected
    assert not (tmp_path / "outbox.sqlite").exists()  # no child started yet either


async def test_every_backend_implements_the_protocol(store: OutboxStore) -> None:
    assert isinstance(store, OutboxStore)


# --- enqueue ---------------------------------------------------------------------------------


async def test_enqueue_keeps_deliveries_and_decided_outcomes(store: OutboxStore) -> None:
    notification = to_notification(FAILURE)
    gone = ChannelResult("gone", None, Target.CHANNEL, (never(CHANNEL_LABEL),))
    ids = await enqueue(
        store,
        notification,
        [Delivery("mail", Target.CHANNEL), Delivery("chat", Target.CHANNEL)],
        outcomes=[gone],
    )
    assert len(ids) == 2
    assert await store.counts(now=T0) == {"pending": 2, "due": 2, "dead": 1, "delivered": 0}
    rows = await store.history(notification_id=notification.id)
    assert sorted((r.channel, r.status) for r in rows) == [
        ("chat", "pending"),
        ("gone", "dead"),
        ("mail", "pending"),
    ]
    assert all(r.next_at == T0 for r in rows if r.status is RecipientState.PENDING)


async def test_enqueue_many_commits_all_or_nothing(store: OutboxStore) -> None:
    first, second = to_notification(FAILURE), to_notification(FAILURE)
    delivery = [Delivery("mail", Target.CHANNEL)]
    assert len(await store.enqueue_many([Enqueue(first, None, delivery, POLICY)], now=T0)) == 1
    with pytest.raises(OutboxError):  # the first is queued already: neither goes in
        await store.enqueue_many(
            [Enqueue(second, None, delivery, POLICY), Enqueue(first, None, delivery, POLICY)],
            now=T0,
        )
    assert [r.notification_id for r in await store.history()] == [first.id]


async def test_a_user_copy_is_sent_with_the_user_content_to_the_user_alone(
    store: OutboxStore,
) -> None:
    notification = to_notification(FAILURE)
    for_user = attrs.evolve(notification, message="your backup failed")
    user_copy = Delivery("mail", Target.USER, ("alice@x.org",))
    await store.enqueue_many([Enqueue(notification, for_user, [user_copy], POLICY)], now=T0)
    (row,) = await store.history()
    assert (row.recipient, row.target, row.status) == ("alice@x.org", "user", "pending")
    (claimed,) = await take(store, T0)
    assert claimed.delivery == user_copy
    assert claimed.notification.message == "your backup failed"
    assert claimed.notification.id == notification.id


async def test_the_same_message_is_sent_on_every_attempt(store: OutboxStore) -> None:
    notification = to_notification(FAILURE)
    await enqueue(store, notification, [Delivery("mail", Target.CHANNEL)])
    (first,) = await take(store, T0)
    assert first.notification == notification  # id (Message-ID), timestamp, texts
    await record(store, first, [later("a@x.org")], now=T0, delay=5)
    (second,) = await take(store, T0 + 5)
    assert second.notification == notification
    assert (second.attempts, second.retry_only) == (1, ("a@x.org",))


# --- claims and leases ----------------------------------------------------------------------


async def test_claims_at_once_never_hand_out_a_delivery_twice(store: OutboxStore) -> None:
    ids = {await put(store, now=T0 - 1) for _ in range(60)}
    got: list[list[int]] = [[] for _ in range(4)]

    async def work(index: int) -> None:
        while batch := await store.claim(f"w{index}", limit=7, lease=60, now=T0):
            got[index] += [c.id for c in batch]
            await asyncio.sleep(0.001)  # sending

    await asyncio.gather(*(work(i) for i in range(4)))
    claimed = [i for part in got for i in part]
    assert sorted(claimed) == sorted(ids)  # each one, once


async def test_a_lease_holds_until_it_runs_out_then_the_delivery_goes_again(
    store: OutboxStore,
) -> None:
    ident = await put(store)
    (claimed,) = await store.claim("dead-worker", limit=10, lease=30, now=T0)
    assert claimed.id == ident
    assert await take(store, T0 + 29, owner="w2") == []  # held by the (maybe crashed) worker
    assert await store.next_due() == T0 + 30  # an idle worker looks again then
    (again,) = await take(store, T0 + 31, owner="w2")  # a lost worker costs a resend
    assert again.id == ident
    assert again.attempts == 0


async def test_claim_respects_the_limit_and_due_time(store: OutboxStore) -> None:
    for offset in range(5):
        await put(store, now=T0 + offset)
    assert len(await take(store, T0 + 2.5)) == 3  # due by then
    assert len(await take(store, T0 + 10, limit=1)) == 1
    assert len(await take(store, T0 + 10, limit=3)) == 1
    assert await take(store, T0 + 10) == []


async def test_claim_takes_the_soonest_due_first_and_only_those_asked(
    store: OutboxStore,
) -> None:
    late = await put(store, now=T0 + 2)
    early = await put(store, now=T0 + 1)
    other = await put(store, now=T0)
    (first,) = await store.claim("w1", limit=1, lease=30, only=[late, early], now=T0 + 5)
    assert first.id == early
    assert [c.id for c in await take(store, T0 + 5)] == [other, late]


# --- outcomes --------------------------------------------------------------------------------


async def test_delivered_is_final(store: OutboxStore) -> None:
    ident = await put(store)
    (claimed,) = await take(store, T0)
    assert await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0 + 1) == DONE
    assert await take(store, T0 + 10_000) == []
    (row,) = await store.history()
    assert (row.delivery_id, row.status, row.attempts, row.reply) == (
        ident,
        "delivered",
        1,
        "250 OK",
    )
    assert row.next_at is None
    assert (await store.last_delivery())["mail"].delivery_id == ident
    assert await store.next_due() is None


async def test_transient_waits_its_backoff_then_goes_again(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    assert await record(store, claimed, [later(CHANNEL_LABEL)], now=T0) == PENDING
    (row,) = await store.history()
    assert row.status is RecipientState.PENDING
    assert row.kind == "transient"
    assert row.next_at is not None
    assert T0 + 5 <= row.next_at <= T0 + 10  # first_delay 10, jittered to 50-100 %
    assert await take(store, row.next_at - 0.01) == []
    (again,) = await take(store, row.next_at)
    assert again.attempts == 1


async def test_retry_after_is_never_shortened(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    slow_down = RecipientResult.failed("room", TRANSIENT, "rate limited", retry_after=45)
    await record(store, claimed, [slow_down], now=T0, delay=5)
    (row,) = await store.history()
    assert row.next_at == T0 + 45


async def test_permanent_is_dead_at_once_and_never_tried_again(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    assert await record(store, claimed, [never(CHANNEL_LABEL)], now=T0) == DONE
    assert await take(store, T0 + 10 * 86400) == []
    (row,) = await store.history()
    assert (row.status, row.kind, row.reply, row.attempts) == (
        "dead",
        "permanent",
        "550 5.1.1 no such user",
        1,
    )


async def test_per_recipient_only_the_4xx_ones_are_retried(store: OutboxStore) -> None:
    ident = await put(store)
    (first,) = await take(store, T0)
    assert first.retry_only is None  # the first attempt goes to everyone
    state = await record(
        store, first, [ok("a@x.org"), later("b@x.org"), never("c@x.org")], now=T0, delay=10
    )
    assert state == PENDING
    (second,) = await take(store, T0 + 10)
    assert second.retry_only == ("b@x.org",)
    assert await record(store, second, [ok("b@x.org")], now=T0 + 11) == DONE
    rows = {r.recipient: r for r in await store.history(delivery_ids=[ident])}
    assert {k: (r.status, r.attempts) for k, r in rows.items()} == {
        "a@x.org": ("delivered", 1),
        "b@x.org": ("delivered", 2),
        "c@x.org": ("dead", 1),
    }
    # the attempt log keeps the transient failure too
    (failure, dead) = sorted(await store.failures_since(T0 - 1), key=lambda r: r.recipient)
    assert (failure.recipient, failure.kind, failure.reply, failure.status) == (
        "b@x.org",
        "transient",
        "451 4.3.0 try later",
        "failed",
    )
    assert (failure.attempts, failure.next_at) == (2, None)  # the recipient's, so far
    assert (dead.recipient, dead.kind) == ("c@x.org", "permanent")
    assert await store.failures_since(T0 + 1) == []


async def test_attempts_run_out_then_dead_with_the_last_reason(store: OutboxStore) -> None:
    await put(store)
    now = T0
    for _ in range(2):
        (claimed,) = await take(store, now)
        assert await record(store, claimed, [later(CHANNEL_LABEL)], now=now, delay=1) == PENDING
        now += 1
    (claimed,) = await take(store, now)
    assert await record(store, claimed, [later(CHANNEL_LABEL)], now=now, delay=1) == DONE
    (row,) = await store.history()
    assert row.status == "dead"
    assert row.attempts == 3
    assert row.reason == "gave up after 3 attempts: the server refused this recipient"
    assert await take(store, now + 100) == []
    # the attempt log says what each attempt met; the last one, why it gave up
    assert [f.reason for f in await store.failures_since(T0)] == [
        "gave up after 3 attempts: the server refused this recipient",
        "the server refused this recipient",
        "the server refused this recipient",
    ]


async def test_no_attempt_is_scheduled_past_max_age(store: OutboxStore) -> None:
    policy = RetryPolicy(attempts=100, first_delay=10, max_delay=60, max_age=100)
    await put(store, policy=policy)
    (claimed,) = await take(store, T0 + 95)
    assert await record(store, claimed, [later(CHANNEL_LABEL)], now=T0 + 95, delay=10) == DONE
    (row,) = await store.history()
    assert row.status == "dead"
    assert row.reason == (
        "gave up: the next attempt would be past this event's max_age: "
        "the server refused this recipient"
    )


async def test_max_age_never_kills_a_notification_before_its_first_attempt(
    store: OutboxStore,
) -> None:
    """Nothing ran for two hours (no worker, or a worker whose clock runs ahead): a login
    alert past its max_age still gets one attempt; max_age only stops its retries."""
    login = Event("user_login", {"user_name": "alice"})
    login_id = await put(store, event=login, policy=policy_for("user_login", {}))
    backup_id = await put(store, policy=policy_for("backup_failure", {}))
    claimed = {c.id: c for c in await take(store, T0 + 2 * 3600)}
    assert set(claimed) == {login_id, backup_id}
    now = T0 + 2 * 3600
    await record(store, claimed[login_id], [later(CHANNEL_LABEL)], now=now, delay=15)
    (row,) = await store.history(event_type="user_login")
    assert (row.delivery_id, row.status, row.kind, row.attempts) == (
        login_id,
        "dead",
        "transient",
        1,
    )
    assert row.reason == (
        "gave up: the next attempt would be past this event's max_age: "
        "the server refused this recipient"
    )
    assert (await store.counts())["dead"] == 1


async def test_a_clock_days_ahead_does_not_expire_fresh_work(store: OutboxStore) -> None:
    ids = [await put(store) for _ in range(20)]
    taken = await take(store, T0 + 3 * 86400, limit=50)
    assert sorted(c.id for c in taken) == sorted(ids)
    assert (await store.counts())["dead"] == 0


async def test_expiry_keeps_what_was_already_delivered(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [ok("a@x.org"), later("b@x.org")], now=T0, delay=10)
    await take(store, T0 + 700)  # past max_age 600, before the retry was taken
    statuses = {r.recipient: (r.status, r.reason) for r in await store.history()}
    assert statuses == {
        "a@x.org": ("delivered", None),
        "b@x.org": (
            "dead",
            "expired: older than this event's max_age before it could be delivered",
        ),
    }


async def test_a_leased_delivery_does_not_expire_under_its_worker(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0 + 590)  # leased until T0 + 620, max_age at T0 + 600
    assert await take(store, T0 + 610, owner="w2") == []
    assert (await store.history())[0].status == "pending"
    assert await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0 + 611) == DONE


async def test_a_skip_is_final_and_in_the_history(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    skipped = RecipientResult.skipped(CHANNEL_LABEL, "nothing to send")
    assert await record(store, claimed, [skipped], now=T0) == DONE
    assert (await store.history())[0].status == "skipped"


# --- parking: bad credentials hold the channel's queue ----------------------------------------


async def test_bad_credentials_park_the_channel_until_its_configuration_changes(
    store: OutboxStore,
) -> None:
    first = await put(store, channel="mail")
    (claimed,) = await take(store, T0)
    state = await record(store, claimed, [bad_login("ops@x.org")], fingerprint="cfg-1", now=T0)
    assert state == PENDING  # not dead: it goes once the password is fixed
    assert await store.parked() == {"mail": ("Invalid login credentials", T0)}
    second = await put(store, channel="mail", now=T0 + 1)
    other = await put(store, channel="chat", now=T0 + 1)
    # nothing of the parked channel is attempted, however long it waits (no hammering)
    (chat,) = await take(store, T0 + 500)
    assert chat.id == other
    await record(store, chat, [ok("room-1")], now=T0 + 500)
    assert await store.next_due() is None  # an idle worker sleeps: nothing of "mail" is due
    assert await store.counts(now=T0 + 501) == {
        "pending": 2,
        "due": 0,
        "dead": 0,
        "delivered": 1,
    }
    # the same configuration again: still parked
    assert await store.unpark_changed({"mail": "cfg-1"}) == []
    assert await take(store, T0 + 501) == []
    # a new password: the queue goes again, the old notification to its recipient only
    assert await store.unpark_changed({"mail": "cfg-2"}) == ["mail"]
    again = {c.id: c for c in await take(store, T0 + 502)}
    assert set(again) == {first, second}
    assert again[first].retry_only == ("ops@x.org",)
    assert again[second].retry_only is None


async def test_a_channel_no_longer_configured_is_unparked(store: OutboxStore) -> None:
    await put(store, channel="mail")
    (claimed,) = await take(store, T0)
    await record(store, claimed, [bad_login("ops@x.org")], fingerprint="cfg-1", now=T0)
    assert await store.unpark_changed({}) == ["mail"]
    assert await store.parked() == {}


async def test_an_operator_retry_of_the_channel_unparks_it(store: OutboxStore) -> None:
    ident = await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [bad_login(CHANNEL_LABEL)], fingerprint="cfg", now=T0)
    assert await take(store, T0 + 100) == []
    assert await store.retry(channel="mail", now=T0 + 100) == 1
    assert await store.parked() == {}
    assert [c.id for c in await take(store, T0 + 100)] == [ident]


async def test_an_operator_retry_of_one_delivery_unparks_its_channel(store: OutboxStore) -> None:
    ident = await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [bad_login(CHANNEL_LABEL)], fingerprint="cfg", now=T0)
    assert await store.retry(delivery_id=ident, now=T0 + 100) == 1
    assert await store.parked() == {}


# --- operations -------------------------------------------------------------------------------


async def test_retry_dead_puts_dead_recipients_back(store: OutboxStore) -> None:
    ident = await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [never(CHANNEL_LABEL)], now=T0)
    assert await take(store, T0 + 10) == []
    assert await store.retry(dead=True, now=T0 + 20) == 1
    assert await store.retry(dead=True, now=T0 + 20) == 0  # nothing dead any more
    (again,) = await take(store, T0 + 20)
    assert again.id == ident
    assert again.attempts == 0  # a full set of attempts again
    assert await record(store, again, [ok(CHANNEL_LABEL)], now=T0 + 21) == DONE
    (row,) = await store.history()
    assert (row.status, row.attempts) == ("delivered", 2)


async def test_retry_dead_resends_only_to_the_dead_recipient(store: OutboxStore) -> None:
    await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [ok("a@x.org"), ok("b@x.org"), never("c@x.org")], now=T0)
    assert await store.retry(dead=True, now=T0 + 20) == 1
    (again,) = await take(store, T0 + 20)
    assert again.retry_only == ("c@x.org",)  # a and b have it already
    # the max_age clock starts again: an operator's retry is not expired at once
    assert again.expires_at == T0 + 20 + POLICY.max_age


async def test_retry_of_a_channel_puts_back_only_what_waits_or_died(store: OutboxStore) -> None:
    await put(store)
    (done,) = await take(store, T0)
    await record(store, done, [ok("ops@x.org")], now=T0)
    waiting = await put(store, now=T0 + 1)
    (claimed,) = await take(store, T0 + 1)
    await record(store, claimed, [bad_login("ops@x.org")], fingerprint="f", now=T0 + 1)
    assert await store.retry(channel="mail", now=T0 + 2) == 1
    assert [c.id for c in await take(store, T0 + 2)] == [waiting]


async def test_retry_of_a_delivered_one_puts_nothing_back(store: OutboxStore) -> None:
    ident = await put(store)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [ok("a@x.org"), ok("b@x.org")], now=T0)
    assert await store.retry(delivery_id=ident, now=T0 + 5) == 0
    assert await take(store, T0 + 5) == []


async def test_purge_forgets_finished_notifications_only(store: OutboxStore) -> None:
    done = await put(store, now=T0)
    (claimed,) = await take(store, T0)
    await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0)
    waiting = await put(store, now=T0 + 1, policy=RetryPolicy(3, 10, 60, 10**9))
    (claimed,) = await take(store, T0 + 2)
    await record(store, claimed, [later(CHANNEL_LABEL)], now=T0 + 2, delay=10**8)
    assert await store.purge(older_than=100, now=T0 + 50) == 0
    assert await store.purge(older_than=100, now=T0 + 5000) == 1
    assert [r.delivery_id for r in await store.history()] == [waiting]
    assert done not in [r.delivery_id for r in await store.history()]
    assert await store.failures_since(0) != []  # the waiting one's attempt stays
    assert await store.counts(now=T0 + 5000) == {
        "pending": 1,
        "due": 0,
        "dead": 0,
        "delivered": 0,
    }


async def test_history_filters_and_json_view(store: OutboxStore) -> None:
    login = Event("user_login", {"user_name": "alice"})
    a = await put(store, channel="mail", now=T0)
    b = await put(store, channel="chat", event=login, now=T0 + 10)
    for claimed in await take(store, T0 + 20):
        result = ok("ops@x.org") if claimed.id == a else never("room-1")
        await record(store, claimed, [result], now=T0 + 20 + claimed.id)
    assert [r.delivery_id for r in await store.history(channel="chat")] == [b]
    assert [r.delivery_id for r in await store.history(event_type="backup_failure")] == [a]
    assert [r.delivery_id for r in await store.history(recipient="room-1")] == [b]
    delivered = await store.history(status=RecipientState.DELIVERED)
    assert [r.delivery_id for r in delivered] == [a]
    assert [r.delivery_id for r in await store.history(since=T0 + 20 + b)] == [b]
    assert [r.delivery_id for r in await store.history(until=T0 + 20 + b)] == [a]
    assert [r.delivery_id for r in await store.history()] == [b, a]  # newest first
    assert [r.delivery_id for r in await store.history(limit=1)] == [b]
    data = (await store.history(channel="mail"))[0].as_dict()
    assert data["at"] == f"2025-06-15T15:07:0{a}+00:00"  # T0 + 20 + a
    assert data["status"] == "delivered"
    assert data["target"] == "channel"
    assert data["next_at"] is None


async def test_an_attempt_recorded_after_its_notification_was_purged_changes_nothing(
    store: OutboxStore,
) -> None:
    """The lease of a slow worker ran out, another worker delivered, and ``purge``
    forgot the notification: the slow worker's record does not bring it back."""
    await put(store, now=T0)
    (slow,) = await take(store, T0, owner="slow")
    (fast,) = await take(store, T0 + 31, owner="fast")
    await record(store, fast, [ok(CHANNEL_LABEL)], now=T0 + 32)
    assert await store.purge(older_than=0, now=T0 + 33) == 1
    assert await record(store, slow, [ok(CHANNEL_LABEL)], now=T0 + 34) == DONE
    assert await store.history() == []


async def test_a_worker_past_its_lease_cannot_record_over_the_one_that_took_over(
    store: OutboxStore,
) -> None:
    """The fence: a worker paused past its lease (SIGSTOP, a cut link) comes back and
    records; the delivery was claimed again meanwhile, so its record is refused and the
    history shows the delivery once, as the worker that took over left it."""
    await put(store, now=T0)
    (paused,) = await take(store, T0, owner="paused")
    (took_over,) = await take(store, T0 + 31, owner="took-over")
    assert took_over.fence == paused.fence + 1
    assert await record(store, took_over, [ok(CHANNEL_LABEL)], now=T0 + 32) == DONE
    late = await record(store, paused, [never(CHANNEL_LABEL)], now=T0 + 40)
    assert late == DeliveryState.TAKEN_OVER
    (row,) = await store.history()
    assert (row.status, row.attempts, row.reply) == ("delivered", 1, "250 OK")
    assert await store.failures_since(T0) == []


async def test_a_late_record_no_one_took_over_still_counts(store: OutboxStore) -> None:
    """Past its lease but not claimed by another: the outcome is the truth, recorded."""
    await put(store, now=T0)
    (slow,) = await take(store, T0, owner="slow")
    assert await record(store, slow, [ok(CHANNEL_LABEL)], now=T0 + 45) == DONE
    assert [r.status for r in await store.history()] == ["delivered"]


async def test_a_mute_is_in_force_for_its_duration_then_ends_by_itself(
    store: OutboxStore,
) -> None:
    made = await store.mute(MuteScope.CHANNEL, "mail", duration=3600, reason="maintenance", now=T0)
    assert (made.scope, made.value, made.reason, made.since, made.until) == (
        MuteScope.CHANNEL,
        "mail",
        "maintenance",
        T0,
        T0 + 3600,
    )
    other = await store.mute(MuteScope.JOB, "nightly-pg", duration=60, now=T0 + 1)
    assert other.id != made.id
    assert await store.mutes(now=T0 + 59) == [made, other]
    assert await store.mutes(now=T0 + 61) == [made]  # the job's ran out
    assert await store.mutes(now=T0 + 3600) == []
    assert made.skip_reason == (
        f"muted by mute #{made.id} (channel mail) until 2025-06-15T16:06:40+00:00: maintenance"
    )


async def test_unmute_ends_a_mute_now_and_only_one_in_force(store: OutboxStore) -> None:
    made = await store.mute(MuteScope.EVENT, "backup_success", duration=3600, now=T0)
    ended = await store.unmute(made.id, now=T0 + 10)
    assert ended is not None
    assert ended.until == T0 + 10
    assert await store.mutes(now=T0 + 11) == []
    assert await store.unmute(made.id, now=T0 + 20) is None  # ended already
    assert await store.unmute(made.id + 100, now=T0 + 20) is None  # never was


def test_a_mute_matches_its_channel_event_or_job() -> None:
    notification = to_notification(FAILURE)
    assert Mute(1, MuteScope.CHANNEL, "mail", "", T0, T0 + 1).matches("mail", notification)
    assert not Mute(1, MuteScope.CHANNEL, "mail", "", T0, T0 + 1).matches("chat", notification)
    assert Mute(1, MuteScope.EVENT, "backup_failure", "", T0, T0 + 1).matches("x", notification)
    assert Mute(1, MuteScope.JOB, "nightly-pg", "", T0, T0 + 1).matches("x", notification)
    assert not Mute(1, MuteScope.JOB, "weekly", "", T0, T0 + 1).matches("x", notification)


async def hold(
    store: OutboxStore, group: str, now: float, *, wait: float = 30, interval: float = 300
) -> int:
    """One notification whose one delivery is held for ``group``."""
    ((ident,),) = await store.enqueue_many(
        [
            Enqueue(
                to_notification(FAILURE),
                None,
                [Delivery("mail", Target.CHANNEL)],
                POLICY,
                holds=[Hold(group, wait, interval)],
            )
        ],
        now=now,
    )
    return ident


async def test_a_group_is_held_for_its_wait_then_claimed_whole(store: OutboxStore) -> None:
    first = await hold(store, "g1", T0)
    second = await hold(store, "g1", T0 + 10)
    other = await hold(store, "g2", T0 + 20)
    assert await take(store, T0 + 29) == []  # gathering
    got = await take(store, T0 + 30, limit=1)  # one due brings its group, not another's
    assert sorted(c.id for c in got) == [first, second]
    assert {c.group for c in got} == {"g1"}
    (alone,) = await take(store, T0 + 50)
    assert (alone.id, alone.group) == (other, "g2")


async def test_a_group_claimed_brings_members_not_yet_due(store: OutboxStore) -> None:
    first = await hold(store, "g1", T0)
    (claimed,) = await take(store, T0 + 30)
    late = await hold(store, "g1", T0 + 31)  # the open group went: a new one gathers
    assert await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0 + 32) == DONE
    assert claimed.id == first
    assert await take(store, T0 + 60) == []  # not before interval after the last message
    (after,) = await take(store, T0 + 32 + 300)
    assert after.id == late


async def test_a_failed_group_goes_again_whole(store: OutboxStore) -> None:
    ids = {await hold(store, "g1", T0 + i) for i in range(3)}
    got = await take(store, T0 + 30)
    states = await store.record_many(
        [Attempt(c, [later(CHANNEL_LABEL)]) for c in got], now=T0 + 31, delay=10
    )
    assert states == [PENDING] * 3
    again = await take(store, T0 + 41)
    assert {c.id for c in again} == ids


async def fail_again(store: OutboxStore, now: float, repeat: float = 3600) -> int:
    problem = Problem(
        "mail|job=nightly-pg|type=backup_failure", "nightly-pg", "backup_failure", repeat
    )
    ((ident,),) = await store.enqueue_many(
        [
            Enqueue(
                to_notification(FAILURE),
                None,
                [Delivery("mail", Target.CHANNEL)],
                POLICY,
                holds=[Hold("g1", 30, 300, problem)],
            )
        ],
        now=now,
    )
    return ident


async def test_a_failure_told_within_repeat_is_counted_not_sent(store: OutboxStore) -> None:
    first = await fail_again(store, T0)
    joined = await fail_again(store, T0 + 5)  # the message has not gone: it joins it
    got = await take(store, T0 + 30)
    assert sorted(c.id for c in got) == [first, joined]
    for claimed in got:
        await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0 + 31)
    counted = await fail_again(store, T0 + 100)
    (row,) = await store.history(delivery_ids=[counted])
    assert row.status == "skipped"
    assert row.reason == (
        "counted, not sent: job 'nightly-pg' failed again within repeat (1h) of the message "
        "at 2025-06-15T15:07:11+00:00; 3 failures since 2025-06-15T15:06:40+00:00"
    )
    assert await take(store, T0 + 1000) == []
    sent_again = await fail_again(store, T0 + 31 + 3600)  # repeat ran out: told again
    assert [r.status for r in await store.history(delivery_ids=[sent_again])] == ["pending"]


async def test_a_success_resolves_the_jobs_open_problems(store: OutboxStore) -> None:
    await fail_again(store, T0)
    await fail_again(store, T0 + 1)
    (problem,) = await store.resolve("nightly-pg")
    assert (problem.job, problem.event_type, problem.count, problem.since) == (
        "nightly-pg",
        "backup_failure",
        2,
        T0,
    )
    assert problem.delivery == Delivery("mail", Target.CHANNEL)
    assert await store.resolve("nightly-pg") == []  # closed
    assert await store.resolve("weekly") == []


async def test_a_rate_limit_holds_only_what_comes_beyond_it(store: OutboxStore) -> None:
    async def one(now: float) -> int:
        ((ident,),) = await store.enqueue_many(
            [
                Enqueue(
                    to_notification(FAILURE),
                    None,
                    [Delivery("mail", Target.CHANNEL)],
                    POLICY,
                    holds=[Hold("rate|mail", 60, 0, under=2)],
                )
            ],
            now=now,
        )
        return ident

    first, second, third, fourth = [await one(T0 + i) for i in range(4)]
    got = await take(store, T0 + 5)
    assert [(c.id, c.group) for c in got] == [(first, None), (second, None)]
    for claimed in got:
        await record(store, claimed, [ok(CHANNEL_LABEL)], now=T0 + 6)
    assert await take(store, T0 + 59) == []
    held = await take(store, T0 + 62)
    assert sorted((c.id, c.group) for c in held) == [(third, "rate|mail"), (fourth, "rate|mail")]


# --- SQLite only: the file, shared and durable ------------------------------------------------


async def test_enqueue_commits_for_every_other_connection(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    notification = to_notification(FAILURE)
    await enqueue(sqlite_store, notification, [Delivery("mail", Target.CHANNEL)])
    other = SQLiteStore(tmp_path / "outbox.sqlite")
    try:
        assert [r.notification_id for r in await other.history()] == [notification.id]
    finally:
        await other.aclose()
    db = sqlite_store.database.connect()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: survives power loss


def test_a_notification_survives_the_process_killed_right_after_enqueue(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from dbnotify import Event
        from dbnotify.events import to_notification
        from dbnotify.outbox.policy import policy_for
        from dbnotify.outbox.model import Enqueue
        from dbnotify.outbox.sqlite import SQLiteStore
        from dbnotify.results import Delivery, Target
        box = SQLiteStore({str(path)!r})
        n = to_notification(Event("backup_failure", {{"job_name": "j", "error": "e"}}))
        item = Enqueue(n, None, [Delivery("mail", Target.CHANNEL)], policy_for("x", {{}}))
        asyncio.run(box.enqueue_many([item]))
        print(n.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == -9, run.stderr

    async def read() -> None:
        box = SQLiteStore(path)
        try:
            (row,) = await box.history()
            assert (row.notification_id, row.status) == (run.stdout.strip(), "pending")
        finally:
            await box.aclose()

    asyncio.run(read())


async def test_claims_from_several_connections_never_hand_out_a_delivery_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    writer = SQLiteStore(path)
    ids = {await put(writer, now=time.time() - 1) for _ in range(200)}
    await writer.aclose()
    got: list[list[int]] = [[] for _ in range(4)]

    async def work(index: int) -> None:
        box = SQLiteStore(path)  # a connection of its own, as another process has
        try:
            await box.counts()
            while batch := await box.claim(f"w{index}", limit=7, lease=60):
                got[index] += [c.id for c in batch]
                await asyncio.sleep(0.002)  # sending
        finally:
            await box.aclose()

    await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(4))), 30)
    claimed = [i for part in got for i in part]
    assert sorted(claimed) == sorted(ids)  # each one, once
    assert sum(1 for part in got if part) >= 2  # and the workers really did share them


async def test_locked_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    await SQLiteStore(path).counts()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    box = SQLiteStore(path, busy_timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(OutboxError) as info:
            await put(box)
        waited = time.monotonic() - started
        assert str(info.value) == (
            f"the outbox {path} is locked by another process (waited for it); check for a "
            "process holding it open in a long transaction"
        )
        assert 0.25 < waited < 3
        holder.execute("ROLLBACK")
        await put(box)  # the lock gone, the same store works again
        assert (await box.counts())["pending"] == 1
    finally:
        holder.close()
        await box.aclose()


async def test_full_outbox_connection_limit(sqlite_store: SQLiteStore) -> None:
    """SQLITE_FULL through SQLite's own page limit on the outbox's connection, raised by
    the INSERT itself, after which SQLite has rolled the transaction back on its own (the
    full disk on a tiny tmpfs, raised at COMMIT, is in tests/outbox)."""
    box = sqlite_store
    db = box.database.connect()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    big = Event("backup_failure", {"job_name": "j", "error": "x" * 20_000})
    with pytest.raises(OutboxError) as info:
        await put(box, event=big)
    assert str(info.value) == (
        f"the outbox {box.path} cannot grow: the disk (or its quota) is full; free space"
    )
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert (await box.counts())["pending"] == 0  # nothing half-written
    await put(box, event=big)  # a fresh connection, no limit: it goes
    assert (await box.counts())["pending"] == 1


async def test_a_damaged_file_and_a_missing_folder_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is no database, just some text that fills a page " * 100)
    with pytest.raises(OutboxError) as info:
        await put(SQLiteStore(junk))
    assert str(info.value) == f"the outbox {junk} is damaged or not an outbox; move it aside"

    missing = tmp_path / "nowhere" / "outbox.sqlite"
    with pytest.raises(OutboxError) as info:
        await put(SQLiteStore(missing))
    assert str(info.value) == (
        f"cannot open the outbox {missing}; check that its folder exists and is writable"
    )


async def test_a_store_closed_opens_again_on_next_use(sqlite_store: SQLiteStore) -> None:
    """What ``notify_sync`` needs: each call on a loop of its own, closing after."""
    await put(sqlite_store)
    await sqlite_store.aclose()
    assert (await sqlite_store.counts())["pending"] == 1


async def test_a_deadline_then_a_success_leaves_nothing_pending(store: OutboxStore) -> None:
    """The first attempt ran out of time before any recipient was known (``(channel)``);
    the second delivered to each: nothing may stay listed as pending."""
    await put(store)
    (first,) = await take(store, T0)
    await record(store, first, [later(CHANNEL_LABEL, reply="")], now=T0, delay=10)
    (second,) = await take(store, T0 + 10)
    assert second.retry_only is None  # everyone: nobody was known yet
    state = await record(store, second, [ok("a@x.org"), ok("b@x.org")], now=T0 + 10)
    assert state == DONE
    assert await store.history(status=RecipientState.PENDING) == []
    rows = {r.recipient: (r.status, r.attempts) for r in await store.history()}
    assert rows == {"a@x.org": ("delivered", 1), "b@x.org": ("delivered", 1)}
    assert [r.recipient for r in await store.failures_since(0)] == [CHANNEL_LABEL]  # kept

"""The SQLite outbox itself: durable enqueue, leases, outcomes, limits, parking, history.

Time is passed in (``now=``) wherever the store takes it, so every schedule is exact.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dbnotify import Event
from dbnotify.errors import OutboxError
from dbnotify.events import to_notification
from dbnotify.outbox import Outbox, RetryPolicy, policy_for
from dbnotify.outbox.store import Claimed
from dbnotify.results import Delivery, FailureKind, RecipientResult, Target

T0 = 1_750_000_000.0
POLICY = RetryPolicy(attempts=3, first_delay=10, max_delay=60, max_age=600)
FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
TRANSIENT, PERMANENT = FailureKind.TRANSIENT, FailureKind.PERMANENT


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


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite")
    yield box
    box.close()


def put(
    box: Outbox,
    *,
    event: Event = FAILURE,
    channel: str = "mail",
    policy: RetryPolicy = POLICY,
    now: float = T0,
    recipients: tuple[str, ...] | None = None,
) -> int:
    target = Target.USER if recipients else Target.CHANNEL
    (ident,) = box.enqueue(
        to_notification(event), None, [Delivery(channel, target, recipients)], policy, now=now
    )
    return ident


def take(box: Outbox, now: float, *, owner: str = "w1", limit: int = 100) -> list[Claimed]:
    return box.claim(owner, limit=limit, lease=30, now=now)


# --- enqueue: committed, durable, shared ---------------------------------------------------


def test_enqueue_commits_for_every_other_connection(outbox: Outbox, tmp_path: Path) -> None:
    notification = to_notification(FAILURE)
    ids = outbox.enqueue(
        notification,
        None,
        [Delivery("mail", Target.CHANNEL), Delivery("chat", Target.CHANNEL)],
        POLICY,
        outcomes=[("gone", Target.CHANNEL, [never("(channel)")])],
        now=T0,
    )
    assert len(ids) == 2
    other = Outbox(tmp_path / "outbox.sqlite")
    try:
        assert other.counts() == {"pending": 2, "due": 2, "dead": 1, "delivered": 0}
        rows = other.history(notification_id=notification.id)
        assert sorted((r.channel, r.status) for r in rows) == [
            ("chat", "pending"),
            ("gone", "dead"),
            ("mail", "pending"),
        ]
    finally:
        other.close()
    db = outbox._connect()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: survives power loss


def test_a_notification_survives_the_process_killed_right_after_enqueue(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from dbnotify import Event
        from dbnotify.events import to_notification
        from dbnotify.outbox import Outbox, policy_for
        from dbnotify.results import Delivery, Target
        box = Outbox({str(path)!r})
        n = to_notification(Event("backup_failure", {{"job_name": "j", "error": "e"}}))
        box.enqueue(n, None, [Delivery("mail", Target.CHANNEL)], policy_for("x", {{}}))
        print(n.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == -9, run.stderr
    box = Outbox(path)
    try:
        (row,) = box.history()
        assert (row.notification_id, row.status) == (run.stdout.strip(), "pending")
    finally:
        box.close()


def test_the_same_message_is_sent_on_every_attempt(outbox: Outbox) -> None:
    notification = to_notification(FAILURE)
    outbox.enqueue(notification, None, [Delivery("mail", Target.CHANNEL)], POLICY, now=T0)
    (first,) = take(outbox, T0)
    assert first.notification == notification  # id (Message-ID), timestamp, texts
    outbox.record(first, "w1", [later("a@x.org")], now=T0, rng_delay=5)
    (second,) = take(outbox, T0 + 5)
    assert second.notification == notification
    assert (second.attempts, second.retry_only) == (1, ("a@x.org",))


# --- claims and leases ----------------------------------------------------------------------


def test_claims_never_hand_out_a_delivery_twice(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    writer = Outbox(path)
    ids = {put(writer, now=time.time() - 1) for _ in range(200)}
    writer.close()
    got: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def work(index: int) -> None:
        box = Outbox(path)  # a connection of its own, as another process has
        try:
            box.counts()
            start.wait()
            while batch := box.claim(f"w{index}", limit=7, lease=60):
                got[index] += [c.id for c in batch]
                time.sleep(0.002)  # sending
        finally:
            box.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    claimed = [i for part in got for i in part]
    assert sorted(claimed) == sorted(ids)  # each one, once
    assert sum(1 for part in got if part) >= 2  # and the workers really did share them


def test_a_lease_holds_until_it_runs_out_then_the_delivery_goes_again(outbox: Outbox) -> None:
    ident = put(outbox)
    (claimed,) = outbox.claim("dead-worker", limit=10, lease=30, now=T0)
    assert claimed.id == ident
    assert take(outbox, T0 + 29, owner="w2") == []  # held by the (maybe crashed) worker
    (again,) = take(outbox, T0 + 31, owner="w2")  # a lost worker costs a resend, not a loss
    assert again.id == ident
    assert again.attempts == 0


def test_release_gives_the_lease_back_at_once(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.release(claimed.id)
    assert [c.id for c in take(outbox, T0 + 1, owner="w2")] == [claimed.id]


def test_claim_respects_the_limit_and_due_time(outbox: Outbox) -> None:
    for offset in range(5):
        put(outbox, now=T0 + offset)
    assert len(take(outbox, T0 + 10, limit=3)) == 3
    assert len(take(outbox, T0 + 10, limit=3)) == 2
    assert take(outbox, T0 + 10) == []


# --- outcomes --------------------------------------------------------------------------------


def test_delivered_is_final(outbox: Outbox) -> None:
    ident = put(outbox)
    (claimed,) = take(outbox, T0)
    assert outbox.record(claimed, "w1", [ok("(channel)")], now=T0 + 1) == "done"
    assert take(outbox, T0 + 10_000) == []
    (row,) = outbox.history()
    assert (row.delivery_id, row.status, row.attempts, row.reply) == (
        ident,
        "delivered",
        1,
        "250 OK",
    )
    assert row.next_at is None
    assert outbox.last_delivery()["mail"].delivery_id == ident


def test_transient_waits_its_backoff_then_goes_again(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    assert outbox.record(claimed, "w1", [later("(channel)")], now=T0) == "pending"
    (row,) = outbox.history()
    assert row.status == "pending"
    assert row.kind == "transient"
    assert row.next_at is not None
    assert T0 + 5 <= row.next_at <= T0 + 10  # first_delay 10, jittered to 50-100 %
    assert take(outbox, row.next_at - 0.01) == []
    (again,) = take(outbox, row.next_at)
    assert again.attempts == 1


def test_permanent_is_dead_at_once_and_never_tried_again(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    assert outbox.record(claimed, "w1", [never("(channel)")], now=T0) == "done"
    assert take(outbox, T0 + 10 * 86400) == []
    (row,) = outbox.history()
    assert (row.status, row.kind, row.reply, row.attempts) == (
        "dead",
        "permanent",
        "550 5.1.1 no such user",
        1,
    )


def test_per_recipient_only_the_4xx_ones_are_retried(outbox: Outbox) -> None:
    ident = put(outbox)
    (first,) = take(outbox, T0)
    assert first.retry_only is None  # the first attempt goes to everyone
    state = outbox.record(
        first, "w1", [ok("a@x.org"), later("b@x.org"), never("c@x.org")], now=T0, rng_delay=10
    )
    assert state == "pending"
    (second,) = take(outbox, T0 + 10)
    assert second.retry_only == ("b@x.org",)
    assert outbox.record(second, "w1", [ok("b@x.org")], now=T0 + 11) == "done"
    rows = {r.recipient: r for r in outbox.history(delivery_ids=[ident])}
    assert {k: (r.status, r.attempts) for k, r in rows.items()} == {
        "a@x.org": ("delivered", 1),
        "b@x.org": ("delivered", 2),
        "c@x.org": ("dead", 1),
    }
    # the attempt log keeps the transient failure too
    (failure, dead) = sorted(outbox.failures_since(T0 - 1), key=lambda r: r.recipient)
    assert (failure.recipient, failure.kind, failure.reply) == (
        "b@x.org",
        "transient",
        "451 4.3.0 try later",
    )
    assert (dead.recipient, dead.kind) == ("c@x.org", "permanent")


def test_attempts_run_out_then_dead_with_the_last_reason(outbox: Outbox) -> None:
    put(outbox)
    now = T0
    for _ in range(2):
        (claimed,) = take(outbox, now)
        assert outbox.record(claimed, "w1", [later("(channel)")], now=now, rng_delay=1) == (
            "pending"
        )
        now += 1
    (claimed,) = take(outbox, now)
    assert outbox.record(claimed, "w1", [later("(channel)")], now=now, rng_delay=1) == "done"
    (row,) = outbox.history()
    assert row.status == "dead"
    assert row.attempts == 3
    assert row.reason == "gave up after 3 attempts: the server refused this recipient"
    assert take(outbox, now + 100) == []


def test_no_attempt_is_scheduled_past_max_age(outbox: Outbox) -> None:
    policy = RetryPolicy(attempts=100, first_delay=10, max_delay=60, max_age=100)
    put(outbox, policy=policy)
    (claimed,) = take(outbox, T0 + 95)
    assert outbox.record(claimed, "w1", [later("(channel)")], now=T0 + 95, rng_delay=10) == ("done")
    (row,) = outbox.history()
    assert row.status == "dead"
    assert row.reason == (
        "gave up: the next attempt would be past this event's max_age: "
        "the server refused this recipient"
    )


def test_max_age_per_event_type_expires_with_a_reason_never_silently(outbox: Outbox) -> None:
    login = Event("user_login", {"user_name": "alice"})
    login_id = put(outbox, event=login, policy=policy_for("user_login", {}))
    backup_id = put(outbox, policy=policy_for("backup_failure", {}))
    # nothing ran for two hours (no worker, or its channel parked)
    (claimed,) = take(outbox, T0 + 2 * 3600)
    assert claimed.id == backup_id  # still worth sending: max_age 2 days
    (row,) = outbox.history(event_type="user_login")
    assert (row.delivery_id, row.status, row.kind) == (login_id, "dead", "transient")
    assert row.reason == "expired: older than this event's max_age before it could be delivered"
    assert outbox.counts()["dead"] == 1


def test_expiry_keeps_what_was_already_delivered(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [ok("a@x.org"), later("b@x.org")], now=T0, rng_delay=10)
    take(outbox, T0 + 700)  # past max_age 600, before the retry was taken
    statuses = {r.recipient: (r.status, r.reason) for r in outbox.history()}
    assert statuses == {
        "a@x.org": ("delivered", None),
        "b@x.org": (
            "dead",
            "expired: older than this event's max_age before it could be delivered",
        ),
    }


def test_an_unknown_outcome_shape_still_ends_up_in_the_history(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    skipped = RecipientResult.skipped("(channel)", "nothing to send")
    assert outbox.record(claimed, "w1", [skipped], now=T0) == "done"
    assert outbox.history()[0].status == "skipped"


# --- parking: bad credentials hold the channel's queue ----------------------------------------


def test_bad_credentials_park_the_channel_until_its_configuration_changes(
    outbox: Outbox,
) -> None:
    first = put(outbox, channel="mail")
    (claimed,) = take(outbox, T0)
    state = outbox.record(claimed, "w1", [bad_login("ops@x.org")], fingerprint="cfg-1", now=T0)
    assert state == "pending"  # not dead: it goes once the password is fixed
    assert outbox.parked() == {"mail": ("Invalid login credentials", T0)}
    second = put(outbox, channel="mail", now=T0 + 1)
    other = put(outbox, channel="chat", now=T0 + 1)
    # nothing of the parked channel is attempted, however long it waits (no hammering)
    (chat,) = take(outbox, T0 + 500)
    assert chat.id == other
    outbox.record(chat, "w1", [ok("room-1")], now=T0 + 500)
    assert outbox.next_due() is None  # an idle worker sleeps: nothing of "mail" is due
    # the same configuration again: still parked
    assert outbox.unpark_changed({"mail": "cfg-1"}) == []
    assert take(outbox, T0 + 501) == []
    # a new password: the queue goes again, the old notification to its recipient only
    assert outbox.unpark_changed({"mail": "cfg-2"}) == ["mail"]
    again = {c.id: c for c in take(outbox, T0 + 502)}
    assert set(again) == {first, second}
    assert again[first].retry_only == ("ops@x.org",)
    assert again[second].retry_only is None


def test_an_operator_retry_of_the_channel_unparks_it(outbox: Outbox) -> None:
    ident = put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [bad_login("(channel)")], fingerprint="cfg", now=T0)
    assert take(outbox, T0 + 100) == []
    assert outbox.retry(channel="mail", now=T0 + 100) == 1
    assert outbox.parked() == {}
    assert [c.id for c in take(outbox, T0 + 100)] == [ident]


# --- operations -------------------------------------------------------------------------------


def test_retry_dead_puts_dead_recipients_back(outbox: Outbox) -> None:
    ident = put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [never("(channel)")], now=T0)
    assert take(outbox, T0 + 10) == []
    assert outbox.retry(dead=True, now=T0 + 20) == 1
    (again,) = take(outbox, T0 + 20)
    assert again.id == ident
    assert outbox.record(again, "w1", [ok("(channel)")], now=T0 + 21) == "done"
    (row,) = outbox.history()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_retry_dead_resends_only_to_the_dead_recipient(outbox: Outbox) -> None:
    put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [ok("a@x.org"), ok("b@x.org"), never("c@x.org")], now=T0)
    assert outbox.retry(dead=True, now=T0 + 20) == 1
    (again,) = take(outbox, T0 + 20)
    assert again.retry_only == ("c@x.org",)  # a and b have it already
    # the max_age clock starts again: an operator's retry is not expired at once
    assert again.expires_at == T0 + 20 + POLICY.max_age


def test_retry_of_a_channel_puts_back_only_what_waits_or_died(outbox: Outbox) -> None:
    put(outbox)
    (done,) = take(outbox, T0)
    outbox.record(done, "w1", [ok("ops@x.org")], now=T0)
    waiting = put(outbox, now=T0 + 1)
    (claimed,) = take(outbox, T0 + 1)
    outbox.record(claimed, "w1", [bad_login("ops@x.org")], fingerprint="f", now=T0 + 1)
    assert outbox.retry(channel="mail", now=T0 + 2) == 1
    assert [c.id for c in take(outbox, T0 + 2)] == [waiting]


def test_a_claim_never_asks_to_send_to_nobody(outbox: Outbox) -> None:
    ident = put(outbox)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [ok("a@x.org"), ok("b@x.org")], now=T0)
    outbox.retry(delivery_id=ident, now=T0 + 5)
    for again in take(outbox, T0 + 5):
        assert again.retry_only != ()


def test_purge_forgets_finished_notifications_only(outbox: Outbox) -> None:
    done = put(outbox, now=T0)
    (claimed,) = take(outbox, T0)
    outbox.record(claimed, "w1", [ok("(channel)")], now=T0)
    waiting = put(outbox, now=T0 + 1, policy=RetryPolicy(3, 10, 60, 10**9))
    (claimed,) = take(outbox, T0 + 2)
    outbox.record(claimed, "w1", [later("(channel)")], now=T0 + 2, rng_delay=10**8)
    assert outbox.purge(older_than=100, now=T0 + 50) == 0
    assert outbox.purge(older_than=100, now=T0 + 5000) == 1
    assert [r.delivery_id for r in outbox.history()] == [waiting]
    assert done not in [r.delivery_id for r in outbox.history()]


def test_history_filters_and_json_view(outbox: Outbox) -> None:
    login = Event("user_login", {"user_name": "alice"})
    a = put(outbox, channel="mail", now=T0)
    b = put(outbox, channel="chat", event=login, now=T0 + 10)
    for claimed in take(outbox, T0 + 20):
        result = ok("ops@x.org") if claimed.id == a else never("room-1")
        outbox.record(claimed, "w1", [result], now=T0 + 20 + claimed.id)
    assert [r.delivery_id for r in outbox.history(channel="chat")] == [b]
    assert [r.delivery_id for r in outbox.history(event_type="backup_failure")] == [a]
    assert [r.delivery_id for r in outbox.history(recipient="room-1")] == [b]
    assert [r.delivery_id for r in outbox.history(status="delivered")] == [a]
    assert [r.delivery_id for r in outbox.history(since=T0 + 20 + b)] == [b]
    assert [r.delivery_id for r in outbox.history(until=T0 + 20 + b)] == [a]
    assert [r.delivery_id for r in outbox.history()] == [b, a]  # newest first
    data = outbox.history(channel="mail")[0].as_dict()
    assert data["at"] == "2025-06-15T15:07:01+00:00"  # T0 + 20 + a
    assert data["status"] == "delivered"
    assert data["next_at"] is None


def test_a_delivery_purged_while_in_flight_is_not_resurrected(outbox: Outbox) -> None:
    put(outbox, now=T0)
    (claimed,) = take(outbox, T0)
    with outbox._write() as db:
        db.execute("DELETE FROM notification")
    assert outbox.record(claimed, "w1", [ok("(channel)")], now=T0 + 1) == "done"
    assert outbox.history() == []


# --- the outbox cannot take it: a clear error, never a silent drop ----------------------------


def test_locked_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    box = Outbox(path, busy_timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(OutboxError) as info:
            put(box)
        waited = time.monotonic() - started
        assert str(info.value) == (
            f"the outbox {path} is locked by another process (waited for it); check for a "
            "process holding it open in a long transaction"
        )
        assert 0.25 < waited < 3
        holder.execute("ROLLBACK")
        put(box)  # the lock gone, the same Outbox works again
        assert box.counts()["pending"] == 1
    finally:
        holder.close()
        box.close()


def test_full_outbox_connection_limit(tmp_path: Path) -> None:
    """SQLITE_FULL through SQLite's own page limit on the outbox's connection, raised by
    the INSERT itself, after which SQLite has rolled the transaction back on its own (the
    full disk on a tiny tmpfs, raised at COMMIT, is in tests/outbox)."""
    box = Outbox(tmp_path / "outbox.sqlite")
    try:
        db = box._connect()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        big = Event("backup_failure", {"job_name": "j", "error": "x" * 20_000})
        with pytest.raises(OutboxError) as info:
            put(box, event=big)
        assert str(info.value) == (
            f"the outbox {box.path} cannot grow: the disk (or its quota) is full; free space"
        )
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert box.counts()["pending"] == 0  # nothing half-written
        put(box, event=big)  # a fresh connection, no limit: it goes
        assert box.counts()["pending"] == 1
    finally:
        box.close()


def test_a_damaged_file_and_a_missing_folder_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is no database, just some text that fills a page " * 100)
    with pytest.raises(OutboxError) as info:
        put(Outbox(junk))
    assert str(info.value) == f"the outbox {junk} is damaged or not an outbox; move it aside"

    missing = tmp_path / "nowhere" / "outbox.sqlite"
    with pytest.raises(OutboxError) as info:
        put(Outbox(missing))
    assert str(info.value) == (
        f"cannot open the outbox {missing}; check that its folder exists and is writable"
    )

"""The SQLite outbox: one file that several processes share.

One row per notification (its rendered content, so a retry sends the same message with
the same Message-ID), one per delivery (a channel, or a user's copy), one per recipient
(its latest outcome), and one per attempt (the history); the schema and its migrations
are in :mod:`~dbnotify.outbox.sqlite.schema`. A worker claims due deliveries under a
lease, so two workers never send the same delivery, and a worker that dies mid-send
loses its lease after ``lease`` seconds: the delivery is sent again (a duplicate is
better than a loss).

sqlite3 blocks, so each operation runs in a thread (``asyncio.to_thread``); the work in
that thread is one quick transaction on the file's one connection. Every operation goes
through :meth:`SQLiteStore._run`, so that :class:`~dbnotify.outbox.sqlite.writer.WriterStore`
can run the same methods in a process of its own (``[outbox] writer = "process"``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from dbnotify.outbox import rows as stored
from dbnotify.outbox.codec import encode
from dbnotify.outbox.decide import (
    EXPIRED,
    decide,
    final,
    held_until,
    repeat_reason,
)
from dbnotify.outbox.defaults import CONCURRENCY, GROUP_LIMIT, WRITE_GROUP
from dbnotify.outbox.model import (
    FAILED,
    Attempt,
    Claimed,
    Counts,
    DeliveryState,
    Enqueue,
    HistoryRow,
    Hold,
    Mute,
    MuteScope,
    OpenProblem,
    Parked,
    RecipientState,
)
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.outbox.sqlite.database import Database
from dbnotify.results import CHANNEL_LABEL, Delivery, FailureKind, RecipientResult

T = TypeVar("T")

PENDING, DONE = DeliveryState.PENDING.value, DeliveryState.DONE.value
"""Delivery states as stored."""
R_PENDING, R_DELIVERED, R_DEAD = (
    RecipientState.PENDING.value,
    RecipientState.DELIVERED.value,
    RecipientState.DEAD.value,
)
"""Recipient states as stored (and bound as parameters below, never spelled in SQL)."""


class SQLiteStore:
    """The outbox in the SQLite file at ``path`` (created, or upgraded, on first use)."""

    loop_bound = False
    batch_claims = True
    write_group = WRITE_GROUP
    worker_concurrency = CONCURRENCY

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = str(Path(path).expanduser())
        self.database = Database(self.path, busy_timeout=busy_timeout)
        """The connection; tests reach into SQLite through it."""

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def _run(self, method: Callable[..., T], *args: Any) -> T:
        """Run one of this store's synchronous methods (one transaction) off the loop."""
        return await asyncio.to_thread(method, *args)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.database.close)

    async def init(self) -> int:
        """Create or migrate the file now (``dbnotify outbox init``); returns the schema
        version it had before (0: none)."""
        return await self._run(self._init)

    def _init(self) -> int:
        with self.database.read():
            pass
        assert self.database.found is not None
        return self.database.found

    async def listen(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to: workers of other processes poll."""

    # -- writing ----------------------------------------------------------------------

    async def enqueue_many(
        self, items: Sequence[Enqueue], *, now: float | None = None
    ) -> list[list[int]]:
        return await self._run(self._enqueue_many, items, _now(now))

    def _enqueue_many(self, items: Sequence[Enqueue], now: float) -> list[list[int]]:
        with self.database.write() as db:
            return [self._enqueue(db, item, now) for item in items]

    def _enqueue(self, db: sqlite3.Connection, item: Enqueue, now: float) -> list[int]:
        notification = item.notification
        db.execute(
            "INSERT INTO notification (id, event_type, created_at, content, user_content)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                notification.id,
                notification.event_type,
                now,
                encode(notification),
                encode(item.user_notification) if item.user_notification is not None else None,
            ),
        )
        ids: list[int] = []
        for index, d in enumerate(item.deliveries):
            hold = item.hold(index)
            reason = self._repeat(db, hold, d, now) if hold is not None else None
            if reason is None:
                ids.append(
                    self._insert_delivery(db, notification.id, d, PENDING, item.policy, now, hold)
                )
                continue
            ident = self._insert_delivery(db, notification.id, d, DONE, item.policy, now)
            skipped = [RecipientResult.skipped(label, reason) for label in d.labels()]
            self._store_results(
                db, ident, skipped, {r.recipient: final(r) for r in skipped}, {}, now
            )
            ids.append(ident)
        for outcome in item.outcomes:
            delivery = self._insert_delivery(
                db,
                notification.id,
                Delivery(outcome.channel, outcome.target),
                DONE,
                item.policy,
                now,
            )
            states = {r.recipient: final(r) for r in outcome.recipients}
            self._store_results(db, delivery, outcome.recipients, states, {}, now)
        return ids

    @staticmethod
    def _repeat(db: sqlite3.Connection, hold: Hold, delivery: Delivery, now: float) -> str | None:
        """A job's failure whose problem was told within ``repeat``: why it is counted,
        not sent; ``None`` (it goes, with its group), and the problem is opened or
        counted."""
        problem = hold.problem
        if problem is None:
            return None
        row = db.execute("SELECT * FROM problem WHERE key = ?", (problem.key,)).fetchone()
        if row is not None:
            db.execute("UPDATE problem SET count = count + 1 WHERE key = ?", (problem.key,))
            waiting = db.execute(
                "SELECT 1 FROM delivery WHERE problem = ? AND state = ? LIMIT 1",
                (problem.key, PENDING),
            ).fetchone()
            (last,) = db.execute(
                "SELECT max(updated_at) FROM delivery WHERE problem = ? AND state = ? AND "
                "updated_at >= ?",
                (problem.key, DONE, row["opened_at"]),
            ).fetchone()
            return repeat_reason(
                problem,
                now,
                waiting=waiting is not None,
                last=last,
                count=row["count"] + 1,
                since=row["opened_at"],
            )
        db.execute(
            "INSERT INTO problem (key, job, event_type, channel, target, recipients, opened_at,"
            " count) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (
                problem.key,
                problem.job,
                problem.event_type,
                delivery.channel,
                delivery.target.value,
                json.dumps(delivery.recipients) if delivery.recipients is not None else None,
                now,
            ),
        )
        return None

    async def resolve(self, job: str, *, now: float | None = None) -> list[OpenProblem]:
        return await self._run(self._resolve, job)

    def _resolve(self, job: str) -> list[OpenProblem]:
        with self.database.write() as db:
            rows = db.execute("SELECT * FROM problem WHERE job = ? ORDER BY key", (job,)).fetchall()
            db.execute("DELETE FROM problem WHERE job = ?", (job,))
        return [stored.open_problem(row) for row in rows]

    @staticmethod
    def _held_until(db: sqlite3.Connection, hold: Hold, now: float) -> float:
        """When a delivery held for its group is due (:func:`held_until`)."""
        (open_at,) = db.execute(
            "SELECT min(next_at) FROM delivery WHERE group_key = ? AND state = ? AND "
            "attempts = 0 AND (lease_until IS NULL OR lease_until < ?)",
            (hold.group, PENDING, now),
        ).fetchone()
        (last,) = db.execute(
            "SELECT max(updated_at) FROM delivery WHERE group_key = ? AND state = ?",
            (hold.group, DONE),
        ).fetchone()
        return held_until(hold, now, open_at, last)

    @classmethod
    def _insert_delivery(
        cls,
        db: sqlite3.Connection,
        notification_id: str,
        delivery: Delivery,
        state: str,
        policy: RetryPolicy,
        now: float,
        hold: Hold | None = None,
    ) -> int:
        if hold is not None and hold.under is not None:
            (recent,) = db.execute(
                "SELECT count(*) FROM delivery d JOIN notification n ON n.id = d.notification_id"
                " WHERE d.channel = ? AND d.target = ? AND d.group_key IS NULL AND "
                "n.created_at > ?",
                (delivery.channel, delivery.target.value, now - hold.wait),
            ).fetchone()
            if recent < hold.under:  # within the channel's rate: due now, on its own
                hold = None
        due = cls._held_until(db, hold, now) if hold is not None else now
        cursor = db.execute(
            "INSERT INTO delivery (notification_id, channel, target, recipients, state,"
            " max_attempts, first_delay, max_delay, next_at, expires_at, updated_at,"
            " group_key, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                notification_id,
                delivery.channel,
                delivery.target.value,
                json.dumps(delivery.recipients) if delivery.recipients is not None else None,
                state,
                policy.attempts,
                policy.first_delay,
                policy.max_delay,
                due,
                now + policy.max_age,
                now,
                hold.group if hold is not None else None,
                hold.problem.key if hold is not None and hold.problem is not None else None,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        only: Collection[int] | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        return await self._run(self._claim, owner, limit, lease, only, _now(now))

    def _claim(
        self, owner: str, limit: int, lease: float, only: Collection[int] | None, now: float
    ) -> list[Claimed]:
        with self.database.write(sync=False) as db:  # a lost lease is a lease run out: no fsync
            self._expire(db, now)
            where = (
                "d.state = ? AND d.next_at <= ? AND (d.lease_until IS NULL OR "
                "d.lease_until < ?) AND d.channel NOT IN (SELECT channel FROM parked)"
            )
            args: list[Any] = [PENDING, now, now]
            if only is not None:
                wanted = list(only)
                where += f" AND d.id IN ({','.join('?' * len(wanted))})"
                args += wanted
            rows = db.execute(
                "SELECT d.*, n.content, n.user_content FROM delivery d JOIN notification n "
                f"ON n.id = d.notification_id WHERE {where} ORDER BY d.next_at LIMIT ?",
                (*args, limit),
            ).fetchall()
            if not rows:
                return []
            rows += self._group_members(db, rows, now)
            # a statement per batch, not per row: each one hands the GIL to the event loop
            # and back, which is what a busy host pays for
            marks = ",".join("?" * len(rows))
            ids = [row["id"] for row in rows]
            db.execute(
                "UPDATE delivery SET lease_owner = ?, lease_until = ?, fence = fence + 1 "
                f"WHERE id IN ({marks})",
                (owner, now + lease, *ids),
            )
            known: dict[int, dict[str, RecipientState]] = {}
            for r in db.execute(
                "SELECT delivery_id, address, status FROM recipient "
                f"WHERE delivery_id IN ({marks})",
                ids,
            ):
                known.setdefault(r["delivery_id"], {})[r["address"]] = RecipientState(r["status"])
            return [
                # the fence as the claim's update left it (read before it)
                stored.claimed(row, known.get(row["id"], {}), now, row["fence"] + 1)
                for row in rows
            ]

    @staticmethod
    def _group_members(
        db: sqlite3.Connection, rows: list[sqlite3.Row], now: float
    ) -> list[sqlite3.Row]:
        """The other pending deliveries of the groups among ``rows``, due or not: a
        group goes as one message."""
        taken = {row["id"] for row in rows}
        members: list[sqlite3.Row] = []
        for group in dict.fromkeys(r["group_key"] for r in rows if r["group_key"] is not None):
            count = sum(1 for r in rows if r["group_key"] == group)
            members += [
                row
                for row in db.execute(
                    "SELECT d.*, n.content, n.user_content FROM delivery d JOIN notification n "
                    "ON n.id = d.notification_id WHERE d.group_key = ? AND d.state = ? AND "
                    "(d.lease_until IS NULL OR d.lease_until < ?) AND d.channel NOT IN "
                    "(SELECT channel FROM parked) ORDER BY d.next_at, d.id LIMIT ?",
                    (group, PENDING, now, GROUP_LIMIT),
                ).fetchall()
                if row["id"] not in taken
            ][: max(0, GROUP_LIMIT - count)]
        return members

    @staticmethod
    def _expire(db: sqlite3.Connection, now: float) -> None:
        """Deliveries past their max_age: dead, with the reason, never silently gone.

        Only after a first attempt: a worker whose clock runs ahead (or one started late)
        must not kill a notification nobody has tried to send."""
        for row in db.execute(
            "SELECT id FROM delivery WHERE state = ? AND attempts > 0 AND expires_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?)",
            (PENDING, now, now),
        ).fetchall():
            found = db.execute(
                "UPDATE recipient SET status = ?, reason = ?, updated_at = ? "
                "WHERE delivery_id = ? AND status = ?",
                (R_DEAD, EXPIRED, now, row["id"], R_PENDING),
            ).rowcount
            if not found:
                db.execute(
                    "INSERT OR REPLACE INTO recipient (delivery_id, address, status, kind, "
                    "reason, attempts, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                    (row["id"], CHANNEL_LABEL, R_DEAD, FailureKind.TRANSIENT.value, EXPIRED, now),
                )
            db.execute(
                "UPDATE delivery SET state = ?, lease_owner = NULL, lease_until = NULL, "
                "updated_at = ? WHERE id = ?",
                (DONE, now, row["id"]),
            )

    async def record_many(
        self,
        attempts: Sequence[Attempt],
        *,
        now: float | None = None,
        delay: float | None = None,
    ) -> list[DeliveryState]:
        return await self._run(self._record_many, attempts, _now(now), delay)

    def _record_many(
        self, attempts: Sequence[Attempt], now: float, delay: float | None
    ) -> list[DeliveryState]:
        with self.database.write() as db:
            marks = ",".join("?" * len(attempts))
            fences: dict[int, int] = {
                row[0]: row[1]
                for row in db.execute(
                    f"SELECT id, fence FROM delivery WHERE id IN ({marks})",
                    [a.claimed.id for a in attempts],
                )
            }
            return [
                DeliveryState.DONE  # purged meanwhile
                if (fence := fences.get(attempt.claimed.id)) is None
                else DeliveryState.TAKEN_OVER
                if fence != attempt.claimed.fence
                else self._record(db, attempt, now, delay)
                for attempt in attempts
            ]

    def _record(
        self, db: sqlite3.Connection, attempt: Attempt, now: float, delay: float | None
    ) -> DeliveryState:
        claimed = attempt.claimed
        if delay is None:
            delay = claimed.policy.delay(claimed.attempts + 1)
        decision = decide(claimed, attempt.results, now, delay)
        if decision.drop_placeholder:
            db.execute(
                "DELETE FROM recipient WHERE delivery_id = ? AND address = ?",
                (claimed.id, CHANNEL_LABEL),
            )
        self._store_results(db, claimed.id, attempt.results, decision.states, decision.reasons, now)
        db.execute(
            "UPDATE delivery SET state = ?, attempts = ?, next_at = ?, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ? WHERE id = ?",
            (
                decision.state.value,
                decision.attempts,
                decision.next_at if decision.next_at is not None else now,
                now,
                claimed.id,
            ),
        )
        if decision.park is not None:
            db.execute(
                "INSERT OR REPLACE INTO parked (channel, reason, at, fingerprint) "
                "VALUES (?, ?, ?, ?)",
                (claimed.delivery.channel, decision.park, now, attempt.fingerprint),
            )
        return decision.state

    @staticmethod
    def _store_results(
        db: sqlite3.Connection,
        delivery_id: int,
        results: Sequence[RecipientResult],
        states: Mapping[str, RecipientState],
        reasons: Mapping[str, str],
        now: float,
    ) -> None:
        rows = [
            (r, reasons.get(r.recipient, r.reason), r.kind.value if r.kind else None)
            for r in results
        ]
        db.executemany(
            "INSERT INTO recipient (delivery_id, address, status, kind, reason, reply, hint,"
            " attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (delivery_id, address) DO UPDATE SET status = excluded.status, "
            "kind = excluded.kind, reason = excluded.reason, reply = excluded.reply, "
            "hint = excluded.hint, attempts = recipient.attempts + 1, "
            "updated_at = excluded.updated_at",
            [
                (
                    delivery_id,
                    r.recipient,
                    states[r.recipient].value,
                    kind,
                    reason,
                    r.reply,
                    r.hint,
                    now,
                )
                for r, reason, kind in rows
            ],
        )
        db.executemany(
            "INSERT INTO attempt (delivery_id, at, address, status, kind, reason, reply) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (delivery_id, now, r.recipient, r.status.value, kind, reason, r.reply)
                for r, reason, kind in rows
            ],
        )

    # -- operations -------------------------------------------------------------------

    async def release(self, owner: str, ids: Sequence[int], *, after: float = 0.0) -> int:
        return await self._run(self._release, owner, list(ids), _now(None) + after)

    def _release(self, owner: str, ids: list[int], until: float) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self.database.write() as db:
            return db.execute(
                "UPDATE delivery SET lease_owner = NULL, lease_until = NULL, next_at = "
                f"max(next_at, ?) WHERE lease_owner = ? AND state = ? AND id IN ({marks})",
                (until, owner, PENDING, *ids),
            ).rowcount

    async def unpark_changed(self, fingerprints: Mapping[str, str]) -> list[str]:
        return await self._run(self._unpark_changed, fingerprints)

    def _unpark_changed(self, fingerprints: Mapping[str, str]) -> list[str]:
        with self.database.write() as db:
            gone = [
                row["channel"]
                for row in db.execute("SELECT channel, fingerprint FROM parked").fetchall()
                if fingerprints.get(row["channel"]) != row["fingerprint"]
            ]
            for channel in gone:
                db.execute("DELETE FROM parked WHERE channel = ?", (channel,))
        return gone

    async def parked(self) -> dict[str, Parked]:
        return await self._run(self._parked)

    def _parked(self) -> dict[str, Parked]:
        with self.database.read() as db:
            return {
                row["channel"]: Parked(row["reason"], row["at"])
                for row in db.execute("SELECT * FROM parked ORDER BY channel")
            }

    async def retry(
        self,
        *,
        delivery_id: int | None = None,
        dead: bool = False,
        channel: str | None = None,
        now: float | None = None,
    ) -> int:
        return await self._run(self._retry, delivery_id, dead, channel, _now(now))

    def _retry(self, delivery_id: int | None, dead: bool, channel: str | None, now: float) -> int:
        conditions: list[str] = []
        args: list[Any] = []
        if delivery_id is not None:
            conditions.append("d.id = ?")
            args.append(delivery_id)
        if channel is not None:
            conditions.append("d.channel = ?")
            args.append(channel)
        has_dead = "EXISTS (SELECT 1 FROM recipient r WHERE r.delivery_id = d.id AND r.status = ?)"
        if dead:
            conditions.append(has_dead)
            args.append(R_DEAD)
        # only what still waits or died: a delivered notification is never sent again
        conditions.append(f"(d.state = ? OR {has_dead})")
        args += [PENDING, R_DEAD]
        where = " AND ".join(conditions)
        with self.database.write() as db:
            ids = [
                row["id"] for row in db.execute(f"SELECT d.id FROM delivery d WHERE {where}", args)
            ]
            for ident in ids:
                db.execute(
                    "UPDATE recipient SET status = ? WHERE delivery_id = ? AND status = ?",
                    (R_PENDING, ident, R_DEAD),
                )
                db.execute(
                    "UPDATE delivery SET state = ?, next_at = ?, attempts = 0, "
                    "expires_at = ? + (expires_at - (SELECT created_at FROM notification n "
                    "WHERE n.id = notification_id)), lease_owner = NULL, lease_until = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (PENDING, now, now, now, ident),
                )
            # asked again after the updates: what they put back is pending now
            parked = {
                row["channel"]
                for row in db.execute(
                    f"SELECT DISTINCT d.channel FROM delivery d WHERE {where}", args
                )
            }
            if channel is not None:
                parked.add(channel)
            for name in parked:
                db.execute("DELETE FROM parked WHERE channel = ?", (name,))
        return len(ids)

    async def purge(self, older_than: float, *, now: float | None = None) -> int:
        return await self._run(self._purge, _now(now) - older_than)

    def _purge(self, before: float) -> int:
        with self.database.write() as db:
            deleted: int = db.execute(
                "DELETE FROM notification WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "delivery d WHERE d.notification_id = notification.id AND d.state = ?)",
                (before, PENDING),
            ).rowcount
            return deleted

    async def mute(
        self,
        scope: MuteScope,
        value: str,
        *,
        duration: float,
        reason: str = "",
        now: float | None = None,
    ) -> Mute:
        return await self._run(self._mute, scope, value, duration, reason, _now(now))

    def _mute(self, scope: MuteScope, value: str, duration: float, reason: str, now: float) -> Mute:
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT INTO mute (scope, value, reason, since, until) VALUES (?, ?, ?, ?, ?)",
                (scope.value, value, reason, now, now + duration),
            )
            assert cursor.lastrowid is not None
            return Mute(cursor.lastrowid, scope, value, reason, now, now + duration)

    async def mutes(self, *, now: float | None = None) -> list[Mute]:
        return await self._run(self._mutes, _now(now))

    def _mutes(self, now: float) -> list[Mute]:
        with self.database.read() as db:
            return [
                stored.mute(row)
                for row in db.execute("SELECT * FROM mute WHERE until > ? ORDER BY id", (now,))
            ]

    async def unmute(self, mute_id: int, *, now: float | None = None) -> Mute | None:
        return await self._run(self._unmute, mute_id, _now(now))

    def _unmute(self, mute_id: int, now: float) -> Mute | None:
        with self.database.write() as db:
            row = db.execute(
                "SELECT * FROM mute WHERE id = ? AND until > ?", (mute_id, now)
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE mute SET until = ? WHERE id = ?", (now, mute_id))
            return attrs.evolve(stored.mute(row), until=now)

    # -- reading ----------------------------------------------------------------------

    async def counts(self, *, now: float | None = None) -> Counts:
        return await self._run(self._counts, _now(now))

    def _counts(self, now: float) -> Counts:
        with self.database.read() as db:
            row = db.execute(
                "SELECT "
                "(SELECT count(*) FROM delivery WHERE state = ?) AS pending, "
                "(SELECT count(*) FROM delivery WHERE state = ? AND next_at <= ? AND "
                "channel NOT IN (SELECT channel FROM parked)) AS due, "
                "(SELECT count(*) FROM recipient WHERE status = ?) AS dead, "
                "(SELECT count(*) FROM recipient WHERE status = ?) AS delivered",
                (PENDING, PENDING, now, R_DEAD, R_DELIVERED),
            ).fetchone()
            return Counts(
                pending=row["pending"],
                due=row["due"],
                dead=row["dead"],
                delivered=row["delivered"],
            )

    async def next_due(self) -> float | None:
        return await self._run(self._next_due)

    def _next_due(self) -> float | None:
        with self.database.read() as db:
            row = db.execute(
                # a leased delivery is not due before its lease runs out
                "SELECT min(max(next_at, coalesce(lease_until, 0))) AS at FROM delivery "
                "WHERE state = ? AND channel NOT IN (SELECT channel FROM parked)",
                (PENDING,),
            ).fetchone()
            return row["at"] if row and row["at"] is not None else None

    async def history(
        self,
        *,
        event_type: str | None = None,
        channel: str | None = None,
        recipient: str | None = None,
        status: RecipientState | None = None,
        since: float | None = None,
        until: float | None = None,
        notification_id: str | None = None,
        delivery_ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[HistoryRow]:
        conditions: list[str] = ["1 = 1"]
        args: list[Any] = []
        for column, value in (
            ("event_type", event_type),
            ("channel", channel),
            ("address", recipient),
            ("status", status),
            ("notification_id", notification_id),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            conditions.append("at >= ?")
            args.append(since)
        if until is not None:
            conditions.append("at < ?")
            args.append(until)
        if delivery_ids is not None:
            conditions.append(f"delivery_id IN ({','.join('?' * len(delivery_ids))})")
            args += list(delivery_ids)
        query = f"""
            SELECT * FROM (
                SELECT d.id AS delivery_id, n.id AS notification_id, n.event_type AS event_type,
                       d.channel AS channel, d.target AS target,
                       coalesce(r.address, json_extract(d.recipients, '$[0]'), ?) AS address,
                       coalesce(r.status, ?) AS status, r.kind AS kind,
                       r.reason AS reason, r.reply AS reply, r.hint AS hint,
                       coalesce(r.attempts, 0) AS attempts,
                       coalesce(r.updated_at, d.updated_at) AS at,
                       CASE WHEN d.state = ? THEN d.next_at END AS next_at,
                       CASE WHEN d.state = ? THEN d.lease_owner END AS held_by,
                       CASE WHEN d.state = ? THEN d.lease_until END AS held_until
                FROM delivery d JOIN notification n ON n.id = d.notification_id
                LEFT JOIN recipient r ON r.delivery_id = d.id
            )
            WHERE {" AND ".join(conditions)}
            ORDER BY at DESC, delivery_id DESC LIMIT ?"""
        return await self._run(
            self._rows, query, (CHANNEL_LABEL, R_PENDING, PENDING, PENDING, PENDING, *args, limit)
        )

    def _rows(self, query: str, args: Sequence[Any]) -> list[HistoryRow]:
        with self.database.read() as db:
            return [stored.history_row(row) for row in db.execute(query, args)]

    async def last_delivery(self) -> dict[str, HistoryRow]:
        latest: dict[str, HistoryRow] = {}
        for row in await self.history(status=RecipientState.DELIVERED, limit=100_000):
            latest.setdefault(row.channel, row)
        return latest

    async def failures_since(self, since: float) -> list[HistoryRow]:
        return await self._run(
            self._rows,
            "SELECT a.delivery_id, n.id AS notification_id, n.event_type, d.channel, "
            "d.target, a.address, a.status, a.kind, a.reason, a.reply, a.at, "
            "r.hint, coalesce(r.attempts, 0) AS attempts, NULL AS next_at FROM attempt a "
            "JOIN delivery d ON d.id = a.delivery_id "
            "JOIN notification n ON n.id = d.notification_id "
            "LEFT JOIN recipient r ON r.delivery_id = a.delivery_id AND "
            "r.address = a.address WHERE a.status = ? AND a.at >= ? "
            "ORDER BY a.at DESC",
            (FAILED, since),
        )


def _now(now: float | None) -> float:
    return time.time() if now is None else now

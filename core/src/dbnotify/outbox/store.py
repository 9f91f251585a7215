"""The outbox: a SQLite file that holds every notification until it is final.

One row per notification (its rendered content, so a retry sends the same message with
the same Message-ID), one per delivery (a channel, or a user's copy), one per recipient
(its latest outcome), and one per attempt (the history). WAL mode and
``synchronous = FULL``: once :meth:`Outbox.enqueue` returns, the notification survives a
crash of the process or the machine.

Several processes may share the file. Writes take SQLite's write lock
(``BEGIN IMMEDIATE``); a worker claims due deliveries under a lease, so two workers never
send the same delivery, and a worker that dies mid-send loses its lease after
``lease`` seconds: the delivery is sent again (a duplicate is better than a loss).

Every method is synchronous and quick; async callers run them in a thread.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from dbnotify.errors import OutboxError
from dbnotify.events import Field, Notification, Severity
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import Delivery, FailureKind, RecipientResult, Status, Target

SCHEMA = """
CREATE TABLE IF NOT EXISTS notification (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    content TEXT NOT NULL,
    user_content TEXT
);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notification(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    recipients TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    first_delay REAL NOT NULL,
    max_delay REAL NOT NULL,
    next_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery(state, next_at);
CREATE TABLE IF NOT EXISTS recipient (
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    kind TEXT,
    reason TEXT,
    reply TEXT,
    hint TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (delivery_id, address)
);
CREATE TABLE IF NOT EXISTS attempt (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    kind TEXT,
    reason TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS attempt_at ON attempt(at);
CREATE TABLE IF NOT EXISTS parked (
    channel TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    fingerprint TEXT NOT NULL
);
"""

PENDING, DONE = "pending", "done"
"""Delivery states."""
R_PENDING, R_DELIVERED, R_SKIPPED, R_DEAD = "pending", "delivered", "skipped", "dead"
"""Recipient states: pending (to be retried), or final."""


@attrs.frozen
class Claimed:
    """A delivery a worker holds the lease for."""

    id: int
    notification: Notification
    channel: str
    target: Target
    recipients: tuple[str, ...] | None
    retry_only: tuple[str, ...] | None
    attempts: int
    policy: RetryPolicy
    expires_at: float


@attrs.frozen
class Enqueue:
    """One notification to commit (see :meth:`Outbox.enqueue`)."""

    notification: Notification
    user_notification: Notification | None
    deliveries: Sequence[Delivery]
    policy: RetryPolicy
    outcomes: Sequence[tuple[str, Target, Sequence[RecipientResult]]] = ()


@attrs.frozen
class Attempt:
    """One attempt's results to record (see :meth:`Outbox.record`)."""

    claimed: Claimed
    results: Sequence[RecipientResult]
    fingerprint: str = ""


@attrs.frozen
class HistoryRow:
    """One recipient of one delivery, as it stands (or one attempt, in the attempt log)."""

    delivery_id: int
    notification_id: str
    event_type: str
    channel: str
    target: str
    recipient: str
    status: str
    kind: str | None
    reason: str | None
    reply: str | None
    hint: str | None
    attempts: int
    at: float
    next_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["at"] = _iso(self.at)
        data["next_at"] = _iso(self.next_at) if self.next_at is not None else None
        return data


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def encode(notification: Notification) -> str:
    return json.dumps(
        {
            "id": notification.id,
            "event_type": notification.event_type,
            "severity": notification.severity.value,
            "title": notification.title,
            "message": notification.message,
            "fields": [[f.label, f.value] for f in notification.fields],
            "timestamp": notification.timestamp.isoformat(),
            "job_name": notification.job_name,
        }
    )


def decode(text: str) -> Notification:
    data = json.loads(text)
    return Notification(
        id=data["id"],
        event_type=data["event_type"],
        severity=Severity(data["severity"]),
        title=data["title"],
        message=data["message"],
        fields=tuple(Field(label, value) for label, value in data["fields"]),
        timestamp=dt.datetime.fromisoformat(data["timestamp"]),
        job_name=data["job_name"],
    )


def _explain(exc: sqlite3.Error, path: str) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return (
            f"the outbox {path} is locked by another process (waited for it); check for a "
            "process holding it open in a long transaction"
        )
    if "full" in text:
        return f"the outbox {path} cannot grow: the disk (or its quota) is full; free space"
    if "readonly" in text or "read-only" in text or "attempt to write" in text:
        return f"the outbox {path} is not writable by this process; check its permissions"
    if "unable to open" in text:
        return f"cannot open the outbox {path}; check that its folder exists and is writable"
    if "malformed" in text or "not a database" in text:
        return f"the outbox {path} is damaged or not an outbox; move it aside"
    return f"the outbox {path} failed: {exc}"


class Outbox:
    """The SQLite outbox at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = str(Path(path).expanduser())
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # transactions are explicit below
                check_same_thread=False,
            )
            db.row_factory = sqlite3.Row
            try:
                self._setup(db)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _setup(self, db: sqlite3.Connection) -> None:
        """WAL, fsync on commit, the schema. Two processes opening a new file at once
        may find it busy for a moment (the switch to WAL takes the file to itself):
        wait for it, as long as busy_timeout allows."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.execute("PRAGMA foreign_keys = ON")
                db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _write(self, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; every SQLite failure becomes an :class:`OutboxError`.

        ``sync=False`` commits without waiting for the disk: only for what a power cut may
        lose without harm (a lease: the delivery is taken again, as when a lease runs out).
        The next synced commit writes it to disk too (the WAL is appended in order).
        """
        with self._lock:
            try:
                db = self._connect()
                if not sync:
                    db.execute("PRAGMA synchronous = NORMAL")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        yield db
                    except BaseException:
                        if db.in_transaction:  # SQLite may have rolled back already (disk full)
                            db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                finally:
                    if not sync and self._db is not None:
                        db.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                self._reset()
                raise OutboxError(_explain(exc, self.path)) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                self._reset()
                raise OutboxError(_explain(exc, self.path)) from exc

    def _reset(self) -> None:
        if self._db is not None:
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._db.close()
            self._db = None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- writing ----------------------------------------------------------------------

    def enqueue(
        self,
        notification: Notification,
        user_notification: Notification | None,
        deliveries: Sequence[Delivery],
        policy: RetryPolicy,
        outcomes: Sequence[tuple[str, Target, Sequence[RecipientResult]]] = (),
        now: float | None = None,
    ) -> list[int]:
        """Commit the notification and its deliveries; returns the delivery ids.

        ``outcomes`` are targets already decided without sending (skipped users, unknown
        channels): kept for the history.
        """
        (ids,) = self.enqueue_many(
            [Enqueue(notification, user_notification, deliveries, policy, outcomes)], now
        )
        return ids

    def enqueue_many(self, items: Sequence[Enqueue], now: float | None = None) -> list[list[int]]:
        """:meth:`enqueue` for several notifications in one transaction (one fsync)."""
        now = time.time() if now is None else now
        with self._write() as db:
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
        ids = [
            self._insert_delivery(
                db, notification.id, d.channel, d.target, d.recipients, PENDING, item.policy, now
            )
            for d in item.deliveries
        ]
        for channel, target, results in item.outcomes:
            delivery = self._insert_delivery(
                db, notification.id, channel, target, None, DONE, item.policy, now
            )
            self._store_results(
                db, delivery, results, {r.recipient: _final(r) for r in results}, now
            )
        return ids

    @staticmethod
    def _insert_delivery(
        db: sqlite3.Connection,
        notification_id: str,
        channel: str,
        target: Target,
        recipients: tuple[str, ...] | None,
        state: str,
        policy: RetryPolicy,
        now: float,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO delivery (notification_id, channel, target, recipients, state,"
            " max_attempts, first_delay, max_delay, next_at, expires_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                notification_id,
                channel,
                target.value,
                json.dumps(recipients) if recipients is not None else None,
                state,
                policy.attempts,
                policy.first_delay,
                policy.max_delay,
                now,
                now + policy.max_age,
                now,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        only: Iterable[int] | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease`` seconds (none twice)."""
        now = time.time() if now is None else now
        with self._write(sync=False) as db:  # a lost lease is a lease run out: no fsync
            self._expire(db, now)
            where = (
                "d.state = 'pending' AND d.next_at <= ? AND (d.lease_until IS NULL OR "
                "d.lease_until < ?) AND d.channel NOT IN (SELECT channel FROM parked)"
            )
            args: list[Any] = [now, now]
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
            # a statement per batch, not per row: each one hands the GIL to the event loop
            # and back, which is what a busy host pays for
            marks = ",".join("?" * len(rows))
            ids = [row["id"] for row in rows]
            db.execute(
                f"UPDATE delivery SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, now + lease, *ids),
            )
            recipients: dict[int, list[sqlite3.Row]] = {}
            for r in db.execute(
                "SELECT delivery_id, address, status FROM recipient "
                f"WHERE delivery_id IN ({marks})",
                ids,
            ):
                recipients.setdefault(r["delivery_id"], []).append(r)
            claimed = []
            for row in rows:
                known = recipients.get(row["id"], [])
                # after a first attempt, only those still pending; never the delivered ones
                retry = [r["address"] for r in known if r["status"] == R_PENDING]
                target = Target(row["target"])
                content = row["user_content"] if target is Target.USER else row["content"]
                claimed.append(
                    Claimed(
                        id=row["id"],
                        notification=decode(content or row["content"]),
                        channel=row["channel"],
                        target=target,
                        recipients=tuple(json.loads(row["recipients"]))
                        if row["recipients"]
                        else None,
                        # "(channel)" stands for a failure before any recipient was known
                        retry_only=tuple(retry)
                        if known and retry and "(channel)" not in retry
                        else None,
                        attempts=row["attempts"],
                        policy=RetryPolicy(
                            row["max_attempts"],
                            row["first_delay"],
                            row["max_delay"],
                            row["expires_at"] - now,
                        ),
                        expires_at=row["expires_at"],
                    )
                )
        return claimed

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        """Deliveries past their max_age: dead, with the reason, never silently gone."""
        for row in db.execute(
            "SELECT id FROM delivery WHERE state = 'pending' AND expires_at <= ? AND "
            "(lease_until IS NULL OR lease_until < ?)",
            (now, now),
        ).fetchall():
            reason = "expired: older than this event's max_age before it could be delivered"
            found = db.execute(
                "UPDATE recipient SET status = ?, reason = ?, updated_at = ? "
                "WHERE delivery_id = ? AND status = ?",
                (R_DEAD, reason, now, row["id"], R_PENDING),
            ).rowcount
            if not found:
                db.execute(
                    "INSERT OR REPLACE INTO recipient (delivery_id, address, status, kind, "
                    "reason, attempts, updated_at) VALUES (?, '(channel)', ?, ?, ?, 0, ?)",
                    (row["id"], R_DEAD, FailureKind.TRANSIENT.value, reason, now),
                )
            db.execute(
                "UPDATE delivery SET state = 'done', lease_owner = NULL, lease_until = NULL, "
                "updated_at = ? WHERE id = ?",
                (now, row["id"]),
            )

    def record(
        self,
        claimed: Claimed,
        owner: str,
        results: Sequence[RecipientResult],
        *,
        fingerprint: str = "",
        now: float | None = None,
        rng_delay: float | None = None,
    ) -> str:
        """Store an attempt's results; decide what comes next. Returns the delivery state."""
        (state,) = self.record_many([Attempt(claimed, results, fingerprint)], now, rng_delay)
        return state

    def record_many(
        self,
        attempts: Sequence[Attempt],
        now: float | None = None,
        rng_delay: float | None = None,
    ) -> list[str]:
        """:meth:`record` for several attempts in one transaction (one fsync)."""
        now = time.time() if now is None else now
        with self._write() as db:
            marks = ",".join("?" * len(attempts))
            held = {
                row[0]
                for row in db.execute(
                    f"SELECT id FROM delivery WHERE id IN ({marks})",
                    [a.claimed.id for a in attempts],
                )
            }
            return [
                self._record(db, attempt, now, rng_delay) if attempt.claimed.id in held else DONE
                for attempt in attempts  # DONE: purged meanwhile
            ]

    def _record(
        self, db: sqlite3.Connection, attempt_: Attempt, now: float, rng_delay: float | None
    ) -> str:
        claimed, results = attempt_.claimed, attempt_.results
        attempt = claimed.attempts + 1
        delay = rng_delay if rng_delay is not None else claimed.policy.delay(attempt)
        asked = [r.retry_after for r in results if r.retry_after is not None]
        if asked:  # the service said how long to wait (HTTP 429): never sooner
            delay = max(delay, *asked)
        next_at = now + delay
        states: dict[str, str] = {}
        reasons: dict[str, str] = {}
        park: RecipientResult | None = None
        for r in results:
            if r.status is Status.FAILED and r.parks_channel:
                park = r
                states[r.recipient] = R_PENDING
            elif r.status is Status.FAILED and r.kind is FailureKind.TRANSIENT:
                if attempt >= claimed.policy.attempts:
                    states[r.recipient] = R_DEAD
                    reasons[r.recipient] = f"gave up after {attempt} attempts: {r.reason}"
                elif next_at >= claimed.expires_at:
                    states[r.recipient] = R_DEAD
                    reasons[r.recipient] = (
                        f"gave up: the next attempt would be past this event's max_age: {r.reason}"
                    )
                else:
                    states[r.recipient] = R_PENDING
            else:
                states[r.recipient] = _final(r)
        state = PENDING if R_PENDING in states.values() else DONE
        self._store_results(db, claimed.id, results, states, now, reasons)
        db.execute(
            "UPDATE delivery SET state = ?, attempts = ?, next_at = ?, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ? WHERE id = ?",
            (state, attempt, next_at if state == PENDING else now, now, claimed.id),
        )
        if park is not None:
            db.execute(
                "INSERT OR REPLACE INTO parked (channel, reason, at, fingerprint) "
                "VALUES (?, ?, ?, ?)",
                (claimed.channel, park.reason or "failed", now, attempt_.fingerprint),
            )
        return state

    @staticmethod
    def _store_results(
        db: sqlite3.Connection,
        delivery_id: int,
        results: Sequence[RecipientResult],
        states: dict[str, str],
        now: float,
        reasons: dict[str, str] | None = None,
    ) -> None:
        rows = [
            (r, (reasons or {}).get(r.recipient, r.reason), r.kind.value if r.kind else None)
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
                (delivery_id, r.recipient, states[r.recipient], kind, reason, r.reply, r.hint, now)
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

    def release(self, delivery_id: int) -> None:
        """Give a lease back without an attempt (the worker is stopping)."""
        with self._write() as db:
            db.execute(
                "UPDATE delivery SET lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (delivery_id,),
            )

    # -- operations -------------------------------------------------------------------

    def unpark_changed(self, fingerprints: dict[str, str]) -> list[str]:
        """Channels whose configuration changed since they were parked go again."""
        with self._write() as db:
            gone = [
                row["channel"]
                for row in db.execute("SELECT channel, fingerprint FROM parked").fetchall()
                if fingerprints.get(row["channel"]) != row["fingerprint"]
            ]
            for channel in gone:
                db.execute("DELETE FROM parked WHERE channel = ?", (channel,))
        return gone

    def parked(self) -> dict[str, tuple[str, float]]:
        with self._read() as db:
            return {
                row["channel"]: (row["reason"], row["at"])
                for row in db.execute("SELECT * FROM parked ORDER BY channel")
            }

    def retry(
        self,
        *,
        delivery_id: int | None = None,
        dead: bool = False,
        channel: str | None = None,
        now: float | None = None,
    ) -> int:
        """Make deliveries due now again (dead recipients included); unpark channels.

        Returns how many deliveries were put back. The max_age clock starts again.
        """
        now = time.time() if now is None else now
        conditions: list[str] = []
        args: list[Any] = []
        if delivery_id is not None:
            conditions.append("d.id = ?")
            args.append(delivery_id)
        if channel is not None:
            conditions.append("d.channel = ?")
            args.append(channel)
        if dead:
            conditions.append(
                "EXISTS (SELECT 1 FROM recipient r WHERE r.delivery_id = d.id AND "
                "r.status = 'dead')"
            )
        # only what still waits or died: a delivered notification is never sent again
        conditions.append(
            "(d.state = 'pending' OR EXISTS (SELECT 1 FROM recipient r WHERE "
            "r.delivery_id = d.id AND r.status = 'dead'))"
        )
        where = " AND ".join(conditions)
        with self._write() as db:
            ids = [
                row["id"] for row in db.execute(f"SELECT d.id FROM delivery d WHERE {where}", args)
            ]
            for ident in ids:
                db.execute(
                    "UPDATE recipient SET status = 'pending' WHERE delivery_id = ? AND "
                    "status = 'dead'",
                    (ident,),
                )
                db.execute(
                    "UPDATE delivery SET state = 'pending', next_at = ?, attempts = 0, "
                    "expires_at = ? + (expires_at - (SELECT created_at FROM notification n "
                    "WHERE n.id = notification_id)), lease_owner = NULL, lease_until = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (now, now, now, ident),
                )
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

    def purge(self, older_than: float, now: float | None = None) -> int:
        """Forget finished notifications older than ``older_than`` seconds."""
        now = time.time() if now is None else now
        with self._write() as db:
            return db.execute(
                "DELETE FROM notification WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
                "delivery d WHERE d.notification_id = notification.id AND d.state = 'pending')",
                (now - older_than,),
            ).rowcount

    # -- reading ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._read() as db:
            row = db.execute(
                "SELECT "
                "(SELECT count(*) FROM delivery WHERE state = 'pending') AS pending, "
                "(SELECT count(*) FROM delivery WHERE state = 'pending' AND next_at <= ? AND "
                "channel NOT IN (SELECT channel FROM parked)) AS due, "
                "(SELECT count(*) FROM recipient WHERE status = 'dead') AS dead, "
                "(SELECT count(*) FROM recipient WHERE status = 'delivered') AS delivered",
                (time.time(),),
            ).fetchone()
            return dict(row)

    def next_due(self) -> float | None:
        with self._read() as db:
            row = db.execute(
                # a leased delivery is not due before its lease runs out
                "SELECT min(max(next_at, coalesce(lease_until, 0))) AS at FROM delivery "
                "WHERE state = 'pending' AND channel NOT IN (SELECT channel FROM parked)"
            ).fetchone()
            return row["at"] if row and row["at"] is not None else None

    def history(
        self,
        *,
        event_type: str | None = None,
        channel: str | None = None,
        recipient: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        notification_id: str | None = None,
        delivery_ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[HistoryRow]:
        """Each recipient's latest outcome, newest first; deliveries not yet tried show
        as ``pending`` with recipient ``(channel)`` (or the user's address)."""
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
                       coalesce(r.address, json_extract(d.recipients, '$[0]'), '(channel)')
                           AS address,
                       coalesce(r.status, 'pending') AS status, r.kind AS kind,
                       r.reason AS reason, r.reply AS reply, r.hint AS hint,
                       coalesce(r.attempts, 0) AS attempts,
                       coalesce(r.updated_at, d.updated_at) AS at,
                       CASE WHEN d.state = 'pending' THEN d.next_at END AS next_at
                FROM delivery d JOIN notification n ON n.id = d.notification_id
                LEFT JOIN recipient r ON r.delivery_id = d.id
            )
            WHERE {" AND ".join(conditions)}
            ORDER BY at DESC, delivery_id DESC LIMIT ?"""
        with self._read() as db:
            return [_history_row(row) for row in db.execute(query, (*args, limit))]

    def last_delivery(self) -> dict[str, HistoryRow]:
        """Per channel, its most recent successful delivery."""
        latest: dict[str, HistoryRow] = {}
        for row in self.history(status=R_DELIVERED, limit=100_000):
            latest.setdefault(row.channel, row)
        return latest

    def failures_since(self, since: float) -> list[HistoryRow]:
        """Every failed attempt since ``since`` (transient ones included), newest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT a.delivery_id, n.id AS notification_id, n.event_type, d.channel, "
                "d.target, a.address, a.status, a.kind, a.reason, a.reply, a.at, "
                "r.hint, coalesce(r.attempts, 0) AS attempts FROM attempt a "
                "JOIN delivery d ON d.id = a.delivery_id "
                "JOIN notification n ON n.id = d.notification_id "
                "LEFT JOIN recipient r ON r.delivery_id = a.delivery_id AND "
                "r.address = a.address WHERE a.status = 'failed' AND a.at >= ? "
                "ORDER BY a.at DESC",
                (since,),
            ).fetchall()
        return [_history_row(row) for row in rows]


def _history_row(row: sqlite3.Row) -> HistoryRow:
    return HistoryRow(
        delivery_id=row["delivery_id"],
        notification_id=row["notification_id"],
        event_type=row["event_type"],
        channel=row["channel"],
        target=row["target"],
        recipient=row["address"],
        status=row["status"],
        kind=row["kind"],
        reason=row["reason"],
        reply=row["reply"],
        hint=row["hint"],
        attempts=row["attempts"],
        at=row["at"],
        next_at=row["next_at"] if "next_at" in row.keys() else None,  # noqa: SIM118
    )


def _final(result: RecipientResult) -> str:
    if result.status is Status.DELIVERED:
        return R_DELIVERED
    if result.status is Status.SKIPPED:
        return R_SKIPPED
    return R_DEAD

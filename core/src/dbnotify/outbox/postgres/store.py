"""The PostgreSQL outbox: producers and workers on any number of hosts share one queue.

The tables and the semantics are the SQLite store's (:mod:`dbnotify.outbox.sqlite`),
written as PostgreSQL queues (River, Oban, good_job) write theirs: a worker claims due
deliveries with ``FOR UPDATE SKIP LOCKED``, so that workers never wait for each other
and never take the same delivery; each claim adds one to the delivery's fencing number,
and a record whose number moved on is refused. Every time is the database's clock
(``clock_timestamp()``), never a host's, so hosts whose clocks disagree still agree on
what is due. A committed group of notifications sends one ``NOTIFY``, on which idle
workers wake (:meth:`PostgresStore.listen`); polling stays as the fallback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import psycopg

from dbnotify.config.model import OutboxSettings
from dbnotify.errors import OutboxError
from dbnotify.outbox.codec import decode, encode
from dbnotify.outbox.decide import EXPIRED, decide, final, retry_only
from dbnotify.outbox.model import (
    FAILED,
    Attempt,
    Claimed,
    Counts,
    DeliveryState,
    Enqueue,
    HistoryRow,
    Parked,
    RecipientState,
)
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.outbox.postgres.database import Connection, Database, InDoubt
from dbnotify.results import CHANNEL_LABEL, Delivery, FailureKind, RecipientResult, Target

log = logging.getLogger(__name__)

PENDING, DONE = DeliveryState.PENDING.value, DeliveryState.DONE.value
R_PENDING, R_DELIVERED, R_DEAD = (
    RecipientState.PENDING.value,
    RecipientState.DELIVERED.value,
    RecipientState.DEAD.value,
)
CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"
RECONNECT = (1.0, 30.0)
"""Seconds between attempts to listen again after the connection broke: first, most."""


def _text(value: str | None) -> str | None:
    """PostgreSQL text holds no NUL; anything else from outside is stored as it is."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


class PostgresStore:
    """The outbox in the PostgreSQL database ``[outbox] url``, schema ``[outbox] schema``
    (created, or migrated, on first use)."""

    def __init__(self, settings: OutboxSettings) -> None:
        self.settings = settings
        self.database = Database(settings)
        self._in_doubt: set[str] = set()
        """Notifications whose commit was in doubt: stored again, they may be there."""
        self._records_in_doubt: set[tuple[int, int]] = set()
        """(delivery, fence) of attempts whose record's commit was in doubt: recorded
        again, they may be recorded already."""
        self._channel = f"dbnotify_{settings.schema}"
        """The NOTIFY channel: one per schema, so that two outboxes in one database do
        not wake each other's workers."""

    def __repr__(self) -> str:
        return f"PostgresStore({self.database.where!r}, schema={self.settings.schema!r})"

    async def aclose(self) -> None:
        await self.database.close()

    def q(self, sql: str) -> str:
        return self.database.q(sql)

    async def _now(self, conn: Connection, now: float | None) -> float:
        if now is not None:
            return now
        row = await (await conn.execute(CLOCK)).fetchone()
        assert row is not None
        return float(row["now"])

    async def init(self) -> int:
        """Create or migrate the tables now (``dbnotify outbox init``); returns the version
        found before (0: none)."""
        from dbnotify.outbox.postgres.database import migrate

        conn = await self.database.connect()
        try:
            return await migrate(conn, self.settings.schema, self.database.where)
        except psycopg.Error as exc:
            from dbnotify.outbox.postgres.database import explain

            raise OutboxError(explain(exc, self.database.where, self.settings.timeout)) from None
        finally:
            await conn.close()

    # -- writing ----------------------------------------------------------------------

    async def enqueue_many(
        self, items: Sequence[Enqueue], *, now: float | None = None
    ) -> list[list[int]]:
        try:
            async with self.database.transaction() as conn:
                at = await self._now(conn, now)
                ids = [await self._enqueue(conn, item, at) for item in items]
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        except InDoubt:
            self._in_doubt.update(item.notification.id for item in items)
            raise
        self._in_doubt.difference_update(item.notification.id for item in items)
        return ids

    async def _enqueue(self, conn: Connection, item: Enqueue, now: float) -> list[int]:
        notification = item.notification
        cursor = await conn.execute(
            self.q(
                "INSERT INTO {s}.notification (id, event_type, created_at, content, "
                "user_content) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING "
                "RETURNING id"
            ),
            (
                notification.id,
                notification.event_type,
                now,
                encode(notification),
                encode(item.user_notification) if item.user_notification is not None else None,
            ),
        )
        if await cursor.fetchone() is None:
            if notification.id not in self._in_doubt:
                raise OutboxError(
                    f"notification {notification.id} is in the outbox already; a notification "
                    "is stored once"
                )
            # the commit said to be in doubt went through, and this is its retry (the group
            # commit tries each notification again alone): stored twice, it would go twice
            rows = await (
                await conn.execute(
                    self.q("SELECT id FROM {s}.delivery WHERE notification_id = %s ORDER BY id"),
                    (notification.id,),
                )
            ).fetchall()
            return [int(r["id"]) for r in rows][: len(item.deliveries)]
        ids = await self._insert_deliveries(
            conn, notification.id, item.deliveries, PENDING, item.policy, now
        )
        for outcome in item.outcomes:
            (delivery,) = await self._insert_deliveries(
                conn,
                notification.id,
                [Delivery(outcome.channel, outcome.target)],
                DONE,
                item.policy,
                now,
            )
            states = {r.recipient: final(r) for r in outcome.recipients}
            await self._store_results(
                conn,
                [(delivery, r, states[r.recipient], r.reason) for r in outcome.recipients],
                now,
            )
        return ids

    async def _insert_deliveries(
        self,
        conn: Connection,
        notification_id: str,
        deliveries: Sequence[Delivery],
        state: str,
        policy: RetryPolicy,
        now: float,
    ) -> list[int]:
        if not deliveries:
            return []
        cursor = conn.cursor()
        await cursor.executemany(
            self.q(
                "INSERT INTO {s}.delivery (notification_id, channel, target, recipients, state,"
                " max_attempts, first_delay, max_delay, next_at, expires_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
            ),
            [
                (
                    notification_id,
                    d.channel,
                    d.target.value,
                    _text(json.dumps(d.recipients)) if d.recipients is not None else None,
                    state,
                    policy.attempts,
                    policy.first_delay,
                    policy.max_delay,
                    now,
                    now + policy.max_age,
                    now,
                )
                for d in deliveries
            ],
            returning=True,
        )
        ids: list[int] = []
        while True:
            row = await cursor.fetchone()
            assert row is not None
            ids.append(int(row["id"]))
            if not cursor.nextset():
                break
        return ids

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        only: Collection[int] | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        # durable: a claim lost in a server crash would be claimed again, with the same
        # fencing number, while the worker that made it still sends (and records)
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            await self._expire(conn, at)
            only_sql = " AND d.id = ANY(%(only)s)" if only is not None else ""
            rows = await (
                await conn.execute(
                    self.q(
                        "WITH due AS (SELECT d.id FROM {s}.delivery d WHERE d.state = %(pending)s"
                        " AND d.next_at <= %(now)s AND (d.lease_until IS NULL OR"
                        " d.lease_until < %(now)s) AND NOT EXISTS (SELECT 1 FROM {s}.parked p"
                        f" WHERE p.channel = d.channel){only_sql} ORDER BY d.next_at, d.id"
                        " LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
                        " UPDATE {s}.delivery d SET lease_owner = %(owner)s,"
                        " lease_until = %(until)s, fence = d.fence + 1 FROM due"
                        " WHERE d.id = due.id RETURNING d.*"
                    ),
                    {
                        "pending": PENDING,
                        "now": at,
                        "only": list(only) if only is not None else None,
                        "limit": limit,
                        "owner": owner,
                        "until": at + lease,
                    },
                )
            ).fetchall()
            if not rows:
                return []
            rows.sort(key=lambda r: (r["next_at"], r["id"]))
            ids = [r["id"] for r in rows]
            contents = {
                r["id"]: r
                for r in await (
                    await conn.execute(
                        self.q(
                            "SELECT n.id, n.content, n.user_content FROM {s}.notification n "
                            "WHERE n.id = ANY(%s)"
                        ),
                        (list({r["notification_id"] for r in rows}),),
                    )
                ).fetchall()
            }
            known: dict[int, dict[str, RecipientState]] = {}
            for r in await (
                await conn.execute(
                    self.q(
                        "SELECT delivery_id, address, status FROM {s}.recipient "
                        "WHERE delivery_id = ANY(%s)"
                    ),
                    (ids,),
                )
            ).fetchall():
                known.setdefault(r["delivery_id"], {})[r["address"]] = RecipientState(r["status"])
            return [
                _claimed(row, contents[row["notification_id"]], known.get(row["id"], {}), at)
                for row in rows
            ]

    async def _expire(self, conn: Connection, now: float) -> None:
        """Past max_age after a first attempt: dead, with the reason (as on SQLite)."""
        rows = await (
            await conn.execute(
                self.q(
                    "SELECT id FROM {s}.delivery WHERE state = %s AND attempts > 0 AND "
                    "expires_at <= %s AND (lease_until IS NULL OR lease_until < %s) "
                    "FOR UPDATE SKIP LOCKED"
                ),
                (PENDING, now, now),
            )
        ).fetchall()
        if not rows:
            return
        ids = [r["id"] for r in rows]
        marked = {
            r["delivery_id"]
            for r in await (
                await conn.execute(
                    self.q(
                        "UPDATE {s}.recipient SET status = %s, reason = %s, updated_at = %s "
                        "WHERE delivery_id = ANY(%s) AND status = %s RETURNING delivery_id"
                    ),
                    (R_DEAD, EXPIRED, now, ids, R_PENDING),
                )
            ).fetchall()
        }
        bare = [i for i in ids if i not in marked]
        if bare:
            await conn.cursor().executemany(
                self.q(
                    "INSERT INTO {s}.recipient (delivery_id, address, status, kind, reason, "
                    "attempts, updated_at) VALUES (%s, %s, %s, %s, %s, 0, %s) "
                    "ON CONFLICT (delivery_id, address) DO UPDATE SET status = excluded.status,"
                    " kind = excluded.kind, reason = excluded.reason, "
                    "updated_at = excluded.updated_at"
                ),
                [
                    (i, CHANNEL_LABEL, R_DEAD, FailureKind.TRANSIENT.value, EXPIRED, now)
                    for i in bare
                ],
            )
        await conn.execute(
            self.q(
                "UPDATE {s}.delivery SET state = %s, lease_owner = NULL, lease_until = NULL, "
                "updated_at = %s WHERE id = ANY(%s)"
            ),
            (DONE, now, ids),
        )

    async def record_many(
        self,
        attempts: Sequence[Attempt],
        *,
        now: float | None = None,
        delay: float | None = None,
    ) -> list[DeliveryState]:
        claims = {(a.claimed.id, a.claimed.fence) for a in attempts}
        try:
            states = await self._record_many(attempts, now=now, delay=delay)
        except InDoubt:
            self._records_in_doubt.update(claims)
            raise
        self._records_in_doubt.difference_update(claims)
        return states

    async def _record_many(
        self,
        attempts: Sequence[Attempt],
        *,
        now: float | None = None,
        delay: float | None = None,
    ) -> list[DeliveryState]:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            rows = {
                r["id"]: r
                for r in await (
                    await conn.execute(
                        self.q(
                            "SELECT id, fence, lease_owner, state FROM {s}.delivery "
                            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
                        ),
                        ([a.claimed.id for a in attempts],),
                    )
                ).fetchall()
            }
            states: list[DeliveryState] = []
            results: list[tuple[int, RecipientResult, RecipientState, str | None]] = []
            updates: list[tuple[Any, ...]] = []
            parks: list[tuple[Any, ...]] = []
            placeholders: list[int] = []
            for attempt in attempts:
                claimed = attempt.claimed
                row = rows.get(claimed.id)
                if row is None:
                    states.append(DeliveryState.DONE)  # purged meanwhile
                    continue
                if row["fence"] != claimed.fence:
                    states.append(DeliveryState.TAKEN_OVER)
                    continue
                if row["lease_owner"] is None and (claimed.id, claimed.fence) in (
                    self._records_in_doubt
                ):
                    # the record said to be in doubt went through (it gave the lease back),
                    # and this is its retry: recorded twice, the attempt would count twice
                    states.append(DeliveryState(row["state"]))
                    continue
                wait = claimed.policy.delay(claimed.attempts + 1) if delay is None else delay
                decision = decide(claimed, attempt.results, at, wait)
                if decision.drop_placeholder:
                    placeholders.append(claimed.id)
                results += [
                    (
                        claimed.id,
                        r,
                        decision.states[r.recipient],
                        decision.reasons.get(r.recipient, r.reason),
                    )
                    for r in attempt.results
                ]
                next_at = decision.next_at if decision.next_at is not None else at
                updates.append((decision.state.value, decision.attempts, next_at, at, claimed.id))
                if decision.park is not None:
                    parks.append((claimed.delivery.channel, decision.park, at, attempt.fingerprint))
                states.append(decision.state)
            if placeholders:
                await conn.execute(
                    self.q(
                        "DELETE FROM {s}.recipient WHERE delivery_id = ANY(%s) AND address = %s"
                    ),
                    (placeholders, CHANNEL_LABEL),
                )
            await self._store_results(conn, results, at)
            if updates:
                await conn.cursor().executemany(
                    self.q(
                        "UPDATE {s}.delivery SET state = %s, attempts = %s, next_at = %s, "
                        "lease_owner = NULL, lease_until = NULL, updated_at = %s WHERE id = %s"
                    ),
                    updates,
                )
            if parks:
                await conn.cursor().executemany(
                    self.q(
                        "INSERT INTO {s}.parked (channel, reason, at, fingerprint) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (channel) DO UPDATE SET "
                        "reason = excluded.reason, at = excluded.at, "
                        "fingerprint = excluded.fingerprint"
                    ),
                    parks,
                )
            return states

    async def _store_results(
        self,
        conn: Connection,
        results: Sequence[tuple[int, RecipientResult, RecipientState, str | None]],
        now: float,
    ) -> None:
        if not results:
            return
        rows = [
            (
                delivery_id,
                _text(r.recipient),
                state.value,
                r.kind.value if r.kind else None,
                _text(reason),
                _text(r.reply),
                _text(r.hint),
                r.status.value,
            )
            for delivery_id, r, state, reason in results
        ]
        cursor = conn.cursor()
        await cursor.executemany(
            self.q(
                "INSERT INTO {s}.recipient (delivery_id, address, status, kind, reason, reply,"
                " hint, attempts, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s) "
                "ON CONFLICT (delivery_id, address) DO UPDATE SET status = excluded.status, "
                "kind = excluded.kind, reason = excluded.reason, reply = excluded.reply, "
                "hint = excluded.hint, attempts = recipient.attempts + 1, "
                "updated_at = excluded.updated_at"
            ),
            [(*row[:7], now) for row in rows],
        )
        await cursor.executemany(
            self.q(
                "INSERT INTO {s}.attempt (delivery_id, at, address, status, kind, reason, "
                "reply) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ),
            [(row[0], now, row[1], row[7], row[3], row[4], row[5]) for row in rows],
        )

    # -- operations -------------------------------------------------------------------

    async def release(self, owner: str, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        async with self.database.transaction() as conn:
            cursor = await conn.execute(
                self.q(
                    "UPDATE {s}.delivery SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = %s AND state = %s AND id = ANY(%s)"
                ),
                (owner, PENDING, list(ids)),
            )
            if cursor.rowcount:
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
            return cursor.rowcount

    async def unpark_changed(self, fingerprints: Mapping[str, str]) -> list[str]:
        async with self.database.transaction() as conn:
            rows = await (
                await conn.execute(self.q("SELECT channel, fingerprint FROM {s}.parked FOR UPDATE"))
            ).fetchall()
            gone = [
                r["channel"] for r in rows if fingerprints.get(r["channel"]) != r["fingerprint"]
            ]
            if gone:
                await conn.execute(
                    self.q("DELETE FROM {s}.parked WHERE channel = ANY(%s)"), (gone,)
                )
            return sorted(gone)

    async def parked(self) -> dict[str, Parked]:
        async with self.database.transaction() as conn:
            rows = await (
                await conn.execute(self.q("SELECT * FROM {s}.parked ORDER BY channel"))
            ).fetchall()
            return {r["channel"]: Parked(r["reason"], r["at"]) for r in rows}

    async def retry(
        self,
        *,
        delivery_id: int | None = None,
        dead: bool = False,
        channel: str | None = None,
        now: float | None = None,
    ) -> int:
        conditions: list[str] = []
        args: list[Any] = []
        if delivery_id is not None:
            conditions.append("d.id = %s")
            args.append(delivery_id)
        if channel is not None:
            conditions.append("d.channel = %s")
            args.append(channel)
        has_dead = (
            "EXISTS (SELECT 1 FROM {s}.recipient r WHERE r.delivery_id = d.id AND r.status = %s)"
        )
        if dead:
            conditions.append(has_dead)
            args.append(R_DEAD)
        conditions.append(f"(d.state = %s OR {has_dead})")
        args += [PENDING, R_DEAD]
        where = " AND ".join(conditions)
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            rows = await (
                await conn.execute(
                    self.q(
                        f"SELECT d.id, d.channel FROM {{s}}.delivery d WHERE {where} FOR UPDATE"
                    ),
                    args,
                )
            ).fetchall()
            ids = [r["id"] for r in rows]
            if ids:
                await conn.execute(
                    self.q(
                        "UPDATE {s}.recipient SET status = %s WHERE delivery_id = ANY(%s) "
                        "AND status = %s"
                    ),
                    (R_PENDING, ids, R_DEAD),
                )
                await conn.execute(
                    self.q(
                        "UPDATE {s}.delivery d SET state = %s, next_at = %s, attempts = 0, "
                        "expires_at = %s + (d.expires_at - n.created_at), lease_owner = NULL, "
                        "lease_until = NULL, updated_at = %s FROM {s}.notification n "
                        "WHERE n.id = d.notification_id AND d.id = ANY(%s)"
                    ),
                    (PENDING, at, at, at, ids),
                )
            channels = {r["channel"] for r in rows}
            if channel is not None:
                channels.add(channel)
            if channels:
                await conn.execute(
                    self.q("DELETE FROM {s}.parked WHERE channel = ANY(%s)"), (list(channels),)
                )
            if ids:
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
            return len(ids)

    async def purge(self, older_than: float, *, now: float | None = None) -> int:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            cursor = await conn.execute(
                self.q(
                    "DELETE FROM {s}.notification n WHERE n.created_at < %s AND NOT EXISTS "
                    "(SELECT 1 FROM {s}.delivery d WHERE d.notification_id = n.id AND "
                    "d.state = %s)"
                ),
                (at - older_than, PENDING),
            )
            return cursor.rowcount

    # -- reading ----------------------------------------------------------------------

    async def counts(self, *, now: float | None = None) -> Counts:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            row = await (
                await conn.execute(
                    self.q(
                        "SELECT "
                        "(SELECT count(*) FROM {s}.delivery WHERE state = %(p)s) AS pending, "
                        "(SELECT count(*) FROM {s}.delivery d WHERE state = %(p)s AND "
                        "next_at <= %(now)s AND NOT EXISTS (SELECT 1 FROM {s}.parked p "
                        "WHERE p.channel = d.channel)) AS due, "
                        "(SELECT count(*) FROM {s}.recipient WHERE status = %(dead)s) AS dead, "
                        "(SELECT count(*) FROM {s}.recipient WHERE status = %(ok)s) AS delivered"
                    ),
                    {"p": PENDING, "now": at, "dead": R_DEAD, "ok": R_DELIVERED},
                )
            ).fetchone()
            assert row is not None
            return Counts(
                pending=row["pending"], due=row["due"], dead=row["dead"], delivered=row["delivered"]
            )

    async def next_due(self) -> float | None:
        async with self.database.transaction() as conn:
            row = await (
                await conn.execute(
                    self.q(
                        "SELECT min(greatest(next_at, coalesce(lease_until, 0))) AS at "
                        "FROM {s}.delivery d WHERE state = %s AND NOT EXISTS "
                        "(SELECT 1 FROM {s}.parked p WHERE p.channel = d.channel)"
                    ),
                    (PENDING,),
                )
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
        conditions: list[str] = ["TRUE"]
        args: dict[str, Any] = {
            "label": CHANNEL_LABEL,
            "rp": R_PENDING,
            "p": PENDING,
            "limit": limit,
        }
        for column, value in (
            ("event_type", event_type),
            ("channel", channel),
            ("address", recipient),
            ("status", str(status) if status is not None else None),
            ("notification_id", notification_id),
        ):
            if value is not None:
                conditions.append(f"{column} = %({column})s")
                args[column] = value
        if since is not None:
            conditions.append("at >= %(since)s")
            args["since"] = since
        if until is not None:
            conditions.append("at < %(until)s")
            args["until"] = until
        if delivery_ids is not None:
            conditions.append("delivery_id = ANY(%(ids)s)")
            args["ids"] = list(delivery_ids)
        query = self.q(
            """
            SELECT * FROM (
                SELECT d.id AS delivery_id, n.id AS notification_id, n.event_type AS event_type,
                       d.channel AS channel, d.target AS target,
                       coalesce(r.address, d.recipients::json ->> 0, %(label)s) AS address,
                       coalesce(r.status, %(rp)s) AS status, r.kind AS kind,
                       r.reason AS reason, r.reply AS reply, r.hint AS hint,
                       coalesce(r.attempts, 0) AS attempts,
                       coalesce(r.updated_at, d.updated_at) AS at,
                       CASE WHEN d.state = %(p)s THEN d.next_at END AS next_at,
                       CASE WHEN d.state = %(p)s THEN d.lease_owner END AS held_by,
                       CASE WHEN d.state = %(p)s THEN d.lease_until END AS held_until
                FROM {s}.delivery d JOIN {s}.notification n ON n.id = d.notification_id
                LEFT JOIN {s}.recipient r ON r.delivery_id = d.id
            ) AS latest
            """
            f"WHERE {' AND '.join(conditions)} "
            "ORDER BY at DESC, delivery_id DESC LIMIT %(limit)s"
        )
        async with self.database.transaction() as conn:
            rows = await (await conn.execute(query, args)).fetchall()
        return [_history_row(r) for r in rows]

    async def last_delivery(self) -> dict[str, HistoryRow]:
        latest: dict[str, HistoryRow] = {}
        for row in await self.history(status=RecipientState.DELIVERED, limit=100_000):
            latest.setdefault(row.channel, row)
        return latest

    async def failures_since(self, since: float) -> list[HistoryRow]:
        async with self.database.transaction() as conn:
            rows = await (
                await conn.execute(
                    self.q(
                        "SELECT a.delivery_id, n.id AS notification_id, n.event_type, "
                        "d.channel, d.target, a.address, a.status, a.kind, a.reason, a.reply, "
                        "a.at, r.hint, coalesce(r.attempts, 0) AS attempts, NULL AS next_at "
                        "FROM {s}.attempt a JOIN {s}.delivery d ON d.id = a.delivery_id "
                        "JOIN {s}.notification n ON n.id = d.notification_id "
                        "LEFT JOIN {s}.recipient r ON r.delivery_id = a.delivery_id AND "
                        "r.address = a.address WHERE a.status = %s AND a.at >= %s "
                        "ORDER BY a.at DESC, a.id DESC"
                    ),
                    (FAILED, since),
                )
            ).fetchall()
        return [_history_row(r) for r in rows]

    # -- waking -----------------------------------------------------------------------

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another process commits work (``NOTIFY``), until
        cancelled; returns at once in poll-only mode (``[outbox] listen = false``). A
        broken connection is said once, then listened on again with a growing pause;
        meanwhile the worker polls."""
        if not self.settings.listen:
            return
        pause, broken = RECONNECT[0], False
        while True:
            try:
                conn = await self.database.connect()
                try:
                    await conn.execute(f'LISTEN "{self._channel}"')
                    if broken:
                        log.info("outbox: listening to %s again", self.database.where)
                    pause, broken = RECONNECT[0], False
                    wake()  # whatever was committed while nobody listened
                    async for _ in conn.notifies():
                        wake()
                finally:
                    await conn.close()
            except (OutboxError, psycopg.Error) as exc:
                if not broken:
                    log.warning(
                        "outbox: lost the LISTEN connection (%s); polling until it is back",
                        " ".join(str(exc).split()),
                    )
                broken = True
                wake()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT[1])


def _claimed(
    row: Mapping[str, Any],
    content: Mapping[str, Any],
    known: Mapping[str, RecipientState],
    now: float,
) -> Claimed:
    target = Target(row["target"])
    text = content["user_content"] if target is Target.USER else content["content"]
    recipients = json.loads(row["recipients"]) if row["recipients"] else None
    return Claimed(
        id=row["id"],
        notification=decode(text or content["content"]),
        delivery=Delivery(
            row["channel"], target, tuple(recipients) if recipients is not None else None
        ),
        retry_only=retry_only(known),
        attempts=row["attempts"],
        policy=RetryPolicy(
            row["max_attempts"], row["first_delay"], row["max_delay"], row["expires_at"] - now
        ),
        expires_at=row["expires_at"],
        fence=row["fence"],  # RETURNING gives the row as the claim left it
    )


def _history_row(row: Mapping[str, Any]) -> HistoryRow:
    status = row["status"]
    return HistoryRow(
        delivery_id=row["delivery_id"],
        notification_id=row["notification_id"],
        event_type=row["event_type"],
        channel=row["channel"],
        target=row["target"],
        recipient=row["address"],
        status=FAILED if status == FAILED else RecipientState(status),
        kind=row["kind"],
        reason=row["reason"],
        reply=row["reply"],
        hint=row["hint"],
        attempts=row["attempts"],
        at=row["at"],
        next_at=row["next_at"],
        held_by=row.get("held_by"),
        held_until=row.get("held_until"),
    )

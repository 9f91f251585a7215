"""The PostgreSQL outbox: producers and workers on any number of hosts share one queue.

The tables and the semantics are the SQLite store's (:mod:`dbnotify.outbox.sqlite`),
written as PostgreSQL queues (River, Oban, good_job) write theirs: a worker claims due
deliveries with ``FOR UPDATE SKIP LOCKED``, so that workers never wait for each other
and never take the same delivery; each claim adds one to the delivery's fencing number,
and a record whose number moved on is refused. Every time is the database's clock
(``clock_timestamp()``), never a host's, so hosts whose clocks disagree still agree on
what is due. A committed group of notifications sends one ``NOTIFY``, on which idle
workers wake (:meth:`PostgresStore.listen`); polling stays as the fallback.

A group's rows go as arrays, one per column (``unnest``), in binary (``%b``): psycopg
writes a text array in Python, escaping each of a notification's JSON quotes with a
regular expression's callback: 16-19 % of a one-worker burst's samples (py-spy).
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
from dbnotify.outbox import rows as stored
from dbnotify.outbox.codec import encode
from dbnotify.outbox.decide import (
    EXPIRED,
    decide,
    final,
    held_until,
    repeat_reason,
)
from dbnotify.outbox.defaults import GROUP_LIMIT, POSTGRES_CONCURRENCY, WRITE_GROUP
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
from dbnotify.outbox.postgres.database import Connection, Database, InDoubt
from dbnotify.results import CHANNEL_LABEL, Delivery, FailureKind, RecipientResult

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

    loop_bound = True
    """A pool per event loop: closed with the loop's last use (``notify_sync``)."""
    batch_claims = True
    write_group = WRITE_GROUP
    worker_concurrency = POSTGRES_CONCURRENCY

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
                ids = await self._enqueue(conn, items, at)
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        except InDoubt:
            self._in_doubt.update(item.notification.id for item in items)
            raise
        self._in_doubt.difference_update(item.notification.id for item in items)
        return ids

    async def _enqueue(
        self, conn: Connection, items: Sequence[Enqueue], now: float
    ) -> list[list[int]]:
        """The group's notifications in one statement, their deliveries in another: a
        burst's commit costs a few round trips, not two per notification."""
        first: dict[str, Enqueue] = {}
        for item in items:
            first.setdefault(item.notification.id, item)
        cursor = await conn.execute(
            self.q(
                "INSERT INTO {s}.notification (id, event_type, created_at, content, "
                "user_content) SELECT t.id, t.event_type, %s, t.content, t.user_content "
                "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) "
                "AS t(id, event_type, content, user_content) "
                "ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            (
                now,
                list(first),
                [i.notification.event_type for i in first.values()],
                [encode(i.notification) for i in first.values()],
                [
                    encode(i.user_notification) if i.user_notification is not None else None
                    for i in first.values()
                ],
            ),
        )
        stored = {r["id"] for r in await cursor.fetchall()}
        new = [
            item
            for item in items
            if first.get(item.notification.id) is item and item.notification.id in stored
        ]
        # a job's failure told within repeat is counted, not sent (decided one by one: a
        # problem's rows are few, and a later one must see an earlier one's)
        reasons = {
            id(item): [
                await self._repeat(conn, hold, d, now) if (hold := item.hold(i)) else None
                for i, d in enumerate(item.deliveries)
            ]
            for item in new
        }
        ids = iter(
            await self._insert_deliveries(
                conn,
                [
                    (item.notification.id, d, PENDING, item.policy, item.hold(i))
                    for item in new
                    for i, d in enumerate(item.deliveries)
                    if reasons[id(item)][i] is None
                ],
                now,
            )
        )
        fresh = {
            id(item): [
                next(ids)
                if reason is None
                else await self._counted(conn, item, item.deliveries[i], reason, now)
                for i, reason in enumerate(reasons[id(item)])
            ]
            for item in new
        }
        for item in new:
            for outcome in item.outcomes:
                (delivery,) = await self._insert_deliveries(
                    conn,
                    [
                        (
                            item.notification.id,
                            Delivery(outcome.channel, outcome.target),
                            DONE,
                            item.policy,
                            None,
                        )
                    ],
                    now,
                )
                states = {r.recipient: final(r) for r in outcome.recipients}
                await self._store_results(
                    conn,
                    [(delivery, r, states[r.recipient], r.reason) for r in outcome.recipients],
                    now,
                )
        return [
            fresh[id(item)] if id(item) in fresh else await self._stored_before(conn, item)
            for item in items
        ]

    async def _counted(
        self, conn: Connection, item: Enqueue, delivery: Delivery, reason: str, now: float
    ) -> int:
        """A failure counted, not sent: stored as skipped, with why, for the history."""
        (ident,) = await self._insert_deliveries(
            conn, [(item.notification.id, delivery, DONE, item.policy, None)], now
        )
        await self._store_results(
            conn,
            [
                (ident, RecipientResult.skipped(label, reason), RecipientState.SKIPPED, reason)
                for label in delivery.labels()
            ],
            now,
        )
        return ident

    async def _stored_before(self, conn: Connection, item: Enqueue) -> list[int]:
        """A notification that was in the outbox already: refused, unless it is the
        retry of a commit that was in doubt."""
        notification = item.notification
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

    async def _insert_deliveries(
        self,
        conn: Connection,
        rows: Sequence[tuple[str, Delivery, str, RetryPolicy, Hold | None]],
        now: float,
    ) -> list[int]:
        """Insert (notification id, delivery, state, policy, hold) rows in one statement;
        their ids, in the same order (each id drawn in the rows' order, then the rows
        stored). A held row is due when its group is (:meth:`_held_until`)."""
        if not rows:
            return []
        holds: list[Hold | None] = []
        queued: dict[tuple[str, str], int] = {}  # this statement's own, for rate limits
        for _, d, _, _, hold in rows:
            if hold is not None and not await self._over_rate(conn, hold, d, now, queued):
                hold = None
            if hold is None:
                key = (d.channel, d.target.value)
                queued[key] = queued.get(key, 0) + 1
            holds.append(hold)
        due = [await self._held_until(conn, h, now) if h is not None else now for h in holds]
        cursor = await conn.execute(
            self.q(
                "WITH src AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence("
                "'{s}.delivery', 'id')) AS id, t.* FROM unnest(%(notification)b::text[], "
                "%(channel)b::text[], %(target)b::text[], %(recipients)b::text[], "
                "%(state)b::text[], %(max_attempts)b::int[], %(first_delay)b::float8[], "
                "%(max_delay)b::float8[], %(expires_at)b::float8[], %(next_at)b::float8[], "
                "%(group_key)b::text[], %(problem)b::text[]) WITH ORDINALITY AS "
                "t(notification_id, channel, target, recipients, state, max_attempts, "
                "first_delay, max_delay, expires_at, next_at, group_key, problem, ord)), "
                "stored AS (INSERT INTO {s}.delivery (id, notification_id, channel, target, "
                "recipients, state, max_attempts, first_delay, max_delay, next_at, "
                "expires_at, updated_at, group_key, problem) SELECT id, notification_id, "
                "channel, target, recipients, state, max_attempts, first_delay, max_delay, "
                "next_at, expires_at, %(now)s, group_key, problem FROM src) "
                "SELECT id FROM src ORDER BY ord"
            ),
            {
                "notification": [r[0] for r in rows],
                "channel": [r[1].channel for r in rows],
                "target": [r[1].target.value for r in rows],
                "recipients": [
                    _text(json.dumps(r[1].recipients)) if r[1].recipients is not None else None
                    for r in rows
                ],
                "state": [r[2] for r in rows],
                "max_attempts": [r[3].attempts for r in rows],
                "first_delay": [r[3].first_delay for r in rows],
                "max_delay": [r[3].max_delay for r in rows],
                "expires_at": [now + r[3].max_age for r in rows],
                "next_at": due,
                "group_key": [h.group if h is not None else None for h in holds],
                "problem": [
                    h.problem.key if h is not None and h.problem is not None else None
                    for h in holds
                ],
                "now": now,
            },
        )
        return [int(r["id"]) for r in await cursor.fetchall()]

    async def _repeat(
        self, conn: Connection, hold: Hold, delivery: Delivery, now: float
    ) -> str | None:
        """As the SQLite store: counted while its problem's last message is within
        ``repeat`` and none waits to go; else ``None``, the problem opened or counted."""
        problem = hold.problem
        if problem is None:
            return None
        row = await (
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.problem AS p (key, job, event_type, channel, target, "
                    "recipients, opened_at, count) VALUES (%s, %s, %s, %s, %s, %s, %s, 1) "
                    "ON CONFLICT (key) DO UPDATE SET count = p.count + 1 "
                    "RETURNING p.count, p.opened_at"
                ),
                (
                    problem.key,
                    _text(problem.job),
                    problem.event_type,
                    delivery.channel,
                    delivery.target.value,
                    _text(json.dumps(delivery.recipients))
                    if delivery.recipients is not None
                    else None,
                    now,
                ),
            )
        ).fetchone()
        assert row is not None
        if row["count"] == 1:
            return None
        found = await (
            await conn.execute(
                self.q(
                    "SELECT EXISTS (SELECT 1 FROM {s}.delivery WHERE problem = %(k)s AND "
                    "state = %(p)s) AS waiting, (SELECT max(updated_at) FROM {s}.delivery "
                    "WHERE problem = %(k)s AND state = %(d)s AND updated_at >= %(since)s) AS last"
                ),
                {"k": problem.key, "p": PENDING, "d": DONE, "since": row["opened_at"]},
            )
        ).fetchone()
        assert found is not None
        return repeat_reason(
            problem,
            now,
            waiting=found["waiting"],
            last=found["last"],
            count=row["count"],
            since=row["opened_at"],
        )

    async def resolve(self, job: str, *, now: float | None = None) -> list[OpenProblem]:
        async with self.database.transaction() as conn:
            rows = await (
                await conn.execute(
                    self.q("DELETE FROM {s}.problem WHERE job = %s RETURNING *"), (job,)
                )
            ).fetchall()
        return [stored.open_problem(r) for r in sorted(rows, key=lambda r: r["key"])]

    async def _over_rate(
        self,
        conn: Connection,
        hold: Hold,
        delivery: Delivery,
        now: float,
        queued: Mapping[tuple[str, str], int],
    ) -> bool:
        """Whether a hold stands: always, but for a channel's rate limit only when the
        channel queued that many deliveries (not held ones) in the last ``wait``, this
        statement's own (``queued``) included."""
        if hold.under is None:
            return True
        row = await (
            await conn.execute(
                self.q(
                    "SELECT count(*) AS n FROM {s}.delivery d JOIN {s}.notification n ON "
                    "n.id = d.notification_id WHERE d.channel = %s AND d.target = %s AND "
                    "d.group_key IS NULL AND n.created_at > %s"
                ),
                (delivery.channel, delivery.target.value, now - hold.wait),
            )
        ).fetchone()
        assert row is not None
        mine = queued.get((delivery.channel, delivery.target.value), 0)
        return int(row["n"]) + mine >= hold.under

    async def _held_until(self, conn: Connection, hold: Hold, now: float) -> float:
        """When a delivery held for its group is due (:func:`held_until`)."""
        row = await (
            await conn.execute(
                self.q(
                    "SELECT (SELECT min(next_at) FROM {s}.delivery WHERE group_key = %(g)s AND "
                    "state = %(p)s AND attempts = 0 AND (lease_until IS NULL OR "
                    "lease_until < %(now)s)) AS open_at, (SELECT max(updated_at) FROM "
                    "{s}.delivery WHERE group_key = %(g)s AND state = %(d)s) AS last"
                ),
                {"g": hold.group, "p": PENDING, "d": DONE, "now": now},
            )
        ).fetchone()
        assert row is not None
        return held_until(hold, now, row["open_at"], row["last"])

    async def _group_members(
        self,
        conn: Connection,
        rows: Sequence[Mapping[str, Any]],
        owner: str,
        until: float,
        now: float,
    ) -> list[dict[str, Any]]:
        """Claim the other pending deliveries of the groups among ``rows``, due or not
        (a group goes as one message), in the claim's own shape."""
        members: list[dict[str, Any]] = []
        for group in dict.fromkeys(r["group_key"] for r in rows if r["group_key"] is not None):
            count = sum(1 for r in rows if r["group_key"] == group)
            members += await (
                await conn.execute(
                    self.q(
                        "WITH more AS (SELECT d.id FROM {s}.delivery d WHERE d.group_key = "
                        "%(g)s AND d.state = %(p)s AND (d.lease_until IS NULL OR "
                        "d.lease_until < %(now)s) AND NOT EXISTS (SELECT 1 FROM {s}.parked p "
                        "WHERE p.channel = d.channel) ORDER BY d.next_at, d.id LIMIT %(limit)s "
                        "FOR UPDATE SKIP LOCKED), claimed AS (UPDATE {s}.delivery d SET "
                        "lease_owner = %(owner)s, lease_until = %(until)s, fence = d.fence + 1 "
                        "FROM more WHERE d.id = more.id RETURNING d.*) "
                        "SELECT c.*, n.content, n.user_content, (SELECT json_agg("
                        "json_build_array(r.address, r.status)) FROM {s}.recipient r WHERE "
                        "r.delivery_id = c.id) AS known FROM claimed c JOIN {s}.notification n "
                        "ON n.id = c.notification_id ORDER BY c.next_at, c.id"
                    ),
                    {
                        "g": group,
                        "p": PENDING,
                        "now": now,
                        "limit": max(0, GROUP_LIMIT - count),
                        "owner": owner,
                        "until": until,
                    },
                )
            ).fetchall()
        return members

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
            # the claim, each delivery's content and its recipients' states: one statement
            rows = await (
                await conn.execute(
                    self.q(
                        "WITH due AS (SELECT d.id FROM {s}.delivery d WHERE d.state = %(pending)s"
                        " AND d.next_at <= %(now)s AND (d.lease_until IS NULL OR"
                        " d.lease_until < %(now)s) AND NOT EXISTS (SELECT 1 FROM {s}.parked p"
                        f" WHERE p.channel = d.channel){only_sql} ORDER BY d.next_at, d.id"
                        " LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
                        " claimed AS (UPDATE {s}.delivery d SET lease_owner = %(owner)s,"
                        " lease_until = %(until)s, fence = d.fence + 1 FROM due"
                        " WHERE d.id = due.id RETURNING d.*)"
                        " SELECT c.*, n.content, n.user_content, (SELECT json_agg(json_build_array("
                        "r.address, r.status)) FROM {s}.recipient r WHERE r.delivery_id = c.id)"
                        " AS known FROM claimed c JOIN {s}.notification n"
                        " ON n.id = c.notification_id ORDER BY c.next_at, c.id"
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
            rows += await self._group_members(conn, rows, owner, at + lease, at)
            return [
                stored.claimed(
                    row,
                    {address: RecipientState(status) for address, status in row["known"] or ()},
                    at,
                    row["fence"],  # RETURNING gives the row as the claim left it
                )
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
            if len({u[-1] for u in updates}) < len(updates):  # one delivery twice: in turn
                await conn.cursor().executemany(
                    self.q(
                        "UPDATE {s}.delivery SET state = %s, attempts = %s, next_at = %s, "
                        "lease_owner = NULL, lease_until = NULL, updated_at = %s WHERE id = %s"
                    ),
                    updates,
                )
            elif updates:  # one statement for the group, not one per delivery
                await conn.execute(
                    self.q(
                        "UPDATE {s}.delivery d SET state = u.state, attempts = u.attempts, "
                        "next_at = u.next_at, lease_owner = NULL, lease_until = NULL, "
                        "updated_at = %s FROM unnest(%b::text[], %b::int[], %b::float8[], "
                        "%b::bigint[]) AS u(state, attempts, next_at, id) WHERE d.id = u.id"
                    ),
                    (
                        at,
                        [u[0] for u in updates],
                        [u[1] for u in updates],
                        [u[2] for u in updates],
                        [u[4] for u in updates],
                    ),
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
        if len({row[:2] for row in rows}) == len(rows):
            # one statement for the group: each recipient's state, and the attempt's row
            await conn.execute(
                self.q(
                    "WITH t AS MATERIALIZED (SELECT * FROM unnest(%(delivery)b::bigint[], "
                    "%(address)b::text[], %(status)b::text[], %(kind)b::text[], "
                    "%(reason)b::text[], %(reply)b::text[], %(hint)b::text[], "
                    "%(attempt)b::text[]) WITH ORDINALITY AS t(delivery_id, address, status, "
                    "kind, reason, reply, hint, attempt, ord)), "
                    "r AS (INSERT INTO {s}.recipient (delivery_id, address, status, kind, "
                    "reason, reply, hint, attempts, updated_at) SELECT delivery_id, address, "
                    "status, kind, reason, reply, hint, 1, %(now)s FROM t "
                    "ON CONFLICT (delivery_id, address) DO UPDATE SET status = excluded.status,"
                    " kind = excluded.kind, reason = excluded.reason, reply = excluded.reply, "
                    "hint = excluded.hint, attempts = recipient.attempts + 1, "
                    "updated_at = excluded.updated_at) "
                    "INSERT INTO {s}.attempt (delivery_id, at, address, status, kind, reason, "
                    "reply) SELECT delivery_id, %(now)s, address, attempt, kind, reason, reply "
                    "FROM t ORDER BY ord"
                ),
                {
                    "delivery": [row[0] for row in rows],
                    "address": [row[1] for row in rows],
                    "status": [row[2] for row in rows],
                    "kind": [row[3] for row in rows],
                    "reason": [row[4] for row in rows],
                    "reply": [row[5] for row in rows],
                    "hint": [row[6] for row in rows],
                    "attempt": [row[7] for row in rows],
                    "now": now,
                },
            )
            return
        # a recipient twice in the group (an address listed twice): one row at a time, as
        # each counts as an attempt of its own
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

    async def release(self, owner: str, ids: Sequence[int], *, after: float = 0.0) -> int:
        if not ids:
            return 0
        async with self.database.transaction() as conn:
            at = await self._now(conn, None)
            cursor = await conn.execute(
                self.q(
                    "UPDATE {s}.delivery SET lease_owner = NULL, lease_until = NULL, "
                    "next_at = greatest(next_at, %s) "
                    "WHERE lease_owner = %s AND state = %s AND id = ANY(%s)"
                ),
                (at + after, owner, PENDING, list(ids)),
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

    async def mute(
        self,
        scope: MuteScope,
        value: str,
        *,
        duration: float,
        reason: str = "",
        now: float | None = None,
    ) -> Mute:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            row = await (
                await conn.execute(
                    self.q(
                        "INSERT INTO {s}.mute (scope, value, reason, since, until) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING *"
                    ),
                    (scope.value, _text(value), _text(reason), at, at + duration),
                )
            ).fetchone()
            assert row is not None
            return stored.mute(row)

    async def mutes(self, *, now: float | None = None) -> list[Mute]:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            rows = await (
                await conn.execute(
                    self.q("SELECT * FROM {s}.mute WHERE until > %s ORDER BY id"), (at,)
                )
            ).fetchall()
            return [stored.mute(r) for r in rows]

    async def unmute(self, mute_id: int, *, now: float | None = None) -> Mute | None:
        async with self.database.transaction() as conn:
            at = await self._now(conn, now)
            row = await (
                await conn.execute(
                    self.q(
                        "UPDATE {s}.mute SET until = %s WHERE id = %s AND until > %s RETURNING *"
                    ),
                    (at, mute_id, at),
                )
            ).fetchone()
            return stored.mute(row) if row is not None else None

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
        return [stored.history_row(r) for r in rows]

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
        return [stored.history_row(r) for r in rows]

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

"""``dbnotify outbox copy``: a SQLite outbox's work and history moved into PostgreSQL, once.

Everything goes in one PostgreSQL transaction, all or nothing: notifications, deliveries
(pending, parked, dead and done), recipients, attempts and parked channels, each row as
it is in the file, ids included, so that ``dbnotify retry 17`` still means the same
delivery; the identity sequences are then set past the highest id. The target must hold
no notification (a second run copies nothing twice), and the file must hold no lease
that has not run out: a lease belongs to a worker of the old outbox, which may be
sending right now (stop the workers first). Leases are not copied.

The file is read in one read transaction (a consistent snapshot, writers not blocked);
it is opened as the SQLite store opens it, so a file of an older dbnotify is upgraded
first. Nothing is deleted from it: once the configuration names the PostgreSQL outbox,
the file is history.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg

from dbnotify.config.model import OutboxSettings
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import DeliveryState, RecipientState
from dbnotify.outbox.postgres.database import Connection, Database, explain, migrate
from dbnotify.outbox.sqlite.database import Database as SQLiteDatabase
from dbnotify.outbox.sqlite.database import explain as sqlite_explain

TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("notification", ("id", "event_type", "created_at", "content", "user_content")),
    (
        "delivery",
        (
            "id",
            "notification_id",
            "channel",
            "target",
            "recipients",
            "state",
            "attempts",
            "max_attempts",
            "first_delay",
            "max_delay",
            "next_at",
            "expires_at",
            "fence",
            "updated_at",
            "group_key",
            "problem",
        ),
    ),
    (
        "recipient",
        (
            "delivery_id",
            "address",
            "status",
            "kind",
            "reason",
            "reply",
            "hint",
            "attempts",
            "updated_at",
        ),
    ),
    ("attempt", ("id", "delivery_id", "at", "address", "status", "kind", "reason", "reply")),
    ("parked", ("channel", "reason", "at", "fingerprint")),
    ("mute", ("id", "scope", "value", "reason", "since", "until")),
    (
        "problem",
        ("key", "job", "event_type", "channel", "target", "recipients", "opened_at", "count"),
    ),
)
"""What is copied, in the order the foreign keys need; the lease columns are left out."""

SEQUENCES = ("delivery", "attempt", "mute")
"""The tables whose ids come from an identity sequence."""


@attrs.frozen
class Copied:
    """What :func:`copy_outbox` copied."""

    notifications: int
    deliveries: int
    pending: int
    """Deliveries still to be sent (parked channels' included)."""
    dead: int
    """Recipients that gave up."""
    recipients: int
    attempts: int
    parked: int
    """Parked channels."""


class Refused(OutboxError):
    """Nothing was copied: the target is not empty, or workers still hold leases."""


def _clean(value: Any) -> Any:
    """PostgreSQL text holds no NUL; SQLite's may."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _read(path: str, busy_timeout: float, now: float) -> dict[str, list[tuple[Any, ...]]]:
    """Every row to copy, read in one transaction; refuses a file with live leases."""
    if not Path(path).is_file():
        raise Refused(f"there is no SQLite outbox at {path} (nothing to copy); check [outbox] path")
    source = SQLiteDatabase(path, busy_timeout=busy_timeout)
    try:
        with source.read() as db:
            db.execute("BEGIN")  # one snapshot for every table (WAL: writers go on)
            try:
                leased, until = db.execute(
                    "SELECT count(*), max(lease_until) FROM delivery WHERE state = ? "
                    "AND lease_until IS NOT NULL AND lease_until >= ?",
                    (DeliveryState.PENDING.value, now),
                ).fetchone()
                if leased:
                    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
                    raise Refused(
                        f"{leased} {'delivery is' if leased == 1 else 'deliveries are'} "
                        f"leased to a worker of {path} (until {when}): workers are still "
                        "running; stop the workers first (and whatever sends to this "
                        "outbox), then copy again; a worker that was killed leaves its "
                        "lease until then"
                    )
                return {
                    table: [
                        tuple(_clean(v) for v in row)
                        for row in db.execute(
                            f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"
                        )
                    ]
                    for table, columns in TABLES
                }
            finally:
                db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise OutboxError(sqlite_explain(exc, path)) from None
    finally:
        source.close()


async def _write(
    conn: Connection, database: Database, rows: dict[str, list[tuple[Any, ...]]]
) -> None:
    q = database.q
    async with conn.transaction():
        # no other copy (nor a producer) writes a notification until this one commits
        await conn.execute(q("LOCK TABLE {s}.notification IN EXCLUSIVE MODE"))
        row = await (await conn.execute(q("SELECT count(*) AS n FROM {s}.notification"))).fetchone()
        held = int(row["n"]) if row else 0
        if held:
            raise Refused(
                f"the PostgreSQL outbox {database.where} (schema {database.schema}) holds "
                f"{held} notification{'' if held == 1 else 's'} already; copy goes into an "
                "empty outbox only (nothing was copied)"
            )
        for table, columns in TABLES:
            if not rows[table]:
                continue
            if table == "parked":  # a channel left parked in an empty outbox: the file's wins
                await conn.execute(
                    q("DELETE FROM {s}.parked WHERE channel = ANY(%s)"),
                    ([r[0] for r in rows[table]],),
                )
            async with conn.cursor().copy(
                q(f"COPY {{s}}.{table} ({', '.join(columns)}) FROM STDIN")
            ) as copy:
                for values in rows[table]:
                    await copy.write_row(values)
        for table in SEQUENCES:
            if rows[table]:
                await conn.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                    (q("{s}." + table), max(r[0] for r in rows[table])),
                )


async def copy_outbox(path: str, settings: OutboxSettings, *, now: float | None = None) -> Copied:
    """Copy the SQLite outbox at ``path`` into the (empty) PostgreSQL outbox ``settings``
    names, creating its tables if needed; one transaction. Raises :class:`Refused` when
    the target holds notifications or the file live leases, :class:`OutboxError` when
    either database fails; nothing is copied then."""
    rows = _read(path, settings.busy_timeout, time.time() if now is None else now)
    database = Database(settings)
    conn = await database.connect()
    try:
        await migrate(conn, settings.schema, database.where)
        await _write(conn, database, rows)
    except psycopg.Error as exc:
        raise OutboxError(explain(exc, database.where, settings.timeout)) from None
    finally:
        await conn.close()
    return _counted(rows)


def _counted(rows: dict[str, list[tuple[Any, ...]]]) -> Copied:
    def where(table: str, column: str, value: str) -> Sequence[tuple[Any, ...]]:
        index = dict(TABLES)[table].index(column)
        return [r for r in rows[table] if r[index] == value]

    return Copied(
        notifications=len(rows["notification"]),
        deliveries=len(rows["delivery"]),
        pending=len(where("delivery", "state", DeliveryState.PENDING.value)),
        dead=len(where("recipient", "status", RecipientState.DEAD.value)),
        recipients=len(rows["recipient"]),
        attempts=len(rows["attempt"]),
        parked=len(rows["parked"]),
    )

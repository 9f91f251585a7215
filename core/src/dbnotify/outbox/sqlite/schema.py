"""The outbox file's schema, numbered, and the steps that bring an older file up to date.

The version is SQLite's own ``PRAGMA user_version`` in the file's header: 0 for a new
file and for a file written by dbnotify 0.1.0 (which set none), N once migration N is
in. Opening a file applies every migration it lacks, in one transaction, so that a file
is never left half-upgraded; a file newer than this code is refused, never written to.
Outbox files outlive upgrades (retention, several processes per file), so a change to
the schema is a new migration here, never an edit of an old one.
"""

from __future__ import annotations

import sqlite3

import attrs

from dbnotify.errors import OutboxError
from dbnotify.outbox import wording

V1 = """
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
"""The schema of dbnotify 0.1.0, which created it with ``IF NOT EXISTS`` on every open
and left ``user_version`` at 0: applied to such a file, it changes nothing."""


@attrs.frozen
class Migration:
    """One step: the SQL that takes a file from ``version - 1`` to ``version``."""

    version: int
    release: str
    """The dbnotify release that brought it."""
    script: str


V2 = """
ALTER TABLE delivery ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
"""
"""The fencing number: one more at every claim, so that a worker past its lease cannot
record over the worker that took the delivery over."""


V3 = """
CREATE TABLE mute (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    since REAL NOT NULL,
    until REAL NOT NULL
);
CREATE INDEX mute_until ON mute(until);
"""
"""Mutes (``dbnotify mute``): kept with the queue, so every worker honours them."""


V4 = """
ALTER TABLE delivery ADD COLUMN group_key TEXT;
CREATE INDEX delivery_group ON delivery(group_key) WHERE group_key IS NOT NULL;
ALTER TABLE delivery ADD COLUMN problem TEXT;
CREATE INDEX delivery_problem ON delivery(problem) WHERE problem IS NOT NULL;
CREATE TABLE problem (
    key TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    recipients TEXT,
    opened_at REAL NOT NULL,
    count INTEGER NOT NULL
);
CREATE INDEX problem_job ON problem(job);
"""
"""Grouping (``[grouping]``): a held delivery's group, claimed and sent together; a
job's open problem (its failures until it succeeds), for ``repeat`` and "resolved"."""


V5 = """
CREATE INDEX delivery_expiry ON delivery(state, expires_at) WHERE attempts > 0;
"""
"""The deliveries that may expire (tried at least once), by when: every claim looks for
them first, and without it that look read every pending delivery (7 ms a claim with
50,000 pending, most of a claim's time)."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "0.1.0", V1),
    Migration(2, "0.2.0", V2),
    Migration(3, "0.2.0", V3),
    Migration(4, "0.2.0", V4),
    Migration(5, "0.2.0", V5),
)
"""Every step, in order; the last one's version is what this code writes."""

LATEST = MIGRATIONS[-1].version


def statements(script: str) -> list[str]:
    """The script's statements one by one (``executescript`` would commit first)."""
    found: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()!r}")
    return found


def version(db: sqlite3.Connection) -> int:
    """The file's schema version (0: new, or written by dbnotify 0.1.0)."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    assert isinstance(found, int)
    return found


def migrate(db: sqlite3.Connection, where: str) -> int:
    """Bring the file up to :data:`LATEST` in one transaction, or refuse a newer file;
    returns the version found (0: a new file; 1: a file of dbnotify 0.1.0, whose
    ``user_version`` is 0 but whose tables are version 1's).

    Several processes may open a file at once: the first to take the write lock
    migrates it, the others find it done.
    """
    found = version(db)
    if found == LATEST:
        return found
    _refuse_newer(found, where)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = version(db)  # read again under the lock: another process may have been first
        _refuse_newer(found, where)
        if (
            found == 0
            and db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'notification'"
            ).fetchone()
        ):
            found = 1
        for step in MIGRATIONS:
            if step.version > found:
                for statement in statements(step.script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {step.version:d}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return found


def _refuse_newer(found: int, where: str) -> None:
    if found > LATEST:
        raise OutboxError(wording.too_new(where, found, LATEST))

"""One connection to an outbox file, and its transactions.

WAL mode and ``synchronous = FULL``: a committed transaction survives a crash of the
process or the machine. Writes take SQLite's write lock at once (``BEGIN IMMEDIATE``),
so that several processes sharing the file queue for it (up to ``busy_timeout``) rather
than fail half-way. Every method is synchronous and thread-safe (one lock): the store
calls them from worker threads. Every SQLite failure becomes an :class:`OutboxError`
that names the file and the cause.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dbnotify.errors import OutboxError
from dbnotify.outbox import wording
from dbnotify.outbox.sqlite import schema


def explain(exc: sqlite3.Error, path: str) -> str:
    """What an operator reads for a SQLite failure on the outbox at ``path``."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return wording.locked(path)
    if "full" in text:
        return wording.full(path)
    if "readonly" in text or "read-only" in text or "attempt to write" in text:
        return wording.not_writable(path)
    if "unable to open" in text:
        return wording.cannot_open(path)
    if "malformed" in text or "not a database" in text:
        return wording.damaged(path)
    return wording.failed(path, exc)


class Database:
    """The outbox file at ``path``, opened on first use (and again after a failure)."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.found: int | None = None
        """The schema version the file had when this opened it first (0: none)."""

    def connect(self) -> sqlite3.Connection:
        """The open connection, opening (and creating or upgrading) the file if needed.
        Outside :meth:`read` and :meth:`write` only for tests that reach into SQLite."""
        if self._db is None:
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit below
                check_same_thread=False,
            )
            db.row_factory = sqlite3.Row
            try:
                self._setup(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _setup(self, db: sqlite3.Connection) -> None:
        """WAL, fsync on commit, the schema up to date. Two processes opening a new file
        at once may find it busy for a moment (the switch to WAL takes the file to
        itself): wait for it, as long as busy_timeout allows."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.execute("PRAGMA foreign_keys = ON")
                found = schema.migrate(db, self.path)
                if self.found is None:
                    self.found = found
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def write(self, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; every SQLite failure becomes an :class:`OutboxError`.

        ``sync=False`` commits without waiting for the disk: only for what a power cut may
        lose without harm (a lease: the delivery is taken again, as when a lease runs out).
        The next synced commit writes it to disk too (the WAL is appended in order).
        """
        with self._lock:
            try:
                db = self.connect()
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
                raise OutboxError(explain(exc, self.path)) from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self.connect()
            except sqlite3.Error as exc:
                self._reset()
                raise OutboxError(explain(exc, self.path)) from exc

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

"""Connections to the PostgreSQL outbox: a pool per event loop, transactions, and errors.

Connections notice a dead peer (TCP keepalives and ``tcp_user_timeout``), the server
ends a transaction left idle (``idle_in_transaction_session_timeout``), and statements
and lock waits are bounded by ``[outbox] timeout``; the pool checks a connection before
lending it, so one broken by a server restart is replaced, not used. Every failure
becomes an :class:`~dbnotify.errors.OutboxError` that names the outbox (its URL without
the password) and what to do. A failure while committing is said to be *in doubt*: the
transaction may or may not have been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg.rows import dict_row

from dbnotify.config.model import OutboxSettings
from dbnotify.errors import OutboxError, Unreachable
from dbnotify.outbox import wording
from dbnotify.outbox.postgres import schema

IDLE_IN_TRANSACTION = 60.0
"""Seconds the server lets a transaction of ours sit idle (a process paused or cut off
with a transaction open) before it ends it, releasing its row locks."""

Connection = psycopg.AsyncConnection[dict[str, Any]]


class InDoubt(Unreachable):
    """The connection broke while committing: what the transaction wrote may or may not
    be stored."""


def connection_kwargs(settings: OutboxSettings) -> dict[str, Any]:
    """libpq parameters besides the URL: the password, and the bounds on every wait."""
    millis = math.ceil(settings.timeout * 1000)
    kwargs: dict[str, Any] = {
        "application_name": "dbnotify",
        "connect_timeout": max(2, math.ceil(settings.timeout)),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": max(millis, 10_000),
        "options": (
            f"-c statement_timeout={millis} -c lock_timeout={millis} "
            f"-c idle_in_transaction_session_timeout={math.ceil(IDLE_IN_TRANSACTION * 1000)}"
        ),
        "autocommit": True,  # transactions are explicit: Database.transaction
        "row_factory": dict_row,
    }
    if not settings.listen:  # behind PgBouncer in transaction mode: no prepared statements
        kwargs["prepare_threshold"] = None
    if settings.password is not None:
        kwargs["password"] = settings.password.reveal()
    return kwargs


def explain(
    exc: BaseException, where: str, timeout: float, refused: BaseException | None = None
) -> str:
    """What an operator reads for a PostgreSQL failure of the outbox at ``where``; for a
    pool that gave no connection, ``refused`` is why its last attempt to connect failed
    (the cause, said as if connecting directly)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg_pool.PoolTimeout) and refused is not None:
        return explain(refused, where, timeout)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return (
            f"the PostgreSQL outbox {where} gave no connection within {timeout:g}s (every "
            "pooled connection busy, or the server unreachable); check the server, or raise "
            "[outbox] pool_size or timeout"
        )
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return (
            f"the PostgreSQL outbox {where} did not answer within {timeout:g}s ({text}); a "
            "long transaction of another session may hold its rows: see pg_stat_activity"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege | psycopg.errors.InvalidSchemaName):
        return (
            f"the PostgreSQL outbox {where} refused: {text}; grant the user what "
            "docs/scaling-out.md lists, or run dbnotify outbox init as the schema's owner"
        )
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"PostgreSQL refused the login to the outbox {where}: {text}; check [outbox] "
            "password (or PGPASSWORD, ~/.pgpass)"
        )
    if "too many connections" in lowered or "remaining connection slots" in lowered:
        return (
            f"PostgreSQL refused another connection to the outbox {where}: {text}; the "
            "server's max_connections or the user's CONNECTION LIMIT is reached: see "
            "pg_stat_activity, or lower [outbox] pool_size"
        )
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"cannot reach the PostgreSQL outbox {where}: {text}; check that the server "
            "runs and that [outbox] url names it"
        )
    return wording.failed(where, f"{type(exc).__name__}: {text}")


def failure(
    exc: BaseException, where: str, timeout: float, refused: BaseException | None = None
) -> OutboxError:
    """The :class:`OutboxError` for a PostgreSQL failure: :class:`Unreachable` when the
    server could not be reached or the connection broke (trying again may succeed), not
    for a statement or lock that took too long."""
    message = explain(exc, where, timeout, refused)
    timed_out = isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)
    if isinstance(exc, psycopg_pool.PoolTimeout) or (
        isinstance(exc, psycopg.OperationalError) and not timed_out
    ):
        return Unreachable(message)
    return OutboxError(message)


class Database:
    """The outbox's database: a connection pool, opened on first use in each event loop
    (a host's ``notify_sync`` runs each call on a loop of its own), and the schema
    migrated once per process."""

    def __init__(self, settings: OutboxSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        self.where = settings.where
        self.schema = settings.schema
        self._pool: psycopg_pool.AsyncConnectionPool[Connection] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: asyncio.Task[None] | None = None
        self._migrated = False
        self.refused: psycopg.Error | None = None
        """Why the pool's last attempt to connect failed (None once one succeeds): said
        when the pool gives no connection, instead of only that it gave none."""

    def q(self, sql: str) -> str:
        """``sql`` with ``{s}`` as the outbox's schema, quoted."""
        return sql.format(s='"' + self.schema + '"')

    async def connect(self) -> Connection:
        """A connection of its own, outside the pool (LISTEN, tests)."""
        url = self.settings.url
        assert url is not None
        try:
            conn: Connection = await psycopg.AsyncConnection.connect(
                url, **connection_kwargs(self.settings)
            )
        except psycopg.Error as exc:
            raise failure(exc, self.where, self.settings.timeout) from None
        return conn

    async def _open(self) -> psycopg_pool.AsyncConnectionPool[Connection]:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or self._loop is not loop:
            # a pool belongs to the loop that opened it; that loop is gone: leave it behind
            self._pool, self._loop = None, None
            pool = psycopg_pool.AsyncConnectionPool(
                self.settings.url or "",
                kwargs=connection_kwargs(self.settings),
                min_size=1,
                max_size=self.settings.pool_size,
                timeout=self.settings.timeout,
                check=psycopg_pool.AsyncConnectionPool.check_connection,
                connection_class=_recording(self),
                open=False,
                name="dbnotify-outbox",
            )
            await pool.open(wait=False)
            self._pool, self._loop = pool, loop
            self._closer = loop.create_task(
                self._close_with_loop(pool), name="dbnotify-outbox-pool"
            )
        # until a migration succeeds, every use tries it (the first may have failed: the
        # server down, a grant missing), not only the use that opened the pool
        if not self._migrated:
            try:
                async with pool.connection() as conn:
                    await migrate(conn, self.schema, self.where)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                raise failure(exc, self.where, self.settings.timeout, self.refused) from None
            self._migrated = True
        return pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One transaction on a pooled connection; failures become :class:`OutboxError`.

        Every commit waits for the WAL flush (``synchronous_commit`` as the server has
        it), claims included: a claim lost in a crash of the server is not a lease run
        out, since its worker, on another host, lives on and sends. A failure while
        committing is reported as in doubt.
        """
        committing = False
        try:
            pool = await self._open()
            async with pool.connection() as conn, conn.transaction():
                yield conn
                committing = True
        except OutboxError:
            raise
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            if committing and isinstance(exc, psycopg.OperationalError):
                raise InDoubt(
                    f"the commit to the PostgreSQL outbox {self.where} is in doubt: the "
                    f"connection broke while committing ({' '.join(str(exc).split())}); "
                    "what it wrote may or may not be stored: see dbnotify history"
                ) from None
            raise failure(exc, self.where, self.settings.timeout, self.refused) from None

    async def _close_with_loop(self, pool: psycopg_pool.AsyncConnectionPool[Connection]) -> None:
        """Close ``pool`` when this task is cancelled, as ``asyncio.run`` cancels every
        task of its loop as it ends: an owner that never calls :meth:`close` (a host's
        ``notify_sync``, a command) must neither leave the pool's connections open nor
        hang its loop's end. psycopg_pool's maintenance tasks take a cancellation for the
        failure of their current job (connecting again to a server that is gone) and wait
        for the next one, so ``asyncio.run`` would wait for them for ever; closing the
        pool stops them."""
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            if self._pool is pool:
                self._pool, self._loop, self._closer = None, None, None
            with contextlib.suppress(Exception):
                await pool.close(timeout=self.settings.timeout)

    async def close(self) -> None:
        pool, self._pool, self._loop = self._pool, None, None
        closer, self._closer = self._closer, None
        if closer is not None and closer.get_loop() is asyncio.get_running_loop():
            closer.cancel()  # it closes the pool
            await asyncio.wait([closer])
            return
        if pool is not None:
            # opened by a loop that is gone (RuntimeError): its connections go with it
            with contextlib.suppress(RuntimeError):
                await pool.close(timeout=self.settings.timeout)


def _recording(database: Database) -> type[Connection]:
    """The pool's connection class: records in ``database.refused`` why connecting
    failed, which the pool itself keeps to its log."""

    class Recording(psycopg.AsyncConnection[dict[str, Any]]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Recording:
            try:
                conn = await super().connect(conninfo, **kwargs)
            except psycopg.Error as exc:
                database.refused = exc
                raise
            database.refused = None
            return conn

    Recording.__qualname__ = "Connection"  # as psycopg's warnings name it: not <locals>
    return Recording


async def migrate(conn: Connection, name: str, where: str) -> int:
    """Create or bring the schema ``name`` up to :data:`~schema.LATEST`, in one
    transaction, under an advisory lock; refuse a newer one. Returns the version found.

    A schema already up to date is only read: no DDL runs, so that a user granted only
    ``USAGE`` on the schema and rights on its tables (not ``CREATE``) can use it, as
    docs/scaling-out.md sets it up. PostgreSQL checks ``CREATE`` privileges before it
    looks whether an ``IF NOT EXISTS`` object exists."""
    quoted = '"' + name + '"'
    async with conn.transaction():
        row = await (
            await conn.execute("SELECT to_regclass(%s) AS t", (quoted + ".version",))
        ).fetchone()
        if row is not None and row["t"] is not None:
            row = await (
                await conn.execute(f"SELECT max(version) AS v FROM {quoted}.version")
            ).fetchone()
            current = int(row["v"]) if row and row["v"] is not None else 0
            if current > schema.LATEST:
                raise OutboxError(wording.too_new(where, current, schema.LATEST, "url"))
            if current == schema.LATEST:
                return current
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", ("dbnotify-outbox:" + name,)
        )
        for statement in schema.statements(schema.PREPARE, name):
            await conn.execute(statement)
        row = await (
            await conn.execute(f"SELECT max(version) AS v FROM {quoted}.version")
        ).fetchone()
        found = int(row["v"]) if row and row["v"] is not None else 0
        if found > schema.LATEST:
            raise OutboxError(wording.too_new(where, found, schema.LATEST, "url"))
        for step in schema.MIGRATIONS:
            if step.version > found:
                for statement in schema.statements(step.script, name):
                    await conn.execute(statement)
        if found < schema.LATEST:
            await conn.execute(f"DELETE FROM {quoted}.version")
            await conn.execute(
                f"INSERT INTO {quoted}.version (version) VALUES (%s)",
                (schema.LATEST,),
            )
    return found

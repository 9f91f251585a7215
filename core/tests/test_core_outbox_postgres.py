"""What only the PostgreSQL store does, against the session's real server (``postgres``):
its schema made on first use, again after that first use failed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dbnotify.config.model import OutboxSettings
from dbnotify.errors import OutboxError
from dbnotify.secrets import Secret
from dbnotify.testing import postgres as pg


def settings(server: pg.Server) -> OutboxSettings:
    return OutboxSettings(
        url=server.url, password=Secret(server.password), schema=f"t_{uuid.uuid4().hex[:12]}"
    )


async def test_a_first_use_that_failed_migrates_on_the_next_one(postgres: pg.Server) -> None:
    from psycopg import sql  # here: without psycopg, the fixture skips (fails under CI)

    from dbnotify.outbox.postgres import PostgresStore

    outbox = settings(postgres)
    name = sql.Identifier(outbox.schema)
    # the schema is there but not the user's yet: the first use cannot create the tables
    postgres.admin(sql.SQL("CREATE SCHEMA {}").format(name))
    store = PostgresStore(outbox)
    try:
        with pytest.raises(OutboxError, match="permission denied for schema"):
            await store.counts()
        postgres.admin(sql.SQL("ALTER SCHEMA {} OWNER TO dbnotify").format(name))
        # the same store, the same event loop: its pool is open, its tables still to make
        assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": 0}
    finally:
        await store.aclose()


GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
)
"""What docs/scaling-out.md grants the application's user, once the owner made the
tables: no ``CREATE`` on the database or the schema."""


async def test_a_user_granted_only_table_rights_uses_an_outbox_made_by_its_owner(
    postgres: pg.Server,
) -> None:
    from psycopg import sql

    from dbnotify.events import Event, to_notification
    from dbnotify.outbox.model import Attempt, Enqueue
    from dbnotify.outbox.policy import RetryPolicy
    from dbnotify.outbox.postgres import PostgresStore, schema
    from dbnotify.results import Delivery, RecipientResult, Target

    owner = settings(postgres)
    made = PostgresStore(owner)
    assert await made.init() == 0
    await made.aclose()
    role = f"app_{uuid.uuid4().hex[:8]}"
    postgres.admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'app-pw'").format(sql.Identifier(role)))
    for grant in GRANTS:
        postgres.admin(
            sql.SQL(grant).format(schema=sql.Identifier(owner.schema), role=sql.Identifier(role))
        )
    app = OutboxSettings(
        url=postgres.url.replace("dbnotify@", f"{role}@"),
        password=Secret("app-pw"),
        schema=owner.schema,
    )
    store = PostgresStore(app)
    try:
        # found up to date: nothing to create, nothing refused
        assert await store.init() == schema.LATEST
        policy = RetryPolicy(attempts=3, first_delay=10, max_delay=60, max_age=600)
        item = Enqueue(
            to_notification(Event("test")), None, [Delivery("mail", Target.CHANNEL)], policy, ()
        )
        (ids,) = await store.enqueue_many([item])
        (claimed,) = await store.claim("w1", limit=10, lease=30)
        assert claimed.id == ids[0]
        await store.record_many([Attempt(claimed, [RecipientResult.delivered("a@x")], "")])
        assert (await store.counts())["delivered"] == 1
        assert [r.status for r in await store.history()] == ["delivered"]
        assert await store.purge(0.0, now=10**10) == 1
    finally:
        await store.aclose()


def test_a_loop_ends_even_while_the_pool_is_connecting(
    postgres: pg.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``notify_sync`` leaves the store open as its loop ends; a pool connection attempt
    then in flight must not keep ``asyncio.run`` from returning."""
    import asyncio
    import threading

    import psycopg

    from dbnotify.outbox.postgres import PostgresStore

    connect = psycopg.AsyncConnection.connect

    async def slow_connect(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)  # a server far away: the pool grows while requests wait
        return await connect(*args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", slow_connect)
    store = PostgresStore(settings(postgres))

    async def burst() -> None:
        await asyncio.gather(*(store.counts() for _ in range(3)))

    ended: list[int] = []

    def three_loops() -> None:
        for number in range(3):
            asyncio.run(burst())
            ended.append(number)

    thread = threading.Thread(target=three_loops, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "asyncio.run did not return: the loop could not end"
    assert ended == [0, 1, 2]

"""What only the PostgreSQL store does, against the session's real server (``postgres``):
its schema made on first use, again after that first use failed."""

from __future__ import annotations

import uuid

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

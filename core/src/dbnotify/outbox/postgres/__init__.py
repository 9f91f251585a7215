"""The PostgreSQL backend: one outbox that producers and workers on any number of hosts
share. Needs ``pip install 'dbnotify[postgresql]'`` (psycopg 3 and its pool)."""

from dbnotify.outbox.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

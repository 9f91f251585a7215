"""The SQLite backend: one outbox file in WAL mode, shared by several processes."""

from dbnotify.outbox.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]

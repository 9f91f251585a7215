"""A group's rows in one statement per table, not one per row.

The sqlite3 module gives up the GIL for every statement it steps (every row of an
``executemany``, every row a query returns) and takes it back; with the event loop busy
in the other thread, each of those hand-overs costs the loop a wait (docs/performance.md,
issue 16). So a group commit writes its rows with ``INSERT ... VALUES (...), (...)``,
one statement per table, in chunks under SQLite's limit on bound parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

MAX_ROWS = 500
"""Rows per statement at most (fewer where SQLite allows fewer parameters)."""


def insert(
    db: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """``{head} VALUES (...), ... {tail}`` for all ``rows`` (each as wide as the first),
    in as few statements as the parameter limit allows; in order, as an ``executemany``
    of the same rows would (``tail`` may be an ``ON CONFLICT`` clause)."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, min(MAX_ROWS, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    one = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        db.execute(
            f"{head} VALUES {','.join([one] * len(chunk))} {tail}",
            [value for row in chunk for value in row],
        )


def marks(count: int) -> str:
    """``?,?,...``: ``count`` parameters, for an ``IN (...)`` list."""
    return ",".join("?" * count)

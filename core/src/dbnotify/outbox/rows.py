"""A stored row as the store interface's types, for every SQL backend alike.

SQLite's and PostgreSQL's tables hold the same columns (their schemas are the same
migrations), and both drivers hand rows that answer ``row["column"]`` and ``keys()``
(``sqlite3.Row``, psycopg's ``dict_row``): one reading of a row, so that the two stores
cannot drift apart in what a history line or a claim says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from dbnotify.outbox.codec import decode
from dbnotify.outbox.decide import retry_only
from dbnotify.outbox.model import (
    FAILED,
    Claimed,
    HistoryRow,
    Mute,
    MuteScope,
    OpenProblem,
    RecipientState,
)
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import Delivery, Target


class Row(Protocol):
    """What both drivers' rows answer."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Any: ...


def recipients(text: str | None) -> tuple[str, ...] | None:
    """A delivery's ``recipients`` column (JSON text) as the delivery's tuple."""
    found = json.loads(text) if text else None
    return tuple(found) if found is not None else None


def claimed(row: Row, known: Mapping[str, RecipientState], now: float, fence: int) -> Claimed:
    """A claimed delivery's row (with its notification's ``content`` and
    ``user_content``) as :class:`Claimed`; ``fence`` as the claim left it."""
    target = Target(row["target"])
    text = row["user_content"] if target is Target.USER else row["content"]
    return Claimed(
        id=row["id"],
        notification=decode(text or row["content"]),
        delivery=Delivery(row["channel"], target, recipients(row["recipients"])),
        retry_only=retry_only(known),
        attempts=row["attempts"],
        policy=RetryPolicy(
            row["max_attempts"], row["first_delay"], row["max_delay"], row["expires_at"] - now
        ),
        expires_at=row["expires_at"],
        group=row["group_key"],
        fence=fence,
    )


def open_problem(row: Row) -> OpenProblem:
    return OpenProblem(
        Delivery(row["channel"], Target(row["target"]), recipients(row["recipients"])),
        row["event_type"],
        row["job"],
        row["opened_at"],
        row["count"],
    )


def mute(row: Row) -> Mute:
    return Mute(
        row["id"], MuteScope(row["scope"]), row["value"], row["reason"], row["since"], row["until"]
    )


def history_row(row: Row) -> HistoryRow:
    """A history query's row (or the attempt log's, which has no lease columns)."""
    status = row["status"]
    keys = set(row.keys())
    return HistoryRow(
        delivery_id=row["delivery_id"],
        notification_id=row["notification_id"],
        event_type=row["event_type"],
        channel=row["channel"],
        target=row["target"],
        recipient=row["address"],
        status=FAILED if status == FAILED else RecipientState(status),
        kind=row["kind"],
        reason=row["reason"],
        reply=row["reply"],
        hint=row["hint"],
        attempts=row["attempts"],
        at=row["at"],
        next_at=row["next_at"],
        held_by=row["held_by"] if "held_by" in keys else None,
        held_until=row["held_until"] if "held_until" in keys else None,
    )

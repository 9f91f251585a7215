"""What one transaction writes to the outbox's tables, gathered and written at once.

A group commit records many attempts (and enqueues many notifications); row by row,
that is several statements per attempt, each a hand-over of the GIL between the SQLite
thread and the busy event loop (:mod:`~dbnotify.outbox.sqlite.batch`). Gathered, it is
one statement per table for the whole group, with the same rows in the same order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dbnotify.outbox.decide import decide
from dbnotify.outbox.model import Attempt, DeliveryState, RecipientState
from dbnotify.outbox.sqlite.batch import MAX_ROWS, insert, marks
from dbnotify.results import CHANNEL_LABEL, RecipientResult

UPSERT_RECIPIENT = (
    "INSERT INTO recipient (delivery_id, address, status, kind, reason, reply, hint,"
    " attempts, updated_at)"
)
ON_CONFLICT = (
    "ON CONFLICT (delivery_id, address) DO UPDATE SET status = excluded.status, "
    "kind = excluded.kind, reason = excluded.reason, reply = excluded.reply, "
    "hint = excluded.hint, attempts = recipient.attempts + 1, "
    "updated_at = excluded.updated_at"
)


@attrs.define
class Writes:
    """Rows waiting for :meth:`flush`, in the order they were added."""

    recipients: list[tuple[Any, ...]] = attrs.field(factory=list)
    attempts: list[tuple[Any, ...]] = attrs.field(factory=list)
    dropped: list[int] = attrs.field(factory=list)
    """Deliveries whose channel placeholder goes (a first answer per recipient came)."""
    updates: dict[tuple[str, int, float, float], list[int]] = attrs.field(factory=dict)
    """Deliveries' new (state, attempts, next_at, updated_at), with the ids that get it."""
    parks: list[tuple[str, str, float, str]] = attrs.field(factory=list)
    recorded: set[int] = attrs.field(factory=set)
    """Deliveries with an attempt among the rows: a second one waits for a flush."""

    def results(
        self,
        delivery_id: int,
        results: Sequence[RecipientResult],
        states: Mapping[str, RecipientState],
        reasons: Mapping[str, str],
        now: float,
    ) -> None:
        """Each recipient's latest outcome, and the attempt log's line for it."""
        for r in results:
            reason = reasons.get(r.recipient, r.reason)
            kind = r.kind.value if r.kind else None
            self.recipients.append(
                (
                    delivery_id,
                    r.recipient,
                    states[r.recipient].value,
                    kind,
                    reason,
                    r.reply,
                    r.hint,
                    1,
                    now,
                )
            )
            self.attempts.append(
                (delivery_id, now, r.recipient, r.status.value, kind, reason, r.reply)
            )

    def record(self, attempt: Attempt, now: float, delay: float | None) -> DeliveryState:
        """An attempt whose fence holds: its outcome, decided (:func:`decide`)."""
        claimed = attempt.claimed
        if delay is None:
            delay = claimed.policy.delay(claimed.attempts + 1)
        decision = decide(claimed, attempt.results, now, delay)
        self.recorded.add(claimed.id)
        if decision.drop_placeholder:
            self.dropped.append(claimed.id)
        self.results(claimed.id, attempt.results, decision.states, decision.reasons, now)
        next_at = decision.next_at if decision.next_at is not None else now
        key = (decision.state.value, decision.attempts, next_at, now)
        self.updates.setdefault(key, []).append(claimed.id)
        if decision.park is not None:
            self.parks.append((claimed.delivery.channel, decision.park, now, attempt.fingerprint))
        return decision.state

    def flush(self, db: sqlite3.Connection) -> None:
        """Write what waits, a statement per table (per chunk of rows), and forget it."""
        for ids in _chunks(self.dropped):
            db.execute(
                f"DELETE FROM recipient WHERE address = ? AND delivery_id IN ({marks(len(ids))})",
                (CHANNEL_LABEL, *ids),
            )
        insert(db, UPSERT_RECIPIENT, self.recipients, ON_CONFLICT)
        insert(
            db,
            "INSERT INTO attempt (delivery_id, at, address, status, kind, reason, reply)",
            self.attempts,
        )
        for (state, attempts, next_at, now), every in self.updates.items():
            for ids in _chunks(every):
                db.execute(
                    "UPDATE delivery SET state = ?, attempts = ?, next_at = ?, lease_owner = "
                    f"NULL, lease_until = NULL, updated_at = ? WHERE id IN ({marks(len(ids))})",
                    (state, attempts, next_at, now, *ids),
                )
        insert(db, "INSERT OR REPLACE INTO parked (channel, reason, at, fingerprint)", self.parks)
        self.recipients, self.attempts, self.dropped = [], [], []
        self.updates, self.parks, self.recorded = {}, [], set()


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start : start + MAX_ROWS] for start in range(0, len(ids), MAX_ROWS)]

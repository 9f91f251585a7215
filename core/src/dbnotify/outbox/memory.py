"""An outbox in memory: the store interface over dicts, for tests (like httpx's
MockTransport).

It keeps what the SQLite store keeps and answers what it answers (the store suite runs
on both), but nothing survives the process, and it serves one process only. Its methods
never wait: each runs to its end without giving the event loop a turn, which is what
makes each one a transaction.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from dbnotify.errors import OutboxError
from dbnotify.events import Notification
from dbnotify.outbox import wording
from dbnotify.outbox.decide import (
    EXPIRED,
    decide,
    final,
    held_until,
    repeat_reason,
    retry_only,
)
from dbnotify.outbox.defaults import CONCURRENCY, GROUP_LIMIT, WRITE_GROUP
from dbnotify.outbox.model import (
    FAILED,
    Attempt,
    Claimed,
    Counts,
    DeliveryState,
    Enqueue,
    HistoryRow,
    Hold,
    Mute,
    MuteScope,
    OpenProblem,
    Parked,
    RecipientState,
)
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import CHANNEL_LABEL, Delivery, FailureKind, RecipientResult, Target

if TYPE_CHECKING:
    from dbnotify.outbox.store import OutboxStore


@attrs.frozen
class _Notification:
    notification: Notification
    user_notification: Notification | None
    created_at: float


@attrs.define
class _Recipient:
    status: RecipientState
    kind: str | None
    reason: str | None
    reply: str | None
    hint: str | None
    attempts: int
    updated_at: float


@attrs.define
class _Delivery:
    id: int
    notification_id: str
    delivery: Delivery
    state: DeliveryState
    max_attempts: int
    first_delay: float
    max_delay: float
    next_at: float
    expires_at: float
    updated_at: float
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    fence: int = 0
    group: str | None = None
    problem: str | None = None
    recipients: dict[str, _Recipient] = attrs.field(factory=dict)
    """By address, in the order first recorded."""

    def leased(self, now: float) -> bool:
        return self.lease_until is not None and self.lease_until >= now

    def has_dead(self) -> bool:
        return any(r.status is RecipientState.DEAD for r in self.recipients.values())


@attrs.frozen
class _AttemptRow:
    delivery_id: int
    at: float
    address: str
    status: str
    kind: str | None
    reason: str | None
    reply: str | None


@attrs.frozen
class _Parked:
    reason: str
    at: float
    fingerprint: str


class MemoryStore:
    """The outbox in this process's memory; ``where`` names it in error messages."""

    loop_bound = False
    batch_claims = True
    write_group = WRITE_GROUP
    worker_concurrency = CONCURRENCY

    def __init__(self, where: str = "in memory") -> None:
        self.where = where
        self._notifications: dict[str, _Notification] = {}
        self._deliveries: dict[int, _Delivery] = {}
        self._attempts: list[_AttemptRow] = []
        self._parked: dict[str, _Parked] = {}
        self._mutes: dict[int, Mute] = {}
        self._problems: dict[str, OpenProblem] = {}
        """Open problems by key (as the SQL stores' table)."""
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryStore({self.where!r})"

    async def aclose(self) -> None:
        """Nothing to close: what it holds stays until the store is dropped."""

    async def mute(
        self,
        scope: MuteScope,
        value: str,
        *,
        duration: float,
        reason: str = "",
        now: float | None = None,
    ) -> Mute:
        at = _now(now)
        made = Mute(len(self._mutes) + 1, scope, value, reason, at, at + duration)
        self._mutes[made.id] = made
        return made

    async def mutes(self, *, now: float | None = None) -> list[Mute]:
        at = _now(now)
        return [m for m in self._mutes.values() if m.until > at]

    async def unmute(self, mute_id: int, *, now: float | None = None) -> Mute | None:
        at = _now(now)
        found = self._mutes.get(mute_id)
        if found is None or found.until <= at:
            return None
        self._mutes[mute_id] = ended = attrs.evolve(found, until=at)
        return ended

    async def listen(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to: workers of other processes poll."""

    # -- writing ----------------------------------------------------------------------

    async def enqueue_many(
        self, items: Sequence[Enqueue], *, now: float | None = None
    ) -> list[list[int]]:
        now = _now(now)
        ids = {item.notification.id for item in items}
        if len(ids) < len(items) or ids & self._notifications.keys():
            raise OutboxError(wording.failed(self.where, "a notification is already queued"))
        return [self._enqueue(item, now) for item in items]

    def _enqueue(self, item: Enqueue, now: float) -> list[int]:
        notification = item.notification
        self._notifications[notification.id] = _Notification(
            notification, item.user_notification, now
        )
        ids: list[int] = []
        for index, d in enumerate(item.deliveries):
            hold = item.hold(index)
            reason = self._repeat(hold, d, now) if hold is not None else None
            if reason is None:
                ids.append(
                    self._insert(
                        notification.id, d, DeliveryState.PENDING, item.policy, now, hold
                    ).id
                )
                continue
            row = self._insert(notification.id, d, DeliveryState.DONE, item.policy, now)
            skipped = [RecipientResult.skipped(label, reason) for label in d.labels()]
            self._store_results(row, skipped, {r.recipient: final(r) for r in skipped}, {}, now)
            ids.append(row.id)
        for outcome in item.outcomes:
            done = self._insert(
                notification.id,
                Delivery(outcome.channel, outcome.target),
                DeliveryState.DONE,
                item.policy,
                now,
            )
            states = {r.recipient: final(r) for r in outcome.recipients}
            self._store_results(done, outcome.recipients, states, {}, now)
        return ids

    def _insert(
        self,
        notification_id: str,
        delivery: Delivery,
        state: DeliveryState,
        policy: RetryPolicy,
        now: float,
        hold: Hold | None = None,
    ) -> _Delivery:
        if hold is not None and hold.under is not None:
            recent = sum(
                1
                for d in self._deliveries.values()
                if d.delivery.channel == delivery.channel
                and d.delivery.target is delivery.target
                and d.group is None
                and self._notifications[d.notification_id].created_at > now - hold.wait
            )
            if recent < hold.under:  # within the channel's rate: due now, on its own
                hold = None
        row = _Delivery(
            id=next(self._ids),
            notification_id=notification_id,
            delivery=delivery,
            state=state,
            max_attempts=policy.attempts,
            first_delay=policy.first_delay,
            max_delay=policy.max_delay,
            next_at=self._held_until(hold, now) if hold is not None else now,
            expires_at=now + policy.max_age,
            updated_at=now,
            group=hold.group if hold is not None else None,
            problem=hold.problem.key if hold is not None and hold.problem is not None else None,
        )
        self._deliveries[row.id] = row
        return row

    def _repeat(self, hold: Hold, delivery: Delivery, now: float) -> str | None:
        """As the SQLite store: counted while its problem's last message is within
        ``repeat`` and none waits to go; else ``None``, the problem opened or counted."""
        problem = hold.problem
        if problem is None:
            return None
        found = self._problems.get(problem.key)
        if found is None:
            self._problems[problem.key] = OpenProblem(
                delivery, problem.event_type, problem.job, now, 1
            )
            return None
        found = self._problems[problem.key] = attrs.evolve(found, count=found.count + 1)
        mine = [d for d in self._deliveries.values() if d.problem == problem.key]
        sent = [
            d.updated_at
            for d in mine
            if d.state is DeliveryState.DONE and d.updated_at >= found.since
        ]
        return repeat_reason(
            problem,
            now,
            waiting=any(d.state is DeliveryState.PENDING for d in mine),
            last=max(sent, default=None),
            count=found.count,
            since=found.since,
        )

    async def resolve(self, job: str, *, now: float | None = None) -> list[OpenProblem]:
        keys = sorted(k for k, p in self._problems.items() if p.job == job)
        return [self._problems.pop(k) for k in keys]

    def _held_until(self, hold: Hold, now: float) -> float:
        """As the SQLite store: with the group's open deliveries, else after ``wait``,
        and not before ``interval`` after the group's last message."""
        group = [d for d in self._deliveries.values() if d.group == hold.group]
        open_at = [
            d.next_at
            for d in group
            if d.state is DeliveryState.PENDING and d.attempts == 0 and not d.leased(now)
        ]
        sent = [d.updated_at for d in group if d.state is DeliveryState.DONE]
        return held_until(hold, now, min(open_at, default=None), max(sent, default=None))

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        only: Collection[int] | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        now = _now(now)
        self._expire(now)
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.state is DeliveryState.PENDING
                and d.next_at <= now
                and not d.leased(now)
                and d.delivery.channel not in self._parked
                and (only is None or d.id in only)
            ),
            key=lambda d: (d.next_at, d.id),
        )[:limit]
        for group in dict.fromkeys(d.group for d in due if d.group is not None):
            taken = {d.id for d in due}
            count = sum(1 for d in due if d.group == group)
            due += sorted(
                (
                    d
                    for d in self._deliveries.values()
                    if d.group == group
                    and d.id not in taken
                    and d.state is DeliveryState.PENDING
                    and not d.leased(now)
                    and d.delivery.channel not in self._parked
                ),
                key=lambda d: (d.next_at, d.id),
            )[: max(0, GROUP_LIMIT - count)]
        claimed = []
        for d in due:
            d.lease_owner, d.lease_until = owner, now + lease
            d.fence += 1
            stored = self._notifications[d.notification_id]
            content = stored.notification
            if d.delivery.target is Target.USER and stored.user_notification is not None:
                content = stored.user_notification
            claimed.append(
                Claimed(
                    id=d.id,
                    notification=content,
                    delivery=d.delivery,
                    retry_only=retry_only({a: r.status for a, r in d.recipients.items()}),
                    attempts=d.attempts,
                    policy=RetryPolicy(
                        d.max_attempts, d.first_delay, d.max_delay, d.expires_at - now
                    ),
                    expires_at=d.expires_at,
                    group=d.group,
                    fence=d.fence,
                )
            )
        return claimed

    def _expire(self, now: float) -> None:
        """Deliveries past their max_age: dead, with the reason, never silently gone;
        only after a first attempt (as in the SQLite store)."""
        for d in self._deliveries.values():
            if d.state is not DeliveryState.PENDING or d.expires_at > now or d.leased(now):
                continue
            if d.attempts == 0:
                continue
            pending = [r for r in d.recipients.values() if r.status is RecipientState.PENDING]
            for r in pending:
                r.status, r.reason, r.updated_at = RecipientState.DEAD, EXPIRED, now
            if not pending:
                d.recipients[CHANNEL_LABEL] = _Recipient(
                    RecipientState.DEAD, FailureKind.TRANSIENT.value, EXPIRED, None, None, 0, now
                )
            d.state, d.lease_owner, d.lease_until = DeliveryState.DONE, None, None
            d.updated_at = now

    async def record_many(
        self,
        attempts: Sequence[Attempt],
        *,
        now: float | None = None,
        delay: float | None = None,
    ) -> list[DeliveryState]:
        now = _now(now)
        return [
            DeliveryState.DONE  # purged meanwhile
            if (d := self._deliveries.get(attempt.claimed.id)) is None
            else DeliveryState.TAKEN_OVER
            if d.fence != attempt.claimed.fence
            else self._record(d, attempt, now, delay)
            for attempt in attempts
        ]

    def _record(
        self, d: _Delivery, attempt: Attempt, now: float, delay: float | None
    ) -> DeliveryState:
        claimed = attempt.claimed
        if delay is None:
            delay = claimed.policy.delay(claimed.attempts + 1)
        decision = decide(claimed, attempt.results, now, delay)
        if decision.drop_placeholder:
            d.recipients.pop(CHANNEL_LABEL, None)
        self._store_results(d, attempt.results, decision.states, decision.reasons, now)
        d.state, d.attempts = decision.state, decision.attempts
        d.next_at = decision.next_at if decision.next_at is not None else now
        d.lease_owner, d.lease_until, d.updated_at = None, None, now
        if decision.park is not None:
            self._parked[d.delivery.channel] = _Parked(decision.park, now, attempt.fingerprint)
        return decision.state

    def _store_results(
        self,
        d: _Delivery,
        results: Sequence[RecipientResult],
        states: Mapping[str, RecipientState],
        reasons: Mapping[str, str],
        now: float,
    ) -> None:
        for r in results:
            reason = reasons.get(r.recipient, r.reason)
            kind = r.kind.value if r.kind else None
            before = d.recipients.get(r.recipient)
            d.recipients[r.recipient] = _Recipient(
                states[r.recipient],
                kind,
                reason,
                r.reply,
                r.hint,
                before.attempts + 1 if before is not None else 1,
                now,
            )
            self._attempts.append(
                _AttemptRow(d.id, now, r.recipient, r.status.value, kind, reason, r.reply)
            )

    # -- operations -------------------------------------------------------------------

    async def release(self, owner: str, ids: Sequence[int], *, after: float = 0.0) -> int:
        given, until = 0, _now(None) + after
        for ident in ids:
            d = self._deliveries.get(ident)
            if d is not None and d.state is DeliveryState.PENDING and d.lease_owner == owner:
                d.lease_owner, d.lease_until = None, None
                d.next_at = max(d.next_at, until)
                given += 1
        return given

    async def unpark_changed(self, fingerprints: Mapping[str, str]) -> list[str]:
        gone = [
            channel
            for channel, parked in sorted(self._parked.items())
            if fingerprints.get(channel) != parked.fingerprint
        ]
        for channel in gone:
            del self._parked[channel]
        return gone

    async def parked(self) -> dict[str, Parked]:
        return {c: Parked(p.reason, p.at) for c, p in sorted(self._parked.items())}

    async def retry(
        self,
        *,
        delivery_id: int | None = None,
        dead: bool = False,
        channel: str | None = None,
        now: float | None = None,
    ) -> int:
        now = _now(now)

        def chosen() -> Iterator[_Delivery]:
            for d in self._deliveries.values():
                if delivery_id is not None and d.id != delivery_id:
                    continue
                if channel is not None and d.delivery.channel != channel:
                    continue
                if dead and not d.has_dead():
                    continue
                # only what still waits or died: a delivered notification is never sent again
                if d.state is DeliveryState.PENDING or d.has_dead():
                    yield d

        again = list(chosen())
        for d in again:
            for r in d.recipients.values():
                if r.status is RecipientState.DEAD:
                    r.status = RecipientState.PENDING
            created = self._notifications[d.notification_id].created_at
            d.state, d.next_at, d.attempts = DeliveryState.PENDING, now, 0
            d.expires_at = now + (d.expires_at - created)
            d.lease_owner, d.lease_until, d.updated_at = None, None, now
        # asked again after the updates, as the SQLite store does
        unpark = {d.delivery.channel for d in chosen()}
        if channel is not None:
            unpark.add(channel)
        for name in unpark:
            self._parked.pop(name, None)
        return len(again)

    async def purge(self, older_than: float, *, now: float | None = None) -> int:
        before = _now(now) - older_than
        by_notification: dict[str, list[_Delivery]] = {}
        for d in self._deliveries.values():
            by_notification.setdefault(d.notification_id, []).append(d)
        gone = {
            ident
            for ident, stored in self._notifications.items()
            if stored.created_at < before
            and all(d.state is not DeliveryState.PENDING for d in by_notification.get(ident, []))
        }
        for ident in gone:
            del self._notifications[ident]
        dropped = {d.id for d in self._deliveries.values() if d.notification_id in gone}
        for delivery_id in dropped:
            del self._deliveries[delivery_id]
        self._attempts = [a for a in self._attempts if a.delivery_id not in dropped]
        return len(gone)

    # -- reading ----------------------------------------------------------------------

    async def counts(self, *, now: float | None = None) -> Counts:
        now = _now(now)
        pending = [d for d in self._deliveries.values() if d.state is DeliveryState.PENDING]
        statuses = [r.status for d in self._deliveries.values() for r in d.recipients.values()]
        return Counts(
            pending=len(pending),
            due=sum(
                1 for d in pending if d.next_at <= now and d.delivery.channel not in self._parked
            ),
            dead=statuses.count(RecipientState.DEAD),
            delivered=statuses.count(RecipientState.DELIVERED),
        )

    async def next_due(self) -> float | None:
        times = [
            max(d.next_at, d.lease_until or 0.0)  # a leased delivery: not before its lease ends
            for d in self._deliveries.values()
            if d.state is DeliveryState.PENDING and d.delivery.channel not in self._parked
        ]
        return min(times, default=None)

    async def history(
        self,
        *,
        event_type: str | None = None,
        channel: str | None = None,
        recipient: str | None = None,
        status: RecipientState | None = None,
        since: float | None = None,
        until: float | None = None,
        notification_id: str | None = None,
        delivery_ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[HistoryRow]:
        rows = [
            row
            for row in self._latest()
            if (event_type is None or row.event_type == event_type)
            and (channel is None or row.channel == channel)
            and (recipient is None or row.recipient == recipient)
            and (status is None or row.status == status)
            and (notification_id is None or row.notification_id == notification_id)
            and (since is None or row.at >= since)
            and (until is None or row.at < until)
            and (delivery_ids is None or row.delivery_id in delivery_ids)
        ]
        rows.sort(key=lambda row: (row.at, row.delivery_id), reverse=True)
        return rows[:limit]

    def _latest(self) -> Iterator[HistoryRow]:
        for d in self._deliveries.values():
            row = HistoryRow(
                delivery_id=d.id,
                notification_id=d.notification_id,
                event_type=self._notifications[d.notification_id].notification.event_type,
                channel=d.delivery.channel,
                target=d.delivery.target.value,
                # not tried yet: its one recipient, or the channel
                recipient=d.delivery.recipients[0] if d.delivery.recipients else CHANNEL_LABEL,
                status=RecipientState.PENDING,
                kind=None,
                reason=None,
                reply=None,
                hint=None,
                attempts=0,
                at=d.updated_at,
                next_at=d.next_at if d.state is DeliveryState.PENDING else None,
                held_by=d.lease_owner if d.state is DeliveryState.PENDING else None,
                held_until=d.lease_until if d.state is DeliveryState.PENDING else None,
            )
            if not d.recipients:
                yield row
            for address, r in d.recipients.items():
                yield attrs.evolve(
                    row,
                    recipient=address,
                    status=r.status,
                    kind=r.kind,
                    reason=r.reason,
                    reply=r.reply,
                    hint=r.hint,
                    attempts=r.attempts,
                    at=r.updated_at,
                )

    async def last_delivery(self) -> dict[str, HistoryRow]:
        latest: dict[str, HistoryRow] = {}
        for row in await self.history(status=RecipientState.DELIVERED, limit=100_000):
            latest.setdefault(row.channel, row)
        return latest

    async def failures_since(self, since: float) -> list[HistoryRow]:
        rows = []
        for index, a in enumerate(self._attempts):
            if a.status != FAILED or a.at < since:
                continue
            d = self._deliveries[a.delivery_id]
            r = d.recipients.get(a.address)
            row = HistoryRow(
                delivery_id=d.id,
                notification_id=d.notification_id,
                event_type=self._notifications[d.notification_id].notification.event_type,
                channel=d.delivery.channel,
                target=d.delivery.target.value,
                recipient=a.address,
                status=FAILED,
                kind=a.kind,
                reason=a.reason,
                reply=a.reply,
                hint=r.hint if r is not None else None,
                attempts=r.attempts if r is not None else 0,
                at=a.at,
            )
            rows.append((a.at, index, row))
        rows.sort(key=lambda entry: entry[:2], reverse=True)
        return [row for _, _, row in rows]


def _now(now: float | None) -> float:
    return time.time() if now is None else now


if TYPE_CHECKING:
    _: type[OutboxStore] = MemoryStore  # mypy checks that it implements the protocol

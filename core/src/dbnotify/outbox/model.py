"""What goes into an outbox and what comes out of it, whatever the backend.

The store interface (:mod:`dbnotify.outbox.store`) speaks these types only, so that the
worker, the Notifier and the CLI never see a row, a column or a backend's own literals.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, TypedDict

import attrs

from dbnotify.events import Notification
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import ChannelResult, Delivery, RecipientResult


class DeliveryState(enum.StrEnum):
    """Where a delivery stands: waiting for an attempt (``pending``), or finished."""

    PENDING = "pending"
    DONE = "done"
    TAKEN_OVER = "taken over"
    """Never stored: what :meth:`~dbnotify.outbox.store.OutboxStore.record_many` returns
    for an attempt whose worker held the delivery past its lease while another worker
    claimed it (the fencing number moved on). That attempt's outcome is not recorded;
    the other worker's stands."""


class RecipientState(enum.StrEnum):
    """Where one recipient of a delivery stands: ``pending`` (to be retried), or final.

    A ``str``, so that ``row.status == "dead"`` keeps working for hosts.
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    DEAD = "dead"


FAILED: Literal["failed"] = "failed"
"""The status of a failed attempt in the attempt log (:meth:`failures_since`)."""


@attrs.frozen
class Problem:
    """A job's failure that stays one problem until the job succeeds: sent again at most
    every ``repeat`` seconds; in between, a new failure is counted, not sent."""

    key: str
    job: str
    event_type: str
    repeat: float


@attrs.frozen
class OpenProblem:
    """A problem a success resolved (:meth:`OutboxStore.resolve`): where its messages
    went, since when, and how many failures it counted."""

    delivery: Delivery
    event_type: str
    job: str
    since: float
    count: int


@attrs.frozen
class Hold:
    """A delivery that waits to be sent with the others of its group (``[grouping]``)."""

    group: str
    """The group's key (:func:`dbnotify.outbox.grouping.group_key`)."""
    wait: float
    """Seconds a new group holds its first delivery to gather others."""
    interval: float
    """Seconds after a group's last message before its next one may go."""
    problem: Problem | None = None
    """A job's failure: counted, not sent, while its last message is within ``repeat``."""
    under: int | None = None
    """A channel's rate limit: held only when this many of the channel's deliveries (not
    held ones) were queued in the last ``wait`` seconds; else due now, on its own."""


@attrs.frozen
class Enqueue:
    """One notification to commit, with its deliveries and the outcomes decided without
    sending (skipped users, unknown channels), which are kept for the history."""

    notification: Notification
    user_notification: Notification | None
    """What a user's copy shows; ``None`` when the notification has no user's copy."""
    deliveries: Sequence[Delivery]
    policy: RetryPolicy
    outcomes: Sequence[ChannelResult] = ()
    holds: Sequence[Hold | None] = ()
    """Per delivery (same order), its group; empty or ``None``: due now, on its own."""

    def hold(self, index: int) -> Hold | None:
        return self.holds[index] if index < len(self.holds) else None


@attrs.frozen
class Claimed:
    """A delivery a worker holds the lease for: what to send, to whom, and its limits."""

    id: int
    notification: Notification
    """The notification as committed: the same id (Message-ID) and text on every attempt."""
    delivery: Delivery
    retry_only: tuple[str, ...] | None
    """After a first attempt, the recipients still pending; ``None``: everyone."""
    attempts: int
    """Attempts made so far."""
    policy: RetryPolicy
    """Attempts and backoff as committed; its ``max_age`` is what was left at the claim."""
    expires_at: float
    """No attempt is scheduled at or after this time (the event's max_age)."""
    group: str | None = None
    """The delivery's group (``[grouping]``): claimed with the others of its group, and
    sent with them as one message."""
    fence: int = 0
    """The delivery's fencing number, one more at every claim: a record whose number is no
    longer the delivery's is refused (:attr:`DeliveryState.TAKEN_OVER`), so that a worker
    paused or cut off past its lease cannot write over the worker that took over."""


@attrs.frozen
class Attempt:
    """One attempt's results to record, with the channel's configuration fingerprint
    (kept when the attempt parks the channel, so that a change unparks it)."""

    claimed: Claimed
    results: Sequence[RecipientResult]
    fingerprint: str = ""


class MuteScope(enum.StrEnum):
    """What a mute silences: one channel, one event type, or one backup job."""

    CHANNEL = "channel"
    EVENT = "event"
    JOB = "job"


@attrs.frozen
class Mute:
    """``dbnotify mute``: deliveries it matches are skipped, with its reason, until it
    ends. Kept in the outbox, so every worker of every host honours it."""

    id: int
    scope: MuteScope
    value: str
    reason: str
    since: float
    until: float

    def matches(self, channel: str, notification: Notification) -> bool:
        if self.scope is MuteScope.CHANNEL:
            return channel == self.value
        if self.scope is MuteScope.EVENT:
            return notification.event_type == self.value
        return notification.job_name == self.value

    @property
    def skip_reason(self) -> str:
        """What history says of a delivery this mute skipped."""
        text = f"muted by mute #{self.id} ({self.scope} {self.value}) until {iso(self.until)}"
        return f"{text}: {self.reason}" if self.reason else text

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["scope"] = str(self.scope)
        data["since"], data["until"] = iso(self.since), iso(self.until)
        return data


class Parked(NamedTuple):
    """Why a channel's queue is held, and since when (a tuple: ``reason, since``)."""

    reason: str
    since: float


class Counts(TypedDict):
    """Deliveries pending and due now (parked channels left out); recipients dead and
    delivered."""

    pending: int
    due: int
    dead: int
    delivered: int


@attrs.frozen
class HistoryRow:
    """One recipient of one delivery, as it stands (or one attempt, in the attempt log).

    ``target`` and ``kind`` are the plain values (``"user"``, ``"transient"``) hosts read.
    """

    delivery_id: int
    notification_id: str
    event_type: str
    channel: str
    target: str
    recipient: str
    status: RecipientState | Literal["failed"]
    kind: str | None
    reason: str | None
    reply: str | None
    hint: str | None
    attempts: int
    at: float
    next_at: float | None = None
    held_by: str | None = None
    """A pending delivery a worker has claimed: that worker (``host:pid:id``)."""
    held_until: float | None = None
    """When that worker's lease runs out: if it died, the delivery goes again then."""

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["status"] = str(self.status)
        data["at"] = iso(self.at)
        data["next_at"] = iso(self.next_at) if self.next_at is not None else None
        data["held_until"] = iso(self.held_until) if self.held_until is not None else None
        return data


def iso(ts: float) -> str:
    """``2026-11-24T05:49:54+00:00``: a stored time as the CLI and JSON show it."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")

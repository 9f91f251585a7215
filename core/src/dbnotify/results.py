"""Delivery outcomes: what happened, per channel and per recipient.

A failure is a value with a reason, never an exception into the host and never a log
line alone.
"""

from __future__ import annotations

import enum

import attrs

from dbnotify.text import as_optional_text, as_text


class Status(enum.Enum):
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    QUEUED = "queued"
    """Committed to the outbox; a worker delivers it (durable mode)."""


class FailureKind(enum.Enum):
    """Whether trying again later, unchanged, may succeed."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


@attrs.frozen
class RecipientResult:
    """The outcome for one recipient (an address, a chat, a webhook URL's name)."""

    recipient: str = attrs.field(converter=as_text)
    status: Status
    kind: FailureKind | None = None
    reason: str | None = attrs.field(default=None, converter=as_optional_text)
    """What went wrong, or why it was skipped, in plain words."""
    reply: str | None = attrs.field(default=None, converter=as_optional_text)
    """The server's own reply, e.g. ``550 5.1.1 no such user``: bytes that were not
    UTF-8 in it are U+FFFD (see :mod:`dbnotify.text`)."""
    hint: str | None = attrs.field(default=None, converter=as_optional_text)
    """What the operator can do about it."""
    parks_channel: bool = False
    """The failure is the channel's own (bad credentials): hold its queue until fixed."""
    retry_after: float | None = None
    """Seconds the service asked to wait before trying again (HTTP 429 Retry-After)."""

    @classmethod
    def delivered(cls, recipient: str, reply: str | None = None) -> RecipientResult:
        return cls(recipient, Status.DELIVERED, reply=reply)

    @classmethod
    def failed(
        cls,
        recipient: str,
        kind: FailureKind,
        reason: str,
        *,
        reply: str | None = None,
        hint: str | None = None,
        parks_channel: bool = False,
        retry_after: float | None = None,
    ) -> RecipientResult:
        return cls(recipient, Status.FAILED, kind, reason, reply, hint, parks_channel, retry_after)

    @classmethod
    def skipped(cls, recipient: str, reason: str) -> RecipientResult:
        return cls(recipient, Status.SKIPPED, reason=reason)


class Target(enum.Enum):
    """Whom a delivery was for: the channel's own recipients, or the affected user."""

    CHANNEL = "channel"
    USER = "user"


CHANNEL_LABEL = "(channel)"
"""The recipient named in a result when no recipient is known: the whole channel failed
(unknown channel, a plugin bug, the deadline) or has not been tried yet."""
USER_LABEL = "(user)"
"""The recipient of a user's copy when the event carries no address."""
NO_CHANNEL = "(none)"
"""The channel named in a user's copy when no channel can deliver to a user."""


@attrs.frozen
class Delivery:
    """One target of one notification: a channel, for its own recipients or for one
    user's address. The one shape of a delivery: planned by the router, committed by the
    outbox, claimed by a worker and sent by the :class:`~dbnotify.delivery.Deliverer`."""

    channel: str
    target: Target
    recipients: tuple[str, ...] | None = None
    """``None`` for the channel's configured recipients; the user's address alone for
    a user's copy."""

    def labels(self, retry_only: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """Whom a result names when the channel as a whole failed."""
        return retry_only or self.recipients or (CHANNEL_LABEL,)


@attrs.frozen
class ChannelResult:
    """One channel's delivery of one notification."""

    channel: str
    channel_type: str | None
    target: Target
    recipients: tuple[RecipientResult, ...]
    duration: float = 0.0

    @property
    def status(self) -> Status:
        statuses = {r.status for r in self.recipients}
        if Status.FAILED in statuses:
            return Status.FAILED
        if Status.QUEUED in statuses:
            return Status.QUEUED
        if statuses == {Status.SKIPPED} or not statuses:
            return Status.SKIPPED
        return Status.DELIVERED


@attrs.frozen
class DispatchResult:
    """Everything that happened to one event."""

    event_type: str
    notification_id: str
    channels: tuple[ChannelResult, ...]
    reason: str | None = None
    """Set when the event was not sent at all (disabled, condition not met)."""
    delivery_ids: tuple[int, ...] = ()
    """Durable mode: the outbox's ids of the deliveries, for ``history`` and ``retry``."""
    unrouted: bool = False
    """Not sent because no channel is configured for this event (see ``reason``): a gap
    in the configuration, where a disabled event or a job's condition is one of its rules."""

    @property
    def recipients(self) -> tuple[RecipientResult, ...]:
        return tuple(r for c in self.channels for r in c.recipients)

    @property
    def ok(self) -> bool:
        """True when nothing failed (skips are not failures)."""
        return all(r.status is not Status.FAILED for r in self.recipients)

    @property
    def failed(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status is Status.FAILED)


@attrs.frozen
class TestStage:
    """One step of a channel test (resolve, connect, TLS, AUTH, send ...)."""

    __test__ = False  # not a pytest test class

    name: str
    ok: bool
    detail: str = attrs.field(default="", converter=as_text)
    """What was checked, or what went wrong, with the server's reply (made text)."""
    duration: float = 0.0
    hint: str | None = attrs.field(default=None, converter=as_optional_text)


@attrs.frozen
class TestReport:
    """What a channel test did, stage by stage, and what it delivered."""

    __test__ = False

    stages: tuple[TestStage, ...]
    deliveries: tuple[RecipientResult, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and all(
            d.status is Status.DELIVERED for d in self.deliveries
        )

"""What a writer process is sent and answers for every message, as plain values.

Every message costs the writer three requests: its enqueue, its claim and its record.
Pickled as objects, a notification, a claimed delivery and an attempt cost the host's
event loop a Python call for each attrs instance and enum in them (about 45 µs a
message, an eighth of the host's work for it); as tuples of str, int, float and None,
which pickle in C, about 10 µs. :data:`CODECS` turns those three requests' arguments
and answers into such tuples and back; any other request crosses as objects.

Each ``*_values`` function has its inverse (``notification_values`` and
``notification``): what is sent comes back equal (tests/outbox/test_outbox_writer.py).
Sequences come back as tuples.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from dbnotify.events import Field, Notification, Severity
from dbnotify.outbox.model import Attempt, Claimed, DeliveryState, Enqueue, Hold, Problem
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import ChannelResult, Delivery, FailureKind, RecipientResult, Status, Target

E = TypeVar("E", bound=enum.Enum)

Values = tuple[Any, ...]


def _members(kind: type[E]) -> dict[Any, E]:
    """Members by value: ``Status("failed")`` is a Python call, a dict lookup is not
    (and ``member.value`` a property's, where ``member._value_`` is an attribute)."""
    return {member._value_: member for member in kind}


_SEVERITY = _members(Severity)
_TARGET = _members(Target)
_STATUS = _members(Status)
_KIND = _members(FailureKind)
_STATE = _members(DeliveryState)

UNREAD = Notification("", "", Severity.INFO, "", "", (), dt.datetime.fromtimestamp(0, dt.UTC))
"""What a recorded attempt's claim carries in the writer process instead of its
notification, which stays in the host: recording reads the delivery, its limits and its
fence, never what was sent."""


_FIELD: Callable[[Field], Values] = operator.attrgetter("label", "value")


def notification_values(n: Notification) -> Values:
    fields = tuple(map(_FIELD, n.fields))  # all in C: no comprehension's frame
    return (
        n.id,
        n.event_type,
        n.severity._value_,
        n.title,
        n.message,
        fields,
        n.timestamp,
        n.job_name,
    )


_new = object.__new__
_set = object.__setattr__


def _field(label: str, value: str) -> Field:
    field = _new(Field)
    _set(field, "label", label)
    _set(field, "value", value)
    return field


def notification(v: Values) -> Notification:
    """Rebuilt without the converters of its texts: each came from a notification, which
    made it encodable already (:func:`dbnotify.text.as_text`, eleven calls a claim)."""
    n = _new(Notification)
    _set(n, "id", v[0])
    _set(n, "event_type", v[1])
    _set(n, "severity", _SEVERITY[v[2]])
    _set(n, "title", v[3])
    _set(n, "message", v[4])
    _set(n, "fields", tuple([_field(label, value) for label, value in v[5]]))
    _set(n, "timestamp", v[6])
    _set(n, "job_name", v[7])
    return n


delivery_values: Callable[[Delivery], Values] = operator.attrgetter(
    "channel", "target._value_", "recipients"
)
"""A delivery's values (a C function: no frame of its own)."""


def delivery(v: Values) -> Delivery:
    return Delivery(v[0], _TARGET[v[1]], v[2])


policy_values: Callable[[RetryPolicy], Values] = operator.attrgetter(
    "attempts", "first_delay", "max_delay", "max_age"
)


_POLICIES: dict[Values, RetryPolicy] = {}
"""Policies already built, by their values: a handful (one an event type), each shared by
every delivery that has it rather than built for each claim."""


def policy(v: Values) -> RetryPolicy:
    found = _POLICIES.get(v)
    if found is None:
        found = RetryPolicy(*v)
        if len(_POLICIES) < 64:  # an outbox of odd limits does not grow this
            _POLICIES[v] = found
    return found


def result_values(r: RecipientResult) -> Values:
    kind = r.kind._value_ if r.kind is not None else None
    return (
        r.recipient,
        r.status._value_,
        kind,
        r.reason,
        r.reply,
        r.hint,
        r.parks_channel,
        r.retry_after,
    )


def result(v: Values) -> RecipientResult:
    kind = _KIND[v[2]] if v[2] is not None else None
    return RecipientResult(v[0], _STATUS[v[1]], kind, v[3], v[4], v[5], v[6], v[7])


def outcome_values(c: ChannelResult) -> Values:
    recipients = tuple([result_values(r) for r in c.recipients])
    return (c.channel, c.channel_type, c.target._value_, recipients, c.duration)


def outcome(v: Values) -> ChannelResult:
    return ChannelResult(v[0], v[1], _TARGET[v[2]], tuple([result(r) for r in v[3]]), v[4])


def hold_values(h: Hold | None) -> Values | None:
    if h is None:
        return None
    p = h.problem
    problem = (p.key, p.job, p.event_type, p.repeat) if p is not None else None
    return (h.group, h.wait, h.interval, problem, h.under)


def hold(v: Values | None) -> Hold | None:
    if v is None:
        return None
    return Hold(v[0], v[1], v[2], Problem(*v[3]) if v[3] is not None else None, v[4])


def enqueue_values(e: Enqueue) -> Values:
    user = notification_values(e.user_notification) if e.user_notification is not None else None
    return (
        notification_values(e.notification),
        user,
        tuple(map(delivery_values, e.deliveries)),
        policy_values(e.policy),
        tuple([outcome_values(c) for c in e.outcomes]),
        tuple([hold_values(h) for h in e.holds]),
    )


def enqueue(v: Values) -> Enqueue:
    return Enqueue(
        notification(v[0]),
        notification(v[1]) if v[1] is not None else None,
        tuple([delivery(d) for d in v[2]]),
        policy(v[3]),
        tuple([outcome(c) for c in v[4]]),
        tuple([hold(h) for h in v[5]]),
    )


def claimed_values(c: Claimed, *, with_notification: bool = True) -> Values:
    return (
        c.id,
        notification_values(c.notification) if with_notification else None,
        delivery_values(c.delivery),
        c.retry_only,
        c.attempts,
        policy_values(c.policy),
        c.expires_at,
        c.group,
        c.fence,
    )


def claimed(v: Values) -> Claimed:
    sent = notification(v[1]) if v[1] is not None else UNREAD
    return Claimed(v[0], sent, delivery(v[2]), v[3], v[4], policy(v[5]), v[6], v[7], v[8])


def attempt_values(a: Attempt) -> Values:
    results = tuple([result_values(r) for r in a.results])
    return (claimed_values(a.claimed, with_notification=False), results, a.fingerprint)


def attempt(v: Values) -> Attempt:
    return Attempt(claimed(v[0]), tuple([result(r) for r in v[1]]), v[2])


def _same(value: Any) -> Any:
    return value


@attrs.frozen
class Codec:
    """One request of the writer process: its arguments and its answer, each way."""

    send: Callable[[Values], Values] = _same
    """The host's arguments as sent."""
    receive: Callable[[Values], Values] = _same
    """What the child was sent, as the store method's arguments."""
    answer: Callable[[Any], Any] = _same
    """The store method's return value, as the child sends it."""
    result: Callable[[Any], Any] = _same
    """What the child answered, as the host's return value."""


def _first(convert: Callable[[Any], Any]) -> Callable[[Values], Values]:
    """A request's first argument, a sequence, converted item by item; the rest as is."""

    def arguments(args: Values) -> Values:
        items: Sequence[Any] = args[0]
        return (tuple([convert(item) for item in items]), *args[1:])

    return arguments


CODECS: dict[str, Codec] = {
    "_enqueue_many": Codec(send=_first(enqueue_values), receive=_first(enqueue)),
    "_claim": Codec(
        answer=lambda found: tuple([claimed_values(c) for c in found]),
        result=lambda found: [claimed(c) for c in found],
    ),
    "_record_many": Codec(
        send=_first(attempt_values),
        receive=_first(attempt),
        answer=lambda states: tuple([state._value_ for state in states]),
        result=lambda states: [_STATE[state] for state in states],
    ),
}
"""The requests of every message, by the :class:`SQLiteStore` method the child runs."""

PLAIN = Codec()
"""Any other request: its arguments and answer cross as they are."""

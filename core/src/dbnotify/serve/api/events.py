"""``POST /v1/events`` and ``GET /v1/notifications/{id}``: an event in, and what became
of it, per channel and per recipient.

With an outbox (the normal case for a service), an event is committed before the reply
(202, each target ``queued``) and the worker in this process delivers it; the
notification's page follows it through the outbox's history. Without one (direct mode),
the reply waits for the delivery itself, bounded by ``[dispatch] deadline``, and says
how each target ended (200): nothing would survive a restart between a 202 and a
background delivery, and the caller learns at once which target failed. Either way the
reply is also kept in memory (the latest :data:`RECENT`), so that the notification's
page can show what the outbox keeps no row of: an event not sent (disabled, no channel
for it), or a direct mode delivery.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from starlette.responses import Response

from dbnotify import router
from dbnotify.config.model import Scope
from dbnotify.errors import EventError, OutboxError
from dbnotify.events import CATALOGUE, Event, JobRule, Severity, User, to_notification
from dbnotify.outbox.model import HistoryRow, RecipientState, iso
from dbnotify.results import DispatchResult, RecipientResult, Status
from dbnotify.serve import idempotency
from dbnotify.serve.bodies import JsonReply, unstructure
from dbnotify.serve.endpoints import Call, Routes
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

routes = Routes("events")

RECENT = 1000
"""Results of ``POST /v1/events`` kept in memory for the notification's page."""
RETRY_AFTER = 5
"""Seconds a host is told to wait when the outbox cannot take its event."""


@attrs.frozen
class EventBody:
    """An event as :class:`dbnotify.events.Event` takes it (what ``dbnotify send`` builds)."""

    type: str = attrs.field(
        metadata={
            "description": "the event type, e.g. backup_failure (see the catalogue)",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"},  # as Event's
        }
    )
    data: dict[str, Any] = attrs.field(
        factory=dict, metadata={"description": "the event's data, e.g. {job_name: ...}"}
    )
    user: User | None = attrs.field(
        default=None, metadata={"description": "the user a user_login / user_created is about"}
    )
    job: JobRule | None = attrs.field(
        default=None, metadata={"description": "this backup job's routing (over [jobs.NAME])"}
    )
    title: str | None = attrs.field(
        default=None, metadata={"description": "for event types outside the catalogue"}
    )
    message: str | None = attrs.field(
        default=None, metadata={"description": "for event types outside the catalogue"}
    )
    fields: dict[str, str] | None = attrs.field(
        default=None, metadata={"description": "for event types outside the catalogue"}
    )
    severity: Severity | None = attrs.field(
        default=None, metadata={"description": "for event types outside the catalogue"}
    )
    timestamp: str | None = attrs.field(
        default=None,
        metadata={
            "description": "when it happened, ISO 8601 with a zone (default: now)",
            "schema": {"type": "string", "format": "date-time"},
        },
    )


class Outcome(enum.Enum):
    """Where one recipient stands."""

    QUEUED = "queued"
    """Committed to the outbox just now (the reply to ``POST /v1/events``)."""
    PENDING = "pending"
    """Waiting for an attempt, or for the next one after a transient failure."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Final: given up (the outbox's ``dead``), or failed in direct mode."""
    SKIPPED = "skipped"


class Overall(enum.Enum):
    """Where a notification stands: still moving (queued, pending), or how it ended."""

    QUEUED = "queued"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """At least one recipient failed for good."""
    SKIPPED = "skipped"
    NOT_SENT = "not sent"
    """It goes nowhere: see ``reason``."""


@attrs.frozen
class RecipientReport:
    recipient: str
    status: Outcome
    kind: str | None
    """``transient`` or ``permanent``, for a failure (and a pending retry)."""
    reason: str | None
    reply: str | None
    """The server's own reply."""
    hint: str | None
    attempts: int | None
    next_attempt: str | None
    """When a pending recipient is tried again (ISO 8601)."""
    delivery_id: int | None
    """The outbox's delivery (``POST /v1/outbox/retry`` takes it)."""


@attrs.frozen
class TargetReport:
    channel: str
    type: str | None
    target: str
    """``channel`` (its own recipients) or ``user`` (the affected user's copy)."""
    status: Outcome
    recipients: list[RecipientReport]


@attrs.frozen
class NotificationReport:
    id: str
    event_type: str
    status: Overall
    reason: str | None
    """Why it is not sent at all (disabled, no channel for it, a job's condition)."""
    unrouted: bool
    """Not sent because no channel is configured for it: a gap in the configuration."""
    targets: list[TargetReport]
    location: str
    """This notification's page: ``GET`` it to follow the deliveries."""


def location(notification_id: str) -> str:
    return f"/v1/notifications/{notification_id}"


_STATUS = {
    Status.QUEUED: Outcome.QUEUED,
    Status.DELIVERED: Outcome.DELIVERED,
    Status.FAILED: Outcome.FAILED,
    Status.SKIPPED: Outcome.SKIPPED,
}
_STATE = {
    RecipientState.PENDING: Outcome.PENDING,
    RecipientState.DELIVERED: Outcome.DELIVERED,
    RecipientState.DEAD: Outcome.FAILED,
    RecipientState.SKIPPED: Outcome.SKIPPED,
}


def _worst(outcomes: Iterable[Outcome]) -> Outcome:
    """A target's status: still moving first, then a failure, then a delivery."""
    found = set(outcomes)
    for outcome in (Outcome.QUEUED, Outcome.PENDING, Outcome.FAILED, Outcome.DELIVERED):
        if outcome in found:
            return outcome
    return Outcome.SKIPPED


def _report(
    notification_id: str,
    event_type: str,
    targets: list[TargetReport],
    reason: str | None,
    unrouted: bool,
) -> NotificationReport:
    status = Overall(_worst(t.status for t in targets).value) if targets else Overall.NOT_SENT
    return NotificationReport(
        notification_id, event_type, status, reason, unrouted, targets, location(notification_id)
    )


def _recipient(r: RecipientResult, delivery_id: int | None) -> RecipientReport:
    return RecipientReport(
        r.recipient,
        _STATUS[r.status],
        r.kind.value if r.kind else None,
        r.reason,
        r.reply,
        r.hint,
        None,
        None,
        delivery_id,
    )


def from_result(result: DispatchResult) -> NotificationReport:
    """What ``notify`` returned: queued targets (with their delivery ids) first, then
    those decided without sending (skipped users, unknown channels)."""
    ids = iter(result.delivery_ids)
    targets = []
    for channel in result.channels:
        queued = channel.status is Status.QUEUED
        delivery_id = next(ids, None) if queued else None
        recipients = [_recipient(r, delivery_id) for r in channel.recipients]
        targets.append(
            TargetReport(
                channel.channel,
                channel.channel_type,
                channel.target.value,
                _worst(r.status for r in recipients),
                recipients,
            )
        )
    return _report(
        result.notification_id, result.event_type, targets, result.reason, result.unrouted
    )


async def rows_of(service: Service, notification_id: str) -> list[HistoryRow]:
    """The outbox's rows of one notification (none without an outbox); 503 when it
    cannot be read."""
    if service.outbox is None:
        return []
    try:
        return await service.outbox.history(notification_id=notification_id, limit=10_000)
    except OutboxError as exc:
        raise outbox_unavailable(exc, "be read") from exc


def from_rows(
    service: Service, notification_id: str, rows: Sequence[HistoryRow]
) -> NotificationReport:
    """The outbox's history of one notification: per channel and target, in the order
    the deliveries were committed; why it was not sent, if this process remembers."""
    types = {name: c.type for name, c in service.config.channels.items()}
    first = service.recent.get(notification_id)
    grouped: dict[tuple[str, str], list[RecipientReport]] = {}
    for row in sorted(rows, key=lambda r: r.delivery_id):
        status = _STATE[RecipientState(row.status)]
        grouped.setdefault((row.channel, row.target), []).append(
            RecipientReport(
                row.recipient,
                status,
                row.kind,
                row.reason,
                row.reply,
                row.hint,
                row.attempts,
                iso(row.next_at) if status is Outcome.PENDING and row.next_at is not None else None,
                row.delivery_id,
            )
        )
    targets = [
        TargetReport(channel, types.get(channel), target, _worst(r.status for r in found), found)
        for (channel, target), found in grouped.items()
    ]
    return _report(
        notification_id,
        rows[0].event_type,
        targets,
        first.reason if first else None,
        first.unrouted if first else False,
    )


def _timestamp(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422,
            "invalid event",
            [
                Problem(
                    "timestamp", "must be ISO 8601 with a zone, e.g. 2026-11-24T05:00:00Z", value
                )
            ],
        ) from None


def to_event(body: EventBody) -> Event:
    """The event ``body`` describes; 422 naming the field the core refuses."""
    try:
        event = Event(
            body.type,
            body.data,
            user=body.user,
            job=body.job,
            title=body.title,
            message=body.message,
            fields=body.fields,
            severity=body.severity,
        )
    except EventError as exc:  # the type is the one field checked here
        raise ApiError(422, "invalid event", [Problem("type", str(exc), body.type)]) from None
    if body.timestamp is None:
        return event
    try:
        return attrs.evolve(event, timestamp=_timestamp(body.timestamp))
    except EventError as exc:
        raise ApiError(
            422, "invalid event", [Problem("timestamp", str(exc), body.timestamp)]
        ) from None


def event_problems(body: EventBody, exc: EventError) -> list[Problem]:
    """The fields of an event the catalogue refuses (``to_notification``'s checks)."""
    spec = CATALOGUE.get(body.type)
    if spec is None and not body.title:
        return [Problem("title", str(exc), None)]
    if spec is not None:
        missing = [k for k in spec.required if body.data.get(k) in (None, "")]
        if missing:
            return [Problem(f"data.{k}", str(exc), body.data.get(k)) for k in missing]
    if body.user is not None and body.user.email:
        return [Problem("user.email", str(exc), None)]
    return [Problem(None, str(exc), None)]


def outbox_unavailable(exc: OutboxError, doing: str) -> ApiError:
    """503: the outbox cannot be used now; the host should try again later."""
    return ApiError(
        503,
        f"the outbox cannot {doing}: {exc}",
        [
            Problem(
                None,
                f"try again in {RETRY_AFTER}s; if it goes on, check [outbox] and the server's log",
            )
        ],
        headers={"Retry-After": str(RETRY_AFTER)},
    )


def remember(service: Service, result: DispatchResult) -> None:
    service.recent[result.notification_id] = result
    while len(service.recent) > RECENT:
        service.recent.popitem(last=False)


async def accept(call: Call, notification_id: str | None = None) -> Response:
    body: EventBody = call.body
    event = to_event(body)
    service = call.service
    try:
        result = await service.notifier.notify(event, notification_id=notification_id)
    except EventError as exc:
        raise ApiError(422, "invalid event", event_problems(body, exc)) from None
    except OutboxError as exc:
        raise outbox_unavailable(exc, "take the event") from exc
    remember(service, result)
    service.metrics.count_accepted(result)
    report = from_result(result)
    # direct mode: delivered (or not) by now, so the request is done
    status = 202 if service.outbox is not None else 200
    return JsonReply(report, status_code=status, headers={"Location": report.location})


def leaves_rows(service: Service, body: EventBody) -> bool:
    """Whether the event, once accepted, shows in the outbox's history (it has targets,
    or outcomes decided without sending). Only then does its notification get the id
    derived from its key: one that goes nowhere leaves no row by which a repeat could
    find it, and a second notification of that id would be refused by the outbox (a
    repeat of it sends nothing anyway)."""
    try:
        event = to_event(body)
        severity = to_notification(event).severity
    except (ApiError, EventError):
        return False  # refused by accept, with the reason
    plan = router.plan(service.config, event, severity, service.notifier.deliverer.user_channels())
    return bool(plan.deliveries or plan.outcomes)


async def accepted_before(call: Call, notification_id: str, key: str) -> Response | None:
    """The reply to a key the outbox holds a notification of, though this process does
    not remember it (it restarted): the notification's page as it stands, a replay."""
    service = call.service
    rows = await rows_of(service, notification_id)
    if not rows:
        return None
    if rows[0].event_type != call.body.type:
        raise idempotency.reused(key)
    report = from_rows(service, notification_id, rows)
    return JsonReply(
        report,
        status_code=202,
        headers={"Location": report.location, idempotency.REPLAYED: "true"},
    )


@routes.route(
    "POST",
    "/v1/events",
    summary="Send an event: 202 with the notification's id and its targets, queued "
    "(200 with each target's outcome when there is no outbox); an Idempotency-Key header "
    "makes a repeat return the first answer",
    scope=Scope.SEND,
    body=EventBody,
    reply=NotificationReport,
    status=202,
    also=(200,),
    errors=(409, 503),
    headers=(
        (
            "Idempotency-Key",
            "made once per event and sent again with each retry: a repeat gets the first "
            "answer (with Idempotent-Replayed: true) and nothing is sent twice",
        ),
    ),
)
async def send_event(call: Call) -> Response:
    key = idempotency.parse_key(call.request.headers.get(idempotency.HEADER))
    if key is None:
        return await accept(call)
    assert call.caller is not None
    keys = call.service.idempotency
    print_ = idempotency.fingerprint(unstructure(call.body))
    first = keys.begin(call.caller.name, key, print_)
    if first is not None:
        return Response(
            first.body,
            status_code=first.status,
            headers={**first.headers, idempotency.REPLAYED: "true"},
        )
    answer = None
    try:
        nid = idempotency.keyed_id(call.caller.name, key)
        reply = await accepted_before(call, nid, key) or await accept(
            call, nid if leaves_rows(call.service, call.body) else None
        )
        if 200 <= reply.status_code < 300:
            kept = {k: v for k, v in reply.headers.items() if k in ("content-type", "location")}
            answer = keys.answer(reply.status_code, bytes(reply.body), kept, print_)
        return reply
    finally:
        keys.finish(call.caller.name, key, answer)


@routes.route(
    "GET",
    "/v1/notifications/{id}",
    summary="What became of a notification, per channel and per recipient: delivered, "
    "failed (kind, reply, hint), skipped (reason), pending (next attempt)",
    scope=Scope.READ,
    reply=NotificationReport,
    errors=(404, 503),
)
async def notification(call: Call) -> NotificationReport:
    wanted = call.path("id")
    service = call.service
    rows = await rows_of(service, wanted)
    if rows:
        return from_rows(service, wanted, rows)
    first = service.recent.get(wanted)
    if first is not None:
        return from_result(first)
    raise ApiError(
        404,
        f"no notification {wanted!r}",
        [
            Problem(
                "id",
                "use the id POST /v1/events gave (GET /v1/history lists them); "
                "finished ones are purged after [outbox] retention",
                wanted,
            )
        ],
    )

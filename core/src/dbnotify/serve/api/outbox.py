"""``GET /v1/history``, ``GET /v1/outbox`` and ``POST /v1/outbox/retry``: what
``dbnotify history``, ``dbnotify outbox`` and ``dbnotify retry`` show and do, with the
same filters, checked by the same code (:mod:`dbnotify.outbox.queries`).

Unlike the command, ``GET /v1/outbox`` changes nothing: the worker in this process
already unparked, at its start, the channels whose configuration changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dbnotify.config.fields import did_you_mean
from dbnotify.config.model import Scope
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import HistoryRow, RecipientState, iso
from dbnotify.outbox.queries import RetryTargetMissing, check_retry_target, parse_time
from dbnotify.outbox.store import OutboxStore
from dbnotify.serve.api.events import outbox_unavailable
from dbnotify.serve.endpoints import Call, Routes
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

routes = Routes("outbox")

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
"""The most rows one reply lists (the command has no such limit: it prints as it goes)."""
MAX_ID = 2**63 - 1
"""The largest delivery id an outbox holds (a signed 64-bit integer, in SQLite and
PostgreSQL alike)."""


@attrs.frozen
class HistoryEntry:
    """One recipient of one delivery, as it stands (``dbnotify history --json``)."""

    delivery_id: int
    notification_id: str
    event_type: str
    channel: str
    target: str
    recipient: str
    status: str
    """``pending``, ``delivered``, ``skipped`` or ``dead`` (given up)."""
    kind: str | None
    reason: str | None
    reply: str | None
    hint: str | None
    attempts: int
    at: str
    next_at: str | None
    held_by: str | None
    held_until: str | None

    @classmethod
    def of(cls, row: HistoryRow) -> HistoryEntry:
        return cls(**row.as_dict())


@attrs.frozen
class History:
    entries: list[HistoryEntry]
    limit: int
    """As many entries as this: there may be more (narrow the filters, or raise it)."""


@attrs.frozen
class OutboxCounts:
    pending: int
    """Deliveries waiting (parked channels' left out)."""
    due: int
    """Of those, due now."""
    dead: int
    """Recipients given up on: ``POST /v1/outbox/retry`` sends them again."""
    delivered: int


@attrs.frozen
class ParkedChannel:
    channel: str
    reason: str
    since: str


@attrs.frozen
class OutboxState:
    counts: OutboxCounts
    parked: list[ParkedChannel]
    pending: list[HistoryEntry]
    dead: list[HistoryEntry]


@attrs.frozen
class RetryBody:
    """What to send again; at least one of them (as ``dbnotify retry``)."""

    delivery_id: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([attrs.validators.ge(1), attrs.validators.le(MAX_ID)]),
        metadata={"description": "one delivery (its id, as history shows it)"},
    )
    dead: bool = attrs.field(
        default=False, metadata={"description": "every delivery with a dead recipient"}
    )
    channel: str | None = attrs.field(
        default=None, metadata={"description": "every delivery of this channel; unparks it"}
    )


@attrs.frozen
class Retried:
    retried: int
    """How many deliveries are due again now (the worker in this process sends them)."""
    unparked: str | None
    """The channel named, no longer parked."""


def store_of(service: Service) -> OutboxStore:
    if service.outbox is None:
        raise ApiError(
            409,
            "this server has no outbox",
            [
                Problem(
                    "outbox",
                    'add an [outbox] to the configuration (e.g. path = "/var/lib/dbnotify/'
                    'outbox.sqlite") and restart: history and retries live there',
                )
            ],
        )
    return service.outbox


def _query(call: Call, known: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters; 422 for one this endpoint does not take (a typo would
    otherwise widen the answer silently) or one given twice."""
    params = call.request.query_params
    problems = []
    for name in dict.fromkeys(params.keys()):
        if name not in known:
            problems.append(
                Problem(
                    name,
                    f"unknown parameter (known: {', '.join(known)}){did_you_mean(name, known)}",
                )
            )
        elif len(params.getlist(name)) > 1:
            problems.append(Problem(name, "give it once", ", ".join(params.getlist(name))))
    if problems:
        raise ApiError(422, "invalid query", problems)
    return dict(params)


def _limit(given: str | None) -> int:
    if given is None:
        return DEFAULT_LIMIT
    if not given.isdigit() or not 1 <= int(given) <= MAX_LIMIT:
        raise ApiError(
            422,
            "invalid query",
            [Problem("limit", f"must be a whole number from 1 to {MAX_LIMIT}", given)],
        )
    return int(given)


HISTORY_PARAMS = (
    ("event", "only this event type"),
    ("channel", "only this channel"),
    ("recipient", "only this recipient"),
    ("status", "only this: " + ", ".join(s.value for s in RecipientState)),
    ("since", "from this time (ISO 8601; UTC if no zone)"),
    ("until", "before this time (ISO 8601; UTC if no zone)"),
    ("limit", f"at most this many (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})"),
)


def history_filters(query: Mapping[str, str]) -> dict[str, Any]:
    """The store's ``history`` arguments from the query, every bad value at once (422)."""
    problems = []
    status = query.get("status")
    if status is not None and status not in {s.value for s in RecipientState}:
        states = [s.value for s in RecipientState]
        problems.append(
            Problem(
                "status",
                f"must be one of {', '.join(states)}{did_you_mean(status, states)}",
                status,
            )
        )
    times: dict[str, float | None] = {}
    for name in ("since", "until"):
        given = query.get(name)
        try:
            times[name] = parse_time(given) if given is not None else None
        except ValueError as exc:
            problems.append(Problem(name, str(exc), given))
    try:
        limit = _limit(query.get("limit"))
    except ApiError as exc:
        problems.extend(exc.problems)
        limit = DEFAULT_LIMIT
    if problems:
        raise ApiError(422, "invalid query", problems)
    return {
        "event_type": query.get("event"),
        "channel": query.get("channel"),
        "recipient": query.get("recipient"),
        "status": RecipientState(status) if status is not None else None,
        "since": times["since"],
        "until": times["until"],
        "limit": limit,
    }


@routes.route(
    "GET",
    "/v1/history",
    summary="Each recipient's latest outcome, newest first (as `dbnotify history`)",
    scope=Scope.READ,
    reply=History,
    errors=(409, 422, 503),
    params=HISTORY_PARAMS,
)
async def history(call: Call) -> History:
    filters = history_filters(_query(call, tuple(name for name, _ in HISTORY_PARAMS)))
    store = store_of(call.service)
    try:
        rows = await store.history(**filters)
    except OutboxError as exc:
        raise outbox_unavailable(exc, "be read") from exc
    return History([HistoryEntry.of(r) for r in rows], filters["limit"])


@routes.route(
    "GET",
    "/v1/outbox",
    summary="What waits (pending) and what was given up (dead), and the parked channels "
    "(as `dbnotify outbox`)",
    scope=Scope.READ,
    reply=OutboxState,
    errors=(409, 422, 503),
    params=(("limit", f"list at most this many of each (default {DEFAULT_LIMIT})"),),
)
async def outbox(call: Call) -> OutboxState:
    limit = _limit(_query(call, ("limit",)).get("limit"))
    store = store_of(call.service)
    try:
        counts = await store.counts()
        parked = await store.parked()
        pending = await store.history(status=RecipientState.PENDING, limit=limit)
        dead = await store.history(status=RecipientState.DEAD, limit=limit)
    except OutboxError as exc:
        raise outbox_unavailable(exc, "be read") from exc
    return OutboxState(
        OutboxCounts(counts["pending"], counts["due"], counts["dead"], counts["delivered"]),
        [ParkedChannel(c, why, iso(at)) for c, (why, at) in parked.items()],
        [HistoryEntry.of(r) for r in pending],
        [HistoryEntry.of(r) for r in dead],
    )


@routes.route(
    "POST",
    "/v1/outbox/retry",
    summary="Make deliveries due again now: one (delivery_id), every dead one (dead), or "
    "a (parked) channel's, which it unparks (as `dbnotify retry`)",
    scope=Scope.ADMIN,
    body=RetryBody,
    reply=Retried,
    errors=(404, 409, 503),
)
async def retry(call: Call) -> Retried:
    body: RetryBody = call.body
    if body.delivery_id is None and not body.dead and body.channel is None:
        raise ApiError(
            422,
            "nothing to retry",
            [
                Problem(name, "name a delivery_id, or set dead: true, or name a channel")
                for name in ("delivery_id", "dead", "channel")
            ],
        )
    service = call.service
    store = store_of(service)
    try:
        await check_retry_target(
            store, service.config.channels, delivery_id=body.delivery_id, channel=body.channel
        )
        made = await store.retry(delivery_id=body.delivery_id, dead=body.dead, channel=body.channel)
    except RetryTargetMissing as exc:
        fix = "GET /v1/outbox and GET /v1/history list the deliveries and their channels"
        raise ApiError(404, exc.message, [Problem(exc.field, fix, exc.value)]) from None
    except OutboxError as exc:
        raise outbox_unavailable(exc, "be changed") from exc
    return Retried(made, body.channel)

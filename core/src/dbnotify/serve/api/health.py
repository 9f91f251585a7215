"""``/livez``, ``/readyz`` and ``/metrics``: for the orchestrator and the scraper.

``/livez`` and ``/readyz`` are public (a probe carries no token): they say only whether
the process answers, and whether it can take events (the outbox answers, the worker
runs). ``/metrics`` needs a ``read`` token: it names channels and event types, which are
the configuration's business; Prometheus sends one with ``authorization: {credentials_file: ...}``
in the scrape config.
"""

from __future__ import annotations

import asyncio
import logging

import attrs
from starlette.responses import Response

from dbnotify.config.model import Scope
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import Counts, Parked
from dbnotify.serve.endpoints import Call, Routes
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

log = logging.getLogger(__name__)

routes = Routes("health")

CHECK_TIMEOUT = 2.0
"""Seconds the outbox gets to answer a probe or a scrape."""


@attrs.frozen
class Live:
    status: str


@attrs.frozen
class Ready:
    status: str
    outbox: str
    """``ok``, or ``none`` (direct mode: events are delivered as they come)."""
    worker: str
    """``running``, or ``none`` (direct mode)."""


@routes.route("GET", "/livez", summary="The process answers", scope=None, reply=Live)
async def livez(_call: Call) -> Live:
    return Live("ok")


async def _outbox_state(service: Service) -> tuple[Counts, dict[str, Parked]]:
    """The outbox's counts and parked channels, within :data:`CHECK_TIMEOUT`; raises
    :class:`OutboxError` (or ``TimeoutError``) when it does not answer."""
    assert service.outbox is not None
    async with asyncio.timeout(CHECK_TIMEOUT):
        return await service.outbox.counts(), await service.outbox.parked()


@routes.route(
    "GET",
    "/readyz",
    summary="Ready to take events: the outbox answers and its worker runs (else 503, with why)",
    scope=None,
    reply=Ready,
    errors=(503,),
)
async def readyz(call: Call) -> Ready:
    service = call.service
    if service.outbox is None:
        return Ready("ready", "none", "none")
    problems = []
    try:
        await _outbox_state(service)
    except (OutboxError, TimeoutError) as exc:
        why = str(exc) or f"no answer within {CHECK_TIMEOUT:g}s"
        problems.append(
            Problem("outbox", f"the outbox does not answer: {why}; check [outbox] and its storage")
        )
    worker = service.worker
    if worker is None or worker.done():
        ended = worker.exception() if worker is not None and not worker.cancelled() else None
        problems.append(
            Problem(
                "worker",
                "the outbox worker is not running"
                + (f" (it stopped: {ended})" if ended else "")
                + "; restart the server once the outbox is fixed",
            )
        )
    if problems:
        raise ApiError(503, "not ready", problems, headers={"Retry-After": "5"})
    return Ready("ready", "ok", "running")


@routes.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics (text format): events accepted, deliveries by channel and "
    "outcome, outbox pending and dead, parked channels",
    scope=Scope.READ,
    in_schema=False,
)
async def metrics(call: Call) -> Response:
    service = call.service
    if service.outbox is None:
        service.metrics.outbox_state(None, {})
    else:
        try:
            counts, parked = await _outbox_state(service)
        except (OutboxError, TimeoutError) as exc:
            log.warning("/metrics: the outbox does not answer: %s", exc or "timeout")
            service.metrics.outbox_state(None, {})
        else:
            service.metrics.outbox_state(counts, parked)
    body, content_type = service.metrics.render(call.request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})

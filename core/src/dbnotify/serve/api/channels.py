"""``/v1/channels``: the channels of the configuration file, read (secrets only as
whether they are set, with each channel's last outcome from the outbox), created,
replaced, deleted and tested, saved or not (the seed's "Test before Save").

The file is the store (:mod:`dbnotify.serve.channel_file`): a channel saved here is what
``dbnotify validate`` and the next start read. A problem in the settings is named as the
body has it: ``settings.port`` for what ``dbnotify validate`` calls
``channels.NAME.port``.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from starlette.responses import Response

from dbnotify.config.fields import setting
from dbnotify.config.model import Scope
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import HistoryRow, iso
from dbnotify.results import RecipientResult, TestReport, TestStage
from dbnotify.serve import channel_file
from dbnotify.serve.bodies import JsonReply
from dbnotify.serve.endpoints import Call, Routes
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

log = logging.getLogger(__name__)

routes = Routes("channels")

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string", "description": "the channel type"}},
    "description": "the channel's block as in [channels.NAME]: its type and the keys that "
    "type's schema names (components channel.TYPE, GET /v1/schema/TYPE); a secret is a "
    'string, {"env": "NAME"} or {"file": "/path"}; left out or {"set": true}: the saved '
    "one is kept",
}


@attrs.frozen
class NewChannel:
    name: str = setting(description="the channel's name: letters, digits, - and _")
    settings: dict[str, Any] = setting(description="the channel's block", schema=SETTINGS_SCHEMA)


@attrs.frozen
class ChannelUpdate:
    settings: dict[str, Any] = setting(
        description="the channel's whole block (secrets left out are kept)",
        schema=SETTINGS_SCHEMA,
    )


@attrs.frozen
class UnsavedTest:
    settings: dict[str, Any] = setting(
        description="the block to test, as it would be saved", schema=SETTINGS_SCHEMA
    )
    name: str | None = setting(
        default=None,
        description="a saved channel whose secrets fill in those left out (editing it)",
    )
    send: bool = setting(
        default=True, description="send a test message; false checks the connection only"
    )


@attrs.frozen
class LastOutcome:
    """The channel's latest outcome in the outbox: one recipient of one delivery."""

    delivery_id: int
    event_type: str
    recipient: str
    status: str
    """``delivered``, ``pending`` (to be retried), ``dead``, ``skipped``."""
    kind: str | None
    reason: str | None
    reply: str | None
    hint: str | None
    attempts: int
    at: str


@attrs.frozen
class ParkedState:
    """The channel's queue is held (bad credentials): until its settings change."""

    reason: str
    since: str


@attrs.frozen
class ChannelReply:
    name: str
    type: str
    settings: dict[str, Any]
    """The block as in the file; each secret is ``{"set": true}``."""
    secrets: dict[str, bool]
    """Each secret field of the type: whether it is set."""
    routed: bool
    """Whether ``[routing] channels`` names it."""
    warnings: list[str]
    last: LastOutcome | None
    """Its latest outcome (``null`` without an outbox, or before its first delivery)."""
    last_delivered: str | None
    """When it last delivered (ISO 8601, UTC)."""
    parked: ParkedState | None


@attrs.frozen
class ChannelList:
    channels: list[ChannelReply]


@attrs.frozen
class TestReply:
    """A channel test, stage by stage (resolve, connect, TLS, EHLO, AUTH, send ...),
    each with its detail, duration (seconds) and hint; then what it delivered."""

    __test__ = False

    channel: str
    ok: bool
    stages: list[TestStage]
    deliveries: list[RecipientResult]


def _outcome(row: HistoryRow) -> LastOutcome:
    return LastOutcome(
        row.delivery_id,
        row.event_type,
        row.recipient,
        str(row.status),
        row.kind,
        row.reason,
        row.reply,
        row.hint,
        row.attempts,
        iso(row.at),
    )


async def _replies(service: Service, views: list[channel_file.ChannelView]) -> list[ChannelReply]:
    """Each channel with what the outbox knows of it; without an outbox (or when it does
    not answer: logged), only the file's part."""
    last: dict[str, LastOutcome] = {}
    delivered: dict[str, str] = {}
    parked: dict[str, ParkedState] = {}
    outbox = service.outbox
    if outbox is not None:
        try:
            delivered = {c: iso(r.at) for c, r in (await outbox.last_delivery()).items()}
            parked = {
                c: ParkedState(p.reason, iso(p.since)) for c, p in (await outbox.parked()).items()
            }
            for view in views:
                rows = await outbox.history(channel=view.name, limit=1)
                if rows:
                    last[view.name] = _outcome(rows[0])
        except OutboxError as exc:
            log.warning("channels listed without their outcomes: %s", exc)
    return [
        ChannelReply(
            v.name,
            v.type,
            v.settings,
            v.secrets,
            v.routed,
            list(v.warnings),
            last.get(v.name),
            delivered.get(v.name),
            parked.get(v.name),
        )
        for v in views
    ]


def _test_reply(channel: str, report: TestReport) -> TestReply:
    return TestReply(channel, report.ok, list(report.stages), list(report.deliveries))


def _send_param(call: Call) -> bool:
    given = call.request.query_params.get("send", "true").strip().lower()
    if given in ("true", "1", "yes"):
        return True
    if given in ("false", "0", "no"):
        return False
    raise ApiError(
        422,
        "invalid query parameter send",
        [Problem("send", "must be true or false", given[:40])],
    )


def _who(call: Call) -> str:
    return call.caller.name if call.caller is not None else "(nobody)"


@routes.route(
    "GET",
    "/v1/channels",
    summary="The channels of the configuration file, secrets only as whether they are set, "
    "each with its last outcome",
    scope=Scope.READ,
    reply=ChannelList,
)
async def list_channels(call: Call) -> ChannelList:
    views = channel_file.list_channels(call.service)
    return ChannelList(await _replies(call.service, views))


@routes.route(
    "POST",
    "/v1/channels/test",
    summary='Test a channel before it is saved (the "Test before Save"): stage by stage, '
    "and a test message unless send is false",
    scope=Scope.ADMIN,
    body=UnsavedTest,
    reply=TestReply,
)
async def test_unsaved_channel(call: Call) -> TestReply:
    body: UnsavedTest = call.body
    name = body.name or ""
    report = await channel_file.test_channel(
        call.service, body.settings, name=name, send_message=body.send
    )
    log.info("unsaved channel tested by token %r", _who(call))
    return _test_reply(name or channel_file.UNSAVED, report)


@routes.route(
    "GET",
    "/v1/channels/{name}",
    summary="One channel, secrets only as whether they are set, with its last outcome",
    scope=Scope.READ,
    reply=ChannelReply,
    errors=(404,),
)
async def get_channel(call: Call) -> ChannelReply:
    view = channel_file.get_channel(call.service, call.path("name"))
    (reply,) = await _replies(call.service, [view])
    return reply


@routes.route(
    "POST",
    "/v1/channels",
    summary="Create a channel: validated with the whole file as dbnotify validate does, "
    "written to it (comments kept), and in use at once",
    scope=Scope.ADMIN,
    body=NewChannel,
    reply=ChannelReply,
    status=201,
    errors=(409,),
)
async def create_channel(call: Call) -> Response:
    body: NewChannel = call.body
    view = await channel_file.save_channel(call.service, body.name, body.settings, create=True)
    log.info("channel %r created by token %r", body.name, _who(call))
    (reply,) = await _replies(call.service, [view])
    return JsonReply(reply, status_code=201, headers={"Location": f"/v1/channels/{body.name}"})


@routes.route(
    "PUT",
    "/v1/channels/{name}",
    summary="Replace a channel's settings (secrets left out, or sent back as "
    '{"set": true}, are kept)',
    scope=Scope.ADMIN,
    body=ChannelUpdate,
    reply=ChannelReply,
    errors=(404,),
)
async def replace_channel(call: Call) -> ChannelReply:
    body: ChannelUpdate = call.body
    name = call.path("name")
    view = await channel_file.save_channel(call.service, name, body.settings, create=False)
    log.info("channel %r changed by token %r", name, _who(call))
    (reply,) = await _replies(call.service, [view])
    return reply


@routes.route(
    "DELETE",
    "/v1/channels/{name}",
    summary="Delete a channel, and take it out of the routing lists that name it (409 "
    "while it is a fallback or the user channel)",
    scope=Scope.ADMIN,
    status=204,
    errors=(404, 409),
)
async def delete_channel(call: Call) -> Response:
    name = call.path("name")
    await channel_file.delete_channel(call.service, name)
    log.info("channel %r deleted by token %r", name, _who(call))
    return Response(status_code=204)


@routes.route(
    "POST",
    "/v1/channels/{name}/test",
    summary="Test a saved channel as dbnotify test does: stage by stage, and a test message "
    "unless send=false",
    scope=Scope.ADMIN,
    reply=TestReply,
    errors=(404, 422),
    params=(("send", "false: check the connection only; send nothing (default true)"),),
)
async def test_saved_channel(call: Call) -> TestReply:
    name = call.path("name")
    report = await channel_file.test_saved_channel(
        call.service, name, send_message=_send_param(call)
    )
    log.info("channel %r tested by token %r", name, _who(call))
    return _test_reply(name, report)


test_saved_channel.__test__ = False  # type: ignore[attr-defined]
test_unsaved_channel.__test__ = False  # type: ignore[attr-defined]

"""The Microsoft Teams channel's hook implementations."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from dbnotify.channel import (
    ChannelInfo,
    Notification,
    RecipientResult,
    Renderer,
    TestReport,
    hookimpl,
    structure,
)
from dbnotify.http import config_stage, request_stage, scrub
from dbnotify_teams import card, connector
from dbnotify_teams.settings import TeamsConfig

LABEL = "teams webhook"
"""The one recipient of a Teams channel, as results and the outbox name it."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Microsoft Teams: a MessageCard in the severity's colour, through an "
        "Incoming Webhook connector",
        config_class=TeamsConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> TeamsConfig:
    return structure(TeamsConfig, options)


async def _post(
    config: TeamsConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    body = card.message_card(notification, renderer)
    result = await connector.post(LABEL, config.webhook_url, body)
    return scrub(result, config.webhook_url)


@hookimpl
async def send(
    config: TeamsConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One card to the connector's channel (``retry_only`` changes nothing)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "a Teams channel cannot deliver to a person's address")
            for r in recipients
        ]
    return [await _post(config, notification, renderer)]


@hookimpl
async def test(
    config: TeamsConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, then (unless told not to) ``request``: the test notification, posted."""
    stage = config_stage(
        config.webhook_url,
        "Teams Incoming Webhook",
        send_message=send_message,
        started=time.monotonic(),
    )
    if not send_message:
        return TestReport((stage,))
    started = time.monotonic()
    result = await _post(config, notification, renderer)
    return TestReport((stage, request_stage(result, started)), (result,))

"""The Discord channel's hook implementations."""

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
from dbnotify.http import config_stage, deliver, request_stage
from dbnotify_discord import embed
from dbnotify_discord.settings import DiscordConfig

LABEL = "discord webhook"
"""The one recipient of a Discord channel, as results and the outbox name it."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Discord: an embed in the severity's colour, through a channel's webhook",
        config_class=DiscordConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> DiscordConfig:
    return structure(DiscordConfig, options)


async def _post(
    config: DiscordConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    body = embed.message(
        notification, renderer, username=config.username, avatar_url=config.avatar_url
    )
    return await deliver(LABEL, "POST", config.webhook_url, json=body)


@hookimpl
async def send(
    config: DiscordConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One message to the webhook's channel (``retry_only`` changes nothing)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "a Discord channel cannot deliver to a person's address")
            for r in recipients
        ]
    return [await _post(config, notification, renderer)]


@hookimpl
async def test(
    config: DiscordConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, then (unless told not to) ``request``: the test notification, posted."""
    stage = config_stage(
        config.webhook_url, "Discord webhook", send_message=send_message, started=time.monotonic()
    )
    if not send_message:
        return TestReport((stage,))
    started = time.monotonic()
    result = await _post(config, notification, renderer)
    return TestReport((stage, request_stage(result, started)), (result,))

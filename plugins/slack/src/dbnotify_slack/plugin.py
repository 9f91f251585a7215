"""The Slack channel's hook implementations."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dbnotify.channel import (
    ChannelInfo,
    Notification,
    RecipientResult,
    Renderer,
    Status,
    TestReport,
    hookimpl,
    structure,
)
from dbnotify.http import config_stage, deliver, request_stage
from dbnotify_slack import message
from dbnotify_slack.settings import SlackConfig

LABEL = "slack webhook"
"""The one recipient of a Slack channel, as results and the outbox name it."""

ERRORS: dict[str, tuple[str, str]] = {
    "invalid_token": (
        "Slack refused the webhook's token (revoked, or the URL is wrong)",
        "create a new incoming webhook in Slack and update webhook_url",
    ),
    "no_service": (
        "Slack says this webhook is disabled or was removed",
        "create a new incoming webhook in Slack and update webhook_url",
    ),
    "no_service_id": (
        "Slack cannot find the webhook in this URL (is it complete?)",
        "copy the whole webhook URL from Slack into webhook_url",
    ),
    "no_team": (
        "Slack cannot find the workspace of this webhook",
        "create a new incoming webhook in Slack and update webhook_url",
    ),
    "team_disabled": (
        "the webhook's Slack workspace is disabled",
        "use a webhook of an active workspace",
    ),
    "channel_not_found": (
        "Slack cannot find the channel to post to",
        "fix or remove the channel setting (without it the webhook posts to its own "
        "channel); the webhook's own channel may have been deleted",
    ),
    "channel_is_archived": (
        "the Slack channel is archived",
        "unarchive the channel, or create a webhook for another channel",
    ),
    "action_prohibited": (
        "a Slack admin has restricted posting through this webhook",
        "ask your Slack admin, or use a webhook for another channel",
    ),
    "posting_to_general_channel_denied": (
        "only admins may post to this workspace's general channel",
        "post to another channel, or ask an admin to allow it",
    ),
    "invalid_payload": (
        "Slack could not read the message",
        "this is a bug in dbnotify-slack; please report it with the reply",
    ),
    "no_text": (
        "Slack found no text in the message",
        "this is a bug in dbnotify-slack; please report it with the reply",
    ),
    "too_many_attachments": (
        "Slack refused the message's attachments",
        "this is a bug in dbnotify-slack; please report it with the reply",
    ),
}
"""Slack's error words (the whole body of its 4xx answers) and what they mean."""

_CODE = re.compile(r"\d{3}\b[^:]*: ([a-z_]+)")


def explain(result: RecipientResult) -> RecipientResult:
    """``result`` with Slack's own words (``channel_not_found``) turned into reason and hint."""
    if result.status is not Status.FAILED or not result.reply:
        return result
    found = _CODE.fullmatch(result.reply)
    if not found or found[1] not in ERRORS:
        return result
    reason, hint = ERRORS[found[1]]
    return attrs.evolve(result, reason=f"{reason} ({found[1]})", hint=hint)


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Slack: a message with an attachment in the severity's colour, through "
        "an incoming webhook",
        config_class=SlackConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> SlackConfig:
    return structure(SlackConfig, options)


async def _post(
    config: SlackConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    body = message.message(
        notification,
        renderer,
        channel=config.channel,
        username=config.username,
        icon_emoji=config.icon_emoji,
    )
    result = await deliver(LABEL, "POST", config.webhook_url, json=body)
    return explain(result)


@hookimpl
async def send(
    config: SlackConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One message through the webhook (``retry_only`` changes nothing)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "a Slack channel cannot deliver to a person's address")
            for r in recipients
        ]
    return [await _post(config, notification, renderer)]


@hookimpl
async def test(
    config: SlackConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, then (unless told not to) ``request``: the test notification, posted."""
    what = "Slack webhook" + (f" for {config.channel}" if config.channel else "")
    stage = config_stage(
        config.webhook_url, what, send_message=send_message, started=time.monotonic()
    )
    if not send_message:
        return TestReport((stage,))
    started = time.monotonic()
    result = await _post(config, notification, renderer)
    return TestReport((stage, request_stage(result, started)), (result,))

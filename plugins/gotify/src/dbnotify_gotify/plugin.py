"""The Gotify channel's hook implementations.

One ``POST {server_url}/message`` per notification, the application token in the
``X-Gotify-Key`` header (never in the URL, where proxies and logs would keep it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dbnotify.channel import (
    ChannelInfo,
    Notification,
    RecipientResult,
    Renderer,
    Severity,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    structure,
)
from dbnotify.http import deliver, request_stage, where
from dbnotify_gotify.settings import SCHEMA_RULES, GotifyConfig


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Gotify: push messages to a self-hosted Gotify server",
        config_class=GotifyConfig,
        user_delivery=False,
        schema_rules=SCHEMA_RULES,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> GotifyConfig:
    return structure(GotifyConfig, options)


def priority_of(config: GotifyConfig, notification: Notification) -> int:
    """The configured priority, raised for failures."""
    if notification.severity is Severity.FAILURE:
        return config.effective_failure_priority
    return config.priority


def payload(config: GotifyConfig, notification: Notification, renderer: Renderer) -> dict[str, Any]:
    """What Gotify receives: title, plain-text message, priority."""
    return {
        "title": renderer.subject(notification),
        "message": renderer.text(notification),
        "priority": priority_of(config, notification),
        "extras": {"client::display": {"contentType": "text/plain"}},
    }


def _explained(result: RecipientResult) -> RecipientResult:
    """Gotify's own words for a refused token."""
    if result.status is Status.FAILED and result.parks_channel:
        return attrs.evolve(
            result,
            hint="check app_token: it must be an application's token (Gotify's Apps page), "
            "not a client token; it may have been deleted",
        )
    return result


NOT_FOUND = (
    "no Gotify message API at this address (wrong server_url, e.g. a missing path prefix)",
    "set server_url to the address of the Gotify web UI, with its path prefix if it has one",
)
"""A 404: the server is not Gotify there (a token it does not know is a 401)."""


async def _deliver(
    config: GotifyConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    result = await deliver(
        where(config.server_url),
        "POST",
        f"{config.server_url}/message",
        json=payload(config, notification, renderer),
        headers={"X-Gotify-Key": config.app_token},
        timeout=config.timeout,
        not_found=NOT_FOUND,
    )
    return _explained(result)


@hookimpl
async def send(
    config: GotifyConfig,
    notification: Notification,
    renderer: Renderer,
) -> Sequence[RecipientResult]:
    return [await _deliver(config, notification, renderer)]


def _summary(config: GotifyConfig) -> str:
    return (
        f"server {where(config.server_url)}, priority {config.priority}, "
        f"{config.effective_failure_priority} on failure"
    )


@hookimpl
async def test(
    config: GotifyConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    if not send_message:
        return TestReport((TestStage("config", True, f"{_summary(config)}; no request sent"),))
    started = time.monotonic()
    result = await _deliver(config, notification, renderer)
    return TestReport(
        (TestStage("config", True, _summary(config)), request_stage(result, started)),
        (result,),
    )

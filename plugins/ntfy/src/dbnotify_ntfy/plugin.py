"""The ntfy channel's hook implementations.

One ``POST {server_url}/{topic}`` per notification: the body is the renderer's plain
text, the title, priority and tags travel in headers. HTTP headers are ASCII (httpx
refuses anything else), so a title with other characters is sent as one RFC 2047
encoded word (``=?UTF-8?B?...?=``), which ntfy decodes on every header it reads.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dbnotify.channel import (
    ChannelInfo,
    Masker,
    Notification,
    RecipientResult,
    Renderer,
    Secret,
    Severity,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    secret_forms,
    structure,
)
from dbnotify.http import deliver, request_stage, where
from dbnotify_ntfy.settings import SCHEMA_RULES, NtfyConfig

MESSAGE_LIMIT = 4096
"""ntfy's default message-size-limit, in bytes: a longer body becomes an attachment."""
ELLIPSIS = "…"

TAGS: dict[Severity, str] = {
    Severity.SUCCESS: "white_check_mark",
    Severity.FAILURE: "rotating_light",
    Severity.INFO: "information_source",
    Severity.WARNING: "warning",
}
"""ntfy shows a tag that is an emoji short code as that emoji, before the title."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="ntfy: push notifications to phones and desktops through an ntfy topic",
        config_class=NtfyConfig,
        user_delivery=False,
        schema_rules=SCHEMA_RULES,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> NtfyConfig:
    return structure(NtfyConfig, options)


def header_text(text: str) -> str:
    """``text`` as an ASCII header value: itself, or one RFC 2047 encoded word.

    ASCII text that looks like an encoded word (``=?``) is encoded too, so that ntfy
    shows it as written instead of decoding it.
    """
    if text.isascii() and "=?" not in text:
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode("ascii") + "?="


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (never inside a character), with an ellipsis."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    return data[:room].decode(errors="ignore") + ELLIPSIS


def priority_of(config: NtfyConfig, notification: Notification) -> int:
    if notification.severity is Severity.FAILURE:
        return config.effective_failure_priority
    return config.priority


def headers(
    config: NtfyConfig, notification: Notification, renderer: Renderer
) -> dict[str, str | Secret]:
    """What ntfy reads besides the body."""
    found: dict[str, str | Secret] = {
        "Title": header_text(renderer.subject(notification)),
        # X-Priority, not Priority: proxies such as Cloudflare add an HTTP "Priority"
        # header of their own (RFC 9218, "u=3") that ntfy then ignores
        "X-Priority": str(priority_of(config, notification)),
        "Tags": f"{TAGS[notification.severity]},{notification.event_type}",
        "Content-Type": "text/plain; charset=utf-8",
    }
    if config.access_token is not None:
        found["Authorization"] = Secret(
            f"Bearer {config.access_token.reveal()}", source=config.access_token.source
        )
    return found


def _explained(config: NtfyConfig, result: RecipientResult) -> RecipientResult:
    token = config.access_token.reveal() if config.access_token is not None else ""
    if result.status is not Status.FAILED:
        return result
    mask = Masker(secret_forms(token))
    hint = result.hint
    if result.parks_channel:
        hint = (
            "check access_token: it must belong to a user allowed to write to this topic"
            if config.access_token is not None
            else "this topic needs an access token: set access_token to the token of a "
            "user allowed to write to it"
        )
    return attrs.evolve(
        result,
        reason=mask.optional(result.reason),
        reply=mask.optional(result.reply),
        hint=mask.optional(hint),
    )


NOT_FOUND = (
    "no ntfy server at this address (wrong server_url)",
    "set server_url to the ntfy server's base URL (e.g. https://ntfy.sh), with its path "
    "prefix if it has one",
)
"""A 404: the server is not ntfy there (any topic name exists in ntfy)."""


async def _deliver(
    config: NtfyConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    result = await deliver(
        config.topic,
        "POST",
        f"{config.server_url}/{config.topic}",
        content=fit(renderer.text(notification)).encode(),
        headers=headers(config, notification, renderer),
        timeout=config.timeout,
        not_found=NOT_FOUND,
    )
    return _explained(config, result)


@hookimpl
async def send(
    config: NtfyConfig,
    notification: Notification,
    renderer: Renderer,
) -> Sequence[RecipientResult]:
    return [await _deliver(config, notification, renderer)]


def _summary(config: NtfyConfig) -> str:
    token = "with an access token" if config.access_token is not None else "no access token"
    return (
        f"topic {config.topic} on {where(config.server_url)}, priority {config.priority}, "
        f"{config.effective_failure_priority} on failure, {token}"
    )


@hookimpl
async def test(
    config: NtfyConfig,
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

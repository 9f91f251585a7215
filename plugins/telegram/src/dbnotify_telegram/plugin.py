"""The Telegram channel's hook implementations (Bot API ``sendMessage``).

The bot token is part of every Bot API URL (``/bot<token>/sendMessage``), so it is
handled as a secret all the way: the URL is given to :func:`dbnotify.http.deliver` as a
:class:`~dbnotify.channel.Secret` (its messages, and httpx's own request log lines, show
only the scheme and host), and every text of a result has the token masked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from dbnotify.channel import (
    ChannelInfo,
    FailureKind,
    Masker,
    Notification,
    RecipientResult,
    Renderer,
    Secret,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    secret_forms,
    structure,
)
from dbnotify.http import deliver, json_answer, scrub, where
from dbnotify_telegram.settings import CONVERTER, TelegramConfig
from dbnotify_telegram.text import message_text

# --- hooks ----------------------------------------------------------------------------


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Telegram: messages from a bot to a chat, group or channel",
        config_class=TelegramConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> TelegramConfig:
    return structure(TelegramConfig, options, converter=CONVERTER)


def payload(
    config: TelegramConfig, notification: Notification, renderer: Renderer
) -> dict[str, Any]:
    """What ``sendMessage`` receives."""
    body: dict[str, Any] = {
        "chat_id": config.chat,
        "text": message_text(notification, renderer, config.parse_mode),
    }
    if config.parse_mode.api_value is not None:
        body["parse_mode"] = config.parse_mode.api_value
    body["disable_notification"] = config.disable_notification
    body["link_preview_options"] = {"is_disabled": True}
    return body


def _hint(status: int, description: str, parameters: Mapping[str, Any]) -> str | None:
    lowered = description.lower()
    if "migrate_to_chat_id" in parameters:
        return (
            "the group became a supergroup with a new id: set "
            f"chat_id = {parameters['migrate_to_chat_id']}"
        )
    if "chat not found" in lowered:
        return (
            "check chat_id: the bot must be a member of the chat (of a channel: an "
            "administrator); a group's id starts with -"
        )
    if "parse entities" in lowered:
        return (
            'Telegram refused the markup: set parse_mode = "none", and report this as a bug '
            "in dbnotify-telegram"
        )
    if status == 401:
        return "check bot_token: it was revoked or mistyped; @BotFather shows the current one"
    if status == 403:
        return (
            "the bot may not write to this chat (blocked by the user, removed from the group, "
            "or not an administrator of the channel); add it again"
        )
    if status == 404:
        return "check bot_token (as @BotFather gives it) and api_url (a Bot API server)"
    return None


def _explained(
    response: httpx.Response, result: RecipientResult, url: Secret, token: str
) -> RecipientResult:
    """Telegram's description as the reason, and a hint that fits it.

    The description may quote the URL or the token: they are masked here, in the order
    :func:`dbnotify.http.deliver` masks its generic results (the whole URL, then its
    path and its long segments such as ``bot<token>``), then the token alone, which
    ``deliver`` does not know.
    """
    if result.status is not Status.FAILED:
        return result
    said = json_answer(response)
    description = said.get("description") if said is not None else None
    if said is not None and isinstance(description, str):
        code = said.get("error_code")
        status = code if isinstance(code, int) else response.status_code
        found = said.get("parameters")
        parameters: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        changes: dict[str, Any] = {"reply": f"{status} {description}".strip()}
        if result.kind is FailureKind.PERMANENT:
            changes["reason"] = f"Telegram refused the message: {description}"
        hint = _hint(status, description, parameters)
        if hint is not None:
            changes["hint"] = hint
        wait = parameters.get("retry_after")
        if result.retry_after is None and isinstance(wait, int | float):
            changes["retry_after"] = float(wait)
            changes["reason"] = f"{result.reason}; it asks to wait {wait:g}s"
        if status == 404:
            # a token Telegram does not know: the channel's own, like a refused one
            changes["parks_channel"] = True
        result = attrs.evolve(result, **changes)
    elif result.kind is FailureKind.PERMANENT and response.status_code == 404:
        result = attrs.evolve(
            result,
            reason="no Bot API at this address (wrong bot_token or api_url)",
            hint=_hint(404, "", {}),
            parks_channel=True,
        )
    return _hidden(scrub(_hidden(result, url.reveal()), url), token)


def _hidden(result: RecipientResult, secret: str) -> RecipientResult:
    """``result`` with ``secret`` (in each form a server may echo) masked in its reason,
    reply and hint."""
    mask = Masker(secret_forms(secret))
    return attrs.evolve(
        result,
        reason=mask.optional(result.reason),
        reply=mask.optional(result.reply),
        hint=mask.optional(result.hint),
    )


async def _deliver(
    config: TelegramConfig, notification: Notification, renderer: Renderer
) -> RecipientResult:
    token = config.bot_token.reveal()
    url = Secret(f"{config.api_url}/bot{token}/sendMessage", source=config.bot_token.source)
    result = await deliver(
        config.chat_id,
        "POST",
        url,
        json=payload(config, notification, renderer),
        timeout=config.timeout,
        explain=lambda response, generic: _explained(response, generic, url, token),
    )
    # if _explained raised, this is the generic result: its reply may quote the token
    return _hidden(result, token)


@hookimpl
async def send(
    config: TelegramConfig,
    notification: Notification,
    renderer: Renderer,
) -> Sequence[RecipientResult]:
    return [await _deliver(config, notification, renderer)]


def _summary(config: TelegramConfig) -> str:
    silent = ", silent" if config.disable_notification else ""
    return (
        f"chat {config.chat_id} via {where(config.api_url)}, parse_mode "
        f"{config.parse_mode.value}{silent}"
    )


def request_stage(result: RecipientResult, started: float) -> TestStage:
    """As :func:`dbnotify.http.request_stage`, without repeating Telegram's description
    (already in the reason) as the reply."""
    duration = time.monotonic() - started
    if result.status is Status.DELIVERED:
        return TestStage("request", True, f"delivered: {result.reply}", duration)
    detail = result.reason or "not delivered"
    if result.reply and result.reply.partition(" ")[2] not in detail:
        detail += f" (reply: {result.reply})"
    return TestStage("request", False, detail, duration, hint=result.hint)


@hookimpl
async def test(
    config: TelegramConfig,
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

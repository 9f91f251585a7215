"""The Twilio SMS channel's hook implementations.

One ``POST {api_url}/2010-04-01/Accounts/{sid}/Messages.json`` per number, so that every
number has its own result (labelled with the number) and a retry reaches only the
numbers that still need the message. The text is the subject and as many of the
notification's fields, in order, as fit in 320 characters (what Twilio recommends for
one SMS conversation: about two concatenated segments).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from dbnotify.channel import (
    ChannelInfo,
    FailureKind,
    Notification,
    RecipientResult,
    Renderer,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    one_line,
    structure,
)
from dbnotify.http import deliver, json_answer, where
from dbnotify_twilio_sms.settings import CONVERTER, TwilioSmsConfig

LIMIT = 320
CUT = "..."
"""Three dots, not an ellipsis character: that one would switch the SMS to UCS-2."""

HINTS: dict[int, str] = {
    20404: "check account_sid (AC..., from the Twilio Console) and api_url",
    20003: "check account_sid and auth_token (Twilio Console, Account Info); the token may "
    "have been rotated",
    21211: "check this number in to: + and the country code, then the number",
    21212: "check from: a Twilio number of this account, or a messaging service SID",
    21408: "this account may not send SMS to that country: enable it in the Twilio Console "
    "(Messaging, Settings, Geo permissions)",
    21606: "check from: it must be a Twilio number of this account that can send SMS",
    21608: "a trial account sends only to verified numbers: verify this number in the Twilio "
    "Console, or upgrade the account",
    21610: "the recipient replied STOP to this sender; they must reply START to get messages again",
    21614: "this number cannot receive SMS (not a mobile number)",
    21659: "check from: it must be a Twilio number of this account that can send SMS",
}
SENDER_ERRORS = frozenset({21212, 21606, 21659})
"""Errors in ``from``: the channel's own, every number fails the same way until it is fixed."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Twilio SMS: a short text message to one or more phone numbers",
        config_class=TwilioSmsConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> TwilioSmsConfig:
    return structure(TwilioSmsConfig, options, converter=CONVERTER)


def sms_body(notification: Notification, renderer: Renderer, limit: int = LIMIT) -> str:
    """The subject, then ``label: value`` lines while they fit, cut at a field boundary."""
    body = renderer.subject(notification)
    if len(body) > limit:
        return body[: limit - len(CUT)] + CUT
    for label, value in renderer.context(notification)["fields"]:
        line = f"\n{one_line(label)}: {one_line(value)}"
        if len(body) + len(line) > limit:
            break  # only the first fields fit: never a later, shorter one out of order
        body += line
    return body


def form(config: TwilioSmsConfig, number: str, body: str) -> dict[str, str]:
    """What Twilio's Messages resource receives for one number."""
    sender = {"MessagingServiceSid" if config.uses_service else "From": config.from_}
    return {**sender, "To": number, "Body": body}


def _explained(response: httpx.Response, result: RecipientResult) -> RecipientResult:
    """Twilio's message and error code as the reason, a hint for the code (the auth token
    is masked by :func:`dbnotify.http.deliver`, which was given it as a Secret)."""
    if result.status is not Status.FAILED:
        return result
    said = json_answer(response)
    message = said.get("message") if said is not None else None
    if said is None or not isinstance(message, str):
        return result
    code = said.get("code")
    number = code if isinstance(code, int) else None
    what = message + (f" (error {number})" if number is not None else "")
    changes: dict[str, Any] = {"reply": f"{response.status_code} {what}"}
    if result.kind is FailureKind.PERMANENT:
        changes["reason"] = f"Twilio refused the message: {what}"
    hint = HINTS.get(number) if number is not None else None
    more = said.get("more_info")
    if hint is None and isinstance(more, str) and more.startswith("https://"):
        hint = f"see {more}"
    if hint is not None:
        changes["hint"] = hint
    if number in SENDER_ERRORS:
        changes["parks_channel"] = True
    return attrs.evolve(result, **changes)


NOT_FOUND = (
    "Twilio knows no such account, or api_url is not Twilio's API",
    "check account_sid (AC..., from the Twilio Console) and api_url",
)
"""A 404: the account is in the URL (a bad number or sender is a 400 with a code)."""


async def _deliver_one(config: TwilioSmsConfig, number: str, body: str) -> RecipientResult:
    return await deliver(
        number,
        "POST",
        f"{config.api_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json",
        data=form(config, number, body),
        auth=(config.account_sid, config.auth_token),
        not_found=NOT_FOUND,
        timeout=config.timeout,
        explain=_explained,
    )


async def _deliver(
    config: TwilioSmsConfig,
    notification: Notification,
    renderer: Renderer,
    numbers: Sequence[str],
) -> list[RecipientResult]:
    body = sms_body(notification, renderer)
    return list(await asyncio.gather(*(_deliver_one(config, n, body) for n in numbers)))


@hookimpl
async def send(
    config: TwilioSmsConfig,
    notification: Notification,
    renderer: Renderer,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    numbers: Sequence[str] = config.to
    gone: list[RecipientResult] = []
    if retry_only is not None:
        wanted = set(retry_only)
        numbers = [n for n in config.to if n in wanted]
        gone = [
            RecipientResult.skipped(n, "no longer a recipient of this channel")
            for n in retry_only
            if n not in config.to
        ]
    return [*await _deliver(config, notification, renderer, numbers), *gone]


def _summary(config: TwilioSmsConfig) -> str:
    count = len(config.to)
    sender = "messaging service" if config.uses_service else "from"
    return (
        f"{count} number{'s' if count != 1 else ''} ({', '.join(config.to)}), {sender} "
        f"{config.from_}, via {where(config.api_url)}"
    )


def _why(result: RecipientResult) -> str:
    detail = result.reason or "not delivered"
    if result.reply and result.reply.partition(" ")[2] not in detail:
        detail += f" (reply: {result.reply})"
    return f"{result.recipient}: {detail}"


def request_stage(results: Sequence[RecipientResult], duration: float) -> TestStage:
    failed = [r for r in results if r.status is not Status.DELIVERED]
    if not failed:
        return TestStage(
            "request",
            True,
            "delivered: " + ", ".join(f"{r.recipient} {r.reply}" for r in results),
            duration,
        )
    hints = list(dict.fromkeys(r.hint for r in failed if r.hint))
    return TestStage(
        "request",
        False,
        "; ".join(_why(r) for r in failed),
        duration,
        "; ".join(hints) or None,
    )


@hookimpl
async def test(
    config: TwilioSmsConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    if not send_message:
        return TestReport((TestStage("config", True, f"{_summary(config)}; no request sent"),))
    started = time.monotonic()
    results = await _deliver(config, notification, renderer, config.to)
    return TestReport(
        (
            TestStage("config", True, _summary(config)),
            request_stage(results, time.monotonic() - started),
        ),
        tuple(results),
    )

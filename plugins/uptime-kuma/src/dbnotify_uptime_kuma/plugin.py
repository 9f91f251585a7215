"""The Uptime Kuma channel's hook implementations.

A heartbeat, not a message: each event of ``signals`` is one ``GET`` of the push
monitor's URL with ``status`` (``up`` or ``down``), ``msg`` (the one-line summary) and
``ping`` (the event's duration in milliseconds, when it has one). Other events are
skipped, with the reason. GET, because every Uptime Kuma release takes it (1.x answers
nothing else on this route).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from dbnotify.channel import (
    MASK,
    ChannelInfo,
    FailureKind,
    Notification,
    RecipientResult,
    Renderer,
    TestReport,
    TestStage,
    hookimpl,
    one_line,
    structure,
)
from dbnotify.http import deliver, json_answer, request_stage
from dbnotify_uptime_kuma.settings import Beat, UptimeKumaConfig

MSG_LIMIT = 250
"""Characters of ``msg``: one line in the monitor's event list, and a URL stays short."""
ELLIPSIS = "…"

NOT_FOUND = (
    "the monitor does not exist or is paused: check the URL",
    "copy the Push URL from the monitor's page in Uptime Kuma (monitor type Push), and "
    "resume the monitor if it is paused; a token that was regenerated there changes the URL",
)
"""A 404: Uptime Kuma's "Monitor not found or not active." (no monitor with this token,
or the monitor is paused)."""

_PART = re.compile(r"(\d+)\s*(ms|d|h|m|s)\b")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Uptime Kuma: an up or down beat to a push monitor, with the summary",
        config_class=UptimeKumaConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> UptimeKumaConfig:
    return structure(UptimeKumaConfig, options)


def summary(notification: Notification, renderer: Renderer) -> str:
    """``[DBackup] Backup Failed: nightly-pg - Backup job 'nightly-pg' failed. Error: disk
    full``: the subject and the message, on one line, cut to :data:`MSG_LIMIT`."""
    text = renderer.subject(notification)
    message = one_line(notification.message)
    if message:
        text = f"{text} - {message}"
    if len(text) > MSG_LIMIT:
        text = text[: MSG_LIMIT - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return text


def duration_ms(notification: Notification) -> int | None:
    """The event's Duration field in milliseconds (``1m 23s`` -> 83000), else None.

    The field is what the catalogue made of ``duration_ms``: exact below a second, to the
    second above."""
    for field in notification.fields:
        if field.label != "Duration":
            continue
        value = field.value.strip()
        parts = _PART.findall(value)
        if not parts or _PART.sub("", value).strip():
            return None
        return sum(int(number) * _UNITS[unit] for number, unit in parts)
    return None


def _explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
    """Uptime Kuma's own words: ``{"ok": false, "msg": "..."}``."""
    answer = json_answer(response)
    if answer is None or answer.get("ok") is not False:
        return result
    said = str(answer.get("msg") or "")
    if response.status_code == 404 and said and "not found" not in said.lower():
        # the route answers every error with 404: a database error is not a lost monitor
        return attrs.evolve(
            result,
            kind=FailureKind.TRANSIENT,
            reason=f"Uptime Kuma could not record the beat: {said}",
            hint="Uptime Kuma failed on its side (see its log); the outbox retries",
        )
    return result


def _masked(config: UptimeKumaConfig, result: RecipientResult) -> RecipientResult:
    """The token masked wherever Uptime Kuma (or a proxy) quoted it, however short."""
    token = config.token
    if len(token) < 4:
        return result

    def clean(text: str | None) -> str | None:
        return text.replace(token, MASK) if text else text

    return attrs.evolve(
        result, reason=clean(result.reason), reply=clean(result.reply), hint=clean(result.hint)
    )


async def push(config: UptimeKumaConfig, beat: Beat, msg: str, ping: int | None) -> RecipientResult:
    result = await deliver(
        config.where,
        "GET",
        config.url(beat, msg, ping),
        timeout=config.timeout,
        explain=_explain,
        not_found=NOT_FOUND,
    )
    return _masked(config, result)


def _skip_reason(config: UptimeKumaConfig, event_type: str) -> str:
    if not config.signals:
        return "this heartbeat pushes for no event (signals is empty)"
    known = ", ".join(f"{k} ({v.value})" for k, v in config.signals.items())
    return (
        f"{event_type} is not one of this heartbeat's signals ({known}); add it to "
        "signals to push for it"
    )


@hookimpl
async def send(
    config: UptimeKumaConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One push for an event of ``signals`` (``retry_only`` changes nothing: one monitor)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "an Uptime Kuma monitor cannot deliver to a person")
            for r in recipients
        ]
    beat = config.signals.get(notification.event_type)
    if beat is None:
        return [
            RecipientResult.skipped(config.where, _skip_reason(config, notification.event_type))
        ]
    ping = duration_ms(notification) if config.duration_as_ping else None
    return [await push(config, beat, summary(notification, renderer), ping)]


def _summary(config: UptimeKumaConfig) -> str:
    signals = ", ".join(f"{k} -> {v.value}" for k, v in config.signals.items()) or "none"
    return f"push monitor at {config.where}; signals: {signals}"


@hookimpl
async def test(
    config: UptimeKumaConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, then ``request``: the test notification pushed as an ``up`` beat."""
    started = time.monotonic()
    if not send_message:
        detail = f"{_summary(config)}; no request sent"
        return TestReport((TestStage("config", True, detail, time.monotonic() - started),))
    stage = TestStage(
        "config",
        True,
        f"{_summary(config)}; the test pushes an up beat",
        time.monotonic() - started,
    )
    started = time.monotonic()
    result = await push(config, Beat.UP, summary(notification, renderer), None)
    return TestReport((stage, request_stage(result, started)), (result,))

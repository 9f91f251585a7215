"""The Healthchecks channel's hook implementations.

A heartbeat, not a message: each event of ``signals`` pings the check's URL, with
``/start``, ``/fail`` or ``/log`` appended as its signal says, and the renderer's plain
text (title, message, job, error) as the POST body, which Healthchecks shows as the
ping's log. Other events are skipped, with the reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx

from dbnotify.channel import (
    ChannelInfo,
    Notification,
    RecipientResult,
    Renderer,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    structure,
)
from dbnotify.http import deliver, request_stage
from dbnotify_healthchecks.settings import HealthchecksConfig, Signal

ELLIPSIS = "\n…"
RUN_IDS = uuid.UUID("b3c5d0a8-4f4e-5a53-9d7c-2c1c6f0e8a11")
"""The namespace of the run ids (UUID 5 of the job's name): stable across releases."""

NOT_FOUND = (
    "the check does not exist: check the URL",
    "copy the ping URL from the check's page in Healthchecks (a deleted check's URL is "
    "gone for good); a slug URL needs the project's ping key and the check's slug",
)
"""A 404: no check with this UUID (or this ping key and slug)."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Healthchecks: a heartbeat to a Healthchecks.io (or self-hosted) "
        "check, with the log",
        config_class=HealthchecksConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> HealthchecksConfig:
    return structure(HealthchecksConfig, options)


def fit(text: str, limit: int) -> bytes:
    """``text`` in UTF-8, cut to ``limit`` bytes (never inside a character), ending with
    an ellipsis when cut."""
    data = text.encode()
    if len(data) <= limit:
        return data
    mark = ELLIPSIS.encode()
    if limit < len(mark):
        return b""
    return data[: limit - len(mark)].decode(errors="ignore").encode() + mark


def run_id(config: HealthchecksConfig, notification: Notification) -> str | None:
    """The same UUID for every ping of a job: its start and its finish pair up, and two
    jobs pinging one check keep their durations apart. None without a job."""
    if not config.run_id or not notification.job_name:
        return None
    return str(uuid.uuid5(RUN_IDS, notification.job_name))


def _explain(sent: int) -> Callable[[httpx.Response, RecipientResult], RecipientResult]:
    """Healthchecks' answers, read: a 409 (a slug of several checks), and how much of the
    log a self-hosted server kept (``Ping-Body-Limit``)."""

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        if response.status_code == 409:
            return attrs.evolve(
                result,
                reason="the slug names more than one check in the project",
                hint="give the checks different slugs, or use the check's UUID ping URL",
            )
        kept = response.headers.get("ping-body-limit", "")
        if result.status is Status.DELIVERED and kept.isdigit() and int(kept) < sent:
            return attrs.evolve(
                result,
                reply=f"{result.reply}; Healthchecks kept the first {kept} of the log's "
                f"{sent} bytes",
            )
        return result

    return explain


async def ping(
    config: HealthchecksConfig, signal: Signal, body: bytes, rid: str | None
) -> RecipientResult:
    return await deliver(
        config.where,
        "POST",
        config.url(signal, rid),
        content=body,
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=config.timeout,
        explain=_explain(len(body)),
        not_found=NOT_FOUND,
    )


def _skip_reason(config: HealthchecksConfig, event_type: str) -> str:
    if not config.signals:
        return "this heartbeat pings for no event (signals is empty)"
    known = ", ".join(f"{k} ({v.value})" for k, v in config.signals.items())
    return (
        f"{event_type} is not one of this heartbeat's signals ({known}); add it to "
        "signals to ping for it"
    )


@hookimpl
async def send(
    config: HealthchecksConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One ping for an event of ``signals`` (``retry_only`` changes nothing: one check)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "a Healthchecks check cannot deliver to a person")
            for r in recipients
        ]
    signal = config.signals.get(notification.event_type)
    if signal is None:
        return [
            RecipientResult.skipped(config.where, _skip_reason(config, notification.event_type))
        ]
    body = fit(renderer.text(notification), config.body_limit)
    return [await ping(config, signal, body, run_id(config, notification))]


def _summary(config: HealthchecksConfig) -> str:
    signals = ", ".join(f"{k} -> {v.value}" for k, v in config.signals.items()) or "none"
    return f"check at {config.where}; signals: {signals}"


@hookimpl
async def test(
    config: HealthchecksConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, then ``request``: the test notification as a ``/log`` ping, which
    Healthchecks records without changing the check's state."""
    started = time.monotonic()
    if not send_message:
        detail = f"{_summary(config)}; no request sent"
        return TestReport((TestStage("config", True, detail, time.monotonic() - started),))
    stage = TestStage(
        "config",
        True,
        f"{_summary(config)}; the test pings /log (the check's state stays as it is)",
        time.monotonic() - started,
    )
    started = time.monotonic()
    body = fit(renderer.text(notification), config.body_limit)
    result = await ping(config, Signal.LOG, body, None)
    return TestReport((stage, request_stage(result, started)), (result,))

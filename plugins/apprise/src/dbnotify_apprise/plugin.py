"""The apprise channel's hook implementations: every service Apprise knows, as one channel.

Each configured URL is its own recipient, labelled ``apprise://SCHEME`` (never the URL:
it carries credentials), and gets its own Apprise object, call and result. Apprise tells
success from failure and keeps what its service logged; it does not say whether trying
again may help. So a failure is transient, unless Apprise's log names an HTTP status that
will not change by waiting (``error=403``, ``error=404``): then it is permanent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import apprise

from dbnotify.channel import (
    ChannelInfo,
    FailureKind,
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
from dbnotify_apprise import redact
from dbnotify_apprise.settings import AppriseConfig, load

NOTIFY_TYPES: dict[Severity, apprise.NotifyType] = {
    Severity.SUCCESS: apprise.NotifyType.SUCCESS,
    Severity.FAILURE: apprise.NotifyType.FAILURE,
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.WARNING: apprise.NotifyType.WARNING,
}
FAILED = "Apprise reported the service failed; its log says why"
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
_LOG_LINES = 3
_LOG_CHARS = 300


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Apprise: any of the 100+ services Apprise knows, by URL",
        config_class=AppriseConfig,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> AppriseConfig:
    return structure(AppriseConfig, options)


def _log_excerpt(result: Any, url: str) -> tuple[str, list[str]]:
    """The warnings Apprise kept for this call, secret parts masked: text and lines."""
    lines: list[str] = []
    for service in getattr(result, "results", ()) or ():
        for entry in service.logs():
            if entry.level in ("WARNING", "ERROR", "CRITICAL"):
                lines.append(redact.redact(" ".join(str(entry.message).split()), [url]))
    unique = list(dict.fromkeys(lines))[-_LOG_LINES:]
    text = " | ".join(unique)
    return (text if len(text) <= _LOG_CHARS else text[: _LOG_CHARS - 3] + "..."), unique


def _failure(label: str, result: Any, url: str) -> RecipientResult:
    """Apprise's ``False`` as a failed result: transient unless its log says otherwise."""
    said, lines = _log_excerpt(result, url)
    reason = FAILED + (f": {said}" if said else "")
    status = getattr(result, "status", None)
    if getattr(status, "name", "") == "TIMEOUT":
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            "Apprise gave up waiting for the service" + (f": {said}" if said else ""),
            hint="the service is slow or unreachable from here; try again later",
        )
    codes = [int(m[1]) for line in lines for m in _HTTP_STATUS.finditer(line)]
    code = codes[-1] if codes else None
    if code is not None and 400 <= code < 500 and code not in (408, 429):
        credentials = code in (401, 403)
        return RecipientResult.failed(
            label,
            FailureKind.PERMANENT,
            reason,
            reply=f"HTTP {code}",
            hint=(
                "the service refused the credentials in this Apprise URL; check them"
                if credentials
                else "the service refused the request for good; check this Apprise URL"
            ),
            parks_channel=credentials,
        )
    return RecipientResult.failed(
        label,
        FailureKind.TRANSIENT,
        reason,
        reply=f"HTTP {code}" if code is not None else None,
        hint="the service may be down or unreachable from here; it is tried again later",
    )


async def _notify_one(
    label: str, url: str, title: str, body: str, notify_type: apprise.NotifyType
) -> RecipientResult:
    service, why = await asyncio.to_thread(load, url)
    if service is None:
        return RecipientResult.failed(
            label, FailureKind.PERMANENT, why, hint="fix this URL in the configuration"
        )
    sender = apprise.Apprise()
    sender.add(service)
    try:
        result = await sender.async_notify(
            body=body,
            title=title,
            notify_type=notify_type,
            body_format=apprise.NotifyFormat.TEXT,
        )
    except Exception as exc:  # noqa: BLE001 - Apprise's bug is a failed delivery, not ours
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            f"Apprise raised {type(exc).__name__}: {redact.redact(str(exc), [url])}",
            hint="this looks like a bug in Apprise; it is tried again later",
        )
    if result:
        return RecipientResult.delivered(label, reply=f"sent by Apprise ({service.service_name})")
    return _failure(label, result, url)


@hookimpl
async def send(
    config: AppriseConfig,
    notification: Notification,
    renderer: Renderer,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    title = renderer.subject(notification)
    body = renderer.text(notification)
    notify_type = NOTIFY_TYPES[notification.severity]
    targets = list(zip(config.labels, config.urls, strict=True))
    skipped: list[RecipientResult] = []
    if retry_only is not None:
        wanted = set(retry_only)
        targets = [(label, url) for label, url in targets if label in wanted]
        skipped = [
            RecipientResult.skipped(gone, "no longer one of this channel's URLs")
            for gone in retry_only
            if gone not in config.labels
        ]
    delivered = await asyncio.gather(
        *(_notify_one(label, url.reveal(), title, body, notify_type) for label, url in targets)
    )
    return [*delivered, *skipped]


@hookimpl
async def test(
    config: AppriseConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """Load every URL in Apprise; then (unless told not to) send the test notification."""
    started = time.monotonic()
    loaded: list[str] = []
    for label, url in zip(config.labels, config.urls, strict=True):
        service, why = await asyncio.to_thread(load, url.reveal())
        if service is None:
            stage = TestStage(
                "load",
                False,
                f"{label}: {why}",
                time.monotonic() - started,
                hint="fix this URL in the configuration",
            )
            return TestReport((stage,))
        loaded.append(f"{label} ({service.service_name})")
    stages = [
        TestStage(
            "load",
            True,
            "Apprise understands " + ", ".join(loaded),
            time.monotonic() - started,
        )
    ]
    if not send_message:
        return TestReport(tuple(stages))
    started = time.monotonic()
    deliveries = await send(config, notification, renderer, None)
    ok = all(d.status is Status.DELIVERED for d in deliveries)
    failed = [d for d in deliveries if d.status is not Status.DELIVERED]
    stages.append(
        TestStage(
            "send",
            ok,
            f"test notification to {', '.join(d.recipient for d in deliveries)}"
            if ok
            else "; ".join(f"{d.recipient}: {d.reason}" for d in failed),
            time.monotonic() - started,
            hint=None if ok else failed[0].hint,
        )
    )
    return TestReport(tuple(stages), tuple(deliveries))
